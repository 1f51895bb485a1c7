"""The mapping's transforms end to end: real broker, registry and emulator, configuration only.

A producer of its own schema (sentAt in epoch seconds, SCREAMING_SNAKE and snake_case field names,
a list of genres, heartbeats mixed in, no eventType on some records) streams to PutEvents through
one route; a second route takes sentAt from the Kafka record's own timestamp, a third from ISO-8601
strings. Heartbeats are left
out (counted, committed, not sent); a time outside the window and a genre containing "|" are
validate dead letters; everything else arrives as Personalize wants it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import (
    committed_and_end_offsets,
    confluent_frame,
    connector_config,
    produce_raw,
    read_topic,
    register,
    write_config,
)

from connector.app import build_worker
from connector.config import load_settings

pytestmark = pytest.mark.integration

SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Click", "namespace": "test.transforms", "fields": [
        {"name": "eventId", "type": "string"},
        {"name": "sessionId", "type": "string"},
        {"name": "userId", "type": "string"},
        {"name": "eventType", "type": ["null", "string"], "default": None},
        {"name": "itemId", "type": "string"},
        {"name": "sentAt", "type": "long"},  # epoch seconds, no logical type
        {"name": "NUMBER_OF_RATINGS", "type": "int"},
        {"name": "genres", "type": {"type": "array", "items": "string"}},
        {"name": "properties", "type": {"type": "map", "values": "string"}},
    ],
}
# The same record with sentAt an ISO-8601 string.
ISO_SCHEMA: dict[str, Any] = {**SCHEMA, "name": "IsoClick", "fields": [
    {"name": "sentAt", "type": "string"} if f["name"] == "sentAt" else f for f in SCHEMA["fields"]]}
SENT = int(dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC).timestamp())


def _click(i: int, **overrides: Any) -> dict[str, Any]:
    return {"eventId": f"e-{i}", "sessionId": f"s-{i % 3}", "userId": f"u-{i % 3}",
            "eventType": "click" if i % 2 else None, "itemId": f"item-{i}", "sentAt": SENT + i,
            "NUMBER_OF_RATINGS": i, "genres": ["Action", "Comedy"], "properties": {"page_kind": "home"}} | overrides


def test_transforms_shape_filter_and_dead_letter_by_configuration_only(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, start_emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    emulator = start_emulator()
    clicks, stamped, dlq = new_topic(partitions=2), new_topic(partitions=1, suffix="ts"), new_topic(suffix="dlq")
    reader = tmp_path / "click.avsc"
    reader.write_text(json.dumps(SCHEMA))
    records = [_click(i) for i in range(12)]
    records += [_click(100 + i, eventType="heartbeat") for i in range(4)]
    bad = {"e-200": _click(200, sentAt=int(time.time()) + 3 * 86400),  # three days ahead
           "e-201": _click(201, sentAt=900_000_000),  # 1998: before the window
           "e-202": _click(202, genres=["Sci|Fi"])}
    records += list(bad.values())
    schema_id = register(registry_client, f"{clicks}-value", SCHEMA)
    produce_raw(stack.bootstrap, clicks, [(r["sessionId"].encode(), confluent_frame(schema_id, SCHEMA, r))
                                          for r in records], partition_for=lambda i: i % 2)
    stamped_id = register(registry_client, f"{stamped}-value", SCHEMA)
    before = time.time()
    produce_raw(stack.bootstrap, stamped, [(b"k", confluent_frame(stamped_id, SCHEMA, _click(300 + i, sentAt=0)))
                                           for i in range(3)])
    after = time.time()
    iso, iso_reader = new_topic(partitions=1, suffix="iso"), tmp_path / "iso.avsc"
    iso_reader.write_text(json.dumps(ISO_SCHEMA))
    iso_id = register(registry_client, f"{iso}-value", ISO_SCHEMA)
    iso_times = ["2026-03-01T09:00:00.250Z", "2026-03-01T11:00:00.250+02:00", "2026-03-01T09:00:00"]  # no zone
    produce_raw(stack.bootstrap, iso, [(b"k", confluent_frame(iso_id, ISO_SCHEMA, _click(400 + i, sentAt=t)))
                                       for i, t in enumerate(iso_times)])

    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq)
    window = {"time_not_before": "2000-01-01T00:00:00Z", "time_max_ahead_s": 86400}
    config["kafka"].pop("topics")
    config["routes"] = [
        {"name": "clicks", "destination": "events", "topics": [clicks], "reader_schema": str(reader),
         "mapping": {"time_format": "epoch_seconds", **window, "property_keys": "camelCase", "join_lists": True,
                     "property_fields": ["NUMBER_OF_RATINGS", "genres"], "exclude": {"eventType": ["heartbeat"]},
                     "event_type_default": "watch", "tracking_id": None}},
        {"name": "stamped", "destination": "events", "topics": [stamped], "reader_schema": str(reader),
         "tracking_id": f"{tracking_id}-ts",
         "mapping": {"time_format": "record_timestamp", **window, "event_type": None, "event_type_default": "view",
                     "include": {"userId": ["u-0", "u-1", "u-2"]}}},
        {"name": "iso", "destination": "events", "topics": [iso], "reader_schema": str(iso_reader),
         "tracking_id": f"{tracking_id}-iso", "mapping": {"time_format": "iso8601", "event_type_default": "view"}},
    ]
    worker = build_worker(load_settings(write_config(tmp_path, config)))
    assert worker.run(exit_when_idle_s=3) == 0

    got = {e["eventId"]: e for e in emulator.events(tracking_id)}
    assert set(got) == {r["eventId"] for r in records[:12]}
    e3, e4 = got["e-3"], got["e-4"]
    assert e3["eventType"] == "click" and e4["eventType"] == "watch"  # the route's default
    assert e3["sentAt"] == SENT + 3  # the wire's epoch seconds, as sent
    assert json.loads(e3["properties"]) == {"pageKind": "home", "numberOfRatings": 3, "genres": "Action|Comedy"}

    stamped_events = emulator.events(f"{tracking_id}-ts")
    assert len(stamped_events) == 3
    for event in stamped_events:  # the broker's CreateTime (the producer's clock), not the field's 0
        assert before - 1 <= event["sentAt"] <= after + 1
        assert event["eventType"] == "view"

    iso_events = {e["eventId"]: e["sentAt"] for e in emulator.events(f"{tracking_id}-iso")}
    assert iso_events == {"e-400": SENT + 0.25, "e-401": SENT + 0.25}  # one instant, two zones

    letters = read_topic(stack.bootstrap, dlq)
    assert Counter(d.headers["pkc.error.stage"] for d in letters) == {b"validate": 4}
    messages = {d.headers["pkc.error.message"].decode() for d in letters}
    for expected in ("in the future", "before mapping.time_not_before", "contains '|'", "has no time zone"):
        assert [m for m in messages if expected in m], (expected, messages)

    sample = worker.metrics.registry.get_sample_value
    assert sample("pkc_records_filtered_total", {"route": "clicks"}) == 4
    assert sample("pkc_records_filtered_total", {"route": "stamped"}) is None  # every user included
    for topic in (clicks, stamped, iso):
        committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
        assert committed == ends, topic
