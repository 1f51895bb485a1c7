"""decode.format json and json_schema end to end: local Kafka (both clients) + Apicurio + the emulator.

Sample traffic from `produce --format json|json_schema` (good records and the workload's bad kinds)
plus hostile JSON values: every good event arrives with every field intact, each bad record is in
the dead-letter topic with its stage and error class, and the offsets are committed to the end.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import (
    committed_and_end_offsets,
    connector_config,
    produce_raw,
    read_topic,
    run_in_process,
    write_config,
)

from connector.tools.json_traffic import make_json_encoder
from connector.tools.produce import produce
from connector.tools.workload import UNDECODABLE_KINDS, SampleRecord, generate

pytestmark = pytest.mark.integration

N_EVENTS = 60


def _hostile(header: bytes) -> dict[bytes, str]:
    """Hostile values (framed with `header`) -> the error class each must be dead-lettered with."""
    deep = b'{"sessionId": "s", "a": ' + b"[" * 70 + b"]" * 70 + b"}"
    cases = {
        b'{"sessionId": "s", "eventType": "view", "sentAt": NaN}': "MalformedJson",
        b'{"sessionId": "s", "eventValue": Infinity}': "MalformedJson",
        b'{"sessionId": "s\xff"}': "NotUtf8",
        b'["not", "an", "object"]': "NotAnObject",
        deep: "NestingTooDeep",
    }
    framed = {header + value: error_class for value, error_class in cases.items()}
    if header:
        framed[b'{"sessionId": "s"}'] = "WrongMagicByte"
        framed[header + b'{"sessionId": "s", "eventType": "view", "sentAt": "today"}'] = "SchemaMismatch"
    return framed


def _expected(record: SampleRecord) -> dict[str, Any]:
    """What the emulator stores for a good record (the PutEvents form)."""
    value = record.value
    assert value is not None
    event: dict[str, Any] = {"eventType": value["eventType"], "sentAt": value["sentAt"] / 1000}
    for name in ("eventId", "itemId", "recommendationId"):
        if value[name] is not None:
            event[name] = value[name]
    if value["eventValue"] is not None:
        event["eventValue"] = value["eventValue"]
    if value["properties"]:
        event["properties"] = value["properties"]
    if value["impression"]:
        event["impression"] = value["impression"]
    if value["eventAttributionSource"] is not None:
        event["metricAttribution"] = {"eventAttributionSource": value["eventAttributionSource"]}
    return event


def _stored(event: dict[str, Any]) -> dict[str, Any]:
    keep = {k: v for k, v in event.items() if k in ("eventType", "sentAt", "eventId", "itemId", "recommendationId",
                                                    "eventValue", "impression", "metricAttribution")}
    if "properties" in event:
        keep["properties"] = json.loads(event["properties"])
    return keep


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
@pytest.mark.parametrize("value_format", ["json", "json_schema"])
def test_json_topics_are_delivered_with_every_field_and_bad_records_dead_lettered(
    stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
    client: str, value_format: str,
) -> None:
    topic, dlq = new_topic(partitions=2), new_topic(partitions=1, suffix="dlq")
    records = list(generate(N_EVENTS, 8, seed=16, bad_ratio=0.25))
    summary = produce(records, stack.bootstrap, stack.registry_url, topic, progress=False, value_format=value_format)
    header = b"" if summary.schema_id is None else b"\x00" + struct.pack(">I", summary.schema_id)
    hostile = _hostile(header)
    produce_raw(stack.bootstrap, topic, [(b"hostile", value) for value in hostile])

    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq,
                              client=client, decode={"format": value_format, "unknown_schema_retry_s": 0})
    code, metrics = run_in_process(write_config(tmp_path, config), idle_s=2.0)
    assert code == 0, metrics

    good = [r for r in records if r.bad_kind is None]
    expected = [_expected(r) for r in good]
    received = [_stored(e) for e in emulator.events(tracking_id)]
    own_ids = {e["eventId"] for e in expected if "eventId" in e}
    with_ids = {e["eventId"]: e for e in received if e.get("eventId") in own_ids}
    assert [with_ids.get(e["eventId"]) for e in expected if "eventId" in e] == [e for e in expected if "eventId" in e]
    # The others got an id derived from their position: every other field is compared.
    derived = [{k: v for k, v in e.items() if k != "eventId"} for e in received if e.get("eventId") not in own_ids]
    assert sorted(derived, key=repr) == sorted((e for e in expected if "eventId" not in e), key=repr)

    letters = read_topic(stack.bootstrap, dlq)
    by_value = {r.value: r.headers for r in letters}
    for value, error_class in hostile.items():
        assert (by_value[value]["pkc.error.stage"], by_value[value]["pkc.error.class"]) == (
            b"decode", error_class.encode()), value[:60]
    encode = make_json_encoder(summary.schema_id)
    for record in records:
        if record.bad_kind is not None:
            stage = b"decode" if record.bad_kind in UNDECODABLE_KINDS else b"validate"
            assert by_value[encode(record)]["pkc.error.stage"] == stage, record.bad_kind
    assert len(letters) == len(hostile) + len(records) - len(good)

    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert {p: committed[p] for p, end in ends.items() if end} == {p: end for p, end in ends.items() if end}
