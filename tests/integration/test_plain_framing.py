"""decode.format: plain — schemaless Avro with a fixed writer schema from a file, no registry."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fixtures.pipeline import (
    canonical_schema,
    committed_and_end_offsets,
    connector_config,
    produce_raw,
    read_topic,
    run_in_process,
    write_config,
)

pytestmark = pytest.mark.integration


def test_the_connector_delivers_plain_avro_with_a_writer_schema_file(
    stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path
) -> None:
    writer = canonical_schema()
    writer_file = tmp_path / "writer.avsc"
    writer_file.write_text(json.dumps(writer))
    parsed = fastavro.parse_schema(writer)

    def body(i: int) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, {
            "eventId": f"p{i}", "trackingId": None, "sessionId": f"s{i % 4}", "userId": None, "eventType": "view",
            "eventValue": None, "itemId": f"i{i}", "properties": {}, "sentAt": 1_700_000_000_000 + i,
            "recommendationId": None, "impression": [], "eventAttributionSource": None})
        return buf.getvalue()

    topic, dlq = new_topic(partitions=2), new_topic(partitions=1, suffix="dlq")
    produce_raw(stack.bootstrap, topic, [(f"s{i % 4}".encode(), body(i)) for i in range(50)] + [(b"s0", b"\xff\xfe")])
    config = connector_config(bootstrap=stack.bootstrap, registry_url=None, emulator_url=emulator.url, topics=[topic],
                              group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq,
                              decode={"format": "plain", "writer_schema": str(writer_file)})
    code, summary = run_in_process(write_config(tmp_path, config))
    assert code == 0, summary
    assert sorted(e["eventId"] for e in emulator.events(tracking_id)) == sorted(f"p{i}" for i in range(50))
    assert [r.headers["pkc.error.stage"] for r in read_topic(stack.bootstrap, dlq)] == [b"decode"]
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert {p: committed[p] for p, end in ends.items() if end} == {p: end for p, end in ends.items() if end}
