"""Records holding NaN/±Infinity are dead-lettered at validation on the real stack (issue 13, item 9).

Before: a `properties` map holding a double NaN was sent as `{"score":NaN}` (invalid JSON) and the
emulator stored it; an eventValue NaN reached the service as the string "NaN".
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import (
    canonical_schema,
    committed_and_end_offsets,
    confluent_frame,
    connector_config,
    produce_raw,
    read_topic,
    register,
    run_in_process,
    write_config,
)

pytestmark = pytest.mark.integration

SCHEMA = canonical_schema()
SENT_AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _value(n: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventId": f"e-{n}", "trackingId": None, "sessionId": f"s-{n % 3}", "userId": None, "eventType": "view",
        "eventValue": None, "itemId": f"i-{n}", "properties": {}, "sentAt": SENT_AT, "recommendationId": None,
        "impression": [], "eventAttributionSource": None,
    }
    return base | overrides


def test_records_with_nan_or_infinity_are_dead_lettered_and_the_rest_delivered(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    topic, dlq = new_topic(partitions=1), new_topic(partitions=1, suffix="dlq")
    schema_id = register(registry_client, f"{topic}-value", SCHEMA)
    hostile = {
        "props-nan": _value(1, properties={"score": math.nan}),
        "props-inf": _value(2, properties={"score": math.inf}),
        "value-nan": _value(3, eventValue=math.nan),
        "value-minus-inf": _value(4, eventValue=-math.inf),
    }
    good = [_value(100 + i, properties={"score": 1.5}, eventValue=2.0) for i in range(6)]
    records = [(name.encode(), confluent_frame(schema_id, SCHEMA, v)) for name, v in hostile.items()]
    records += [(b"good", confluent_frame(schema_id, SCHEMA, v)) for v in good]
    produce_raw(stack.bootstrap, topic, records)

    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq)
    code, _ = run_in_process(write_config(tmp_path, config))
    assert code == 0

    received = emulator.events(tracking_id)
    assert sorted(e["eventId"] for e in received) == sorted(v["eventId"] for v in good)
    assert all("NaN" not in e.get("properties", "") for e in received)
    letters = {letter.key: {k: v.decode() for k, v in letter.headers.items() if k.startswith("pkc.")}
               for letter in read_topic(stack.bootstrap, dlq)}
    assert set(letters) == {name.encode() for name in hostile}
    for name, expected_field in (("props-nan", "properties.score"), ("props-inf", "properties.score"),
                                 ("value-nan", "eventValue"), ("value-minus-inf", "eventValue")):
        headers = letters[name.encode()]
        assert headers["pkc.error.stage"] == "validate"
        assert headers["pkc.error.class"] == "InvalidEvent"
        assert headers["pkc.error.message"].startswith(f"{expected_field}: ")
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends
