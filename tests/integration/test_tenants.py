"""Tenants isolated, end to end: real broker, registry and emulator.

Records of several tenants share a topic and its partitions, each naming its own tracker. The
emulator knows the route's tracker A and a tenant's tracker C, not tenant B's: every A and C event
is delivered, every B record is dead-lettered (UnknownTracker, with its source position), the
offsets are committed to the end, and the route never pauses. With `allowed_tracking_ids`, a
record naming a tracker outside it is a `validate` dead letter and no call is made for it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
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
    write_config,
)

from connector.app import build_worker
from connector.config import load_settings

pytestmark = pytest.mark.integration

SCHEMA = canonical_schema()
SENT = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
PARTITIONS, SESSIONS = 3, 6


def _records(trackers: list[str | None]) -> list[tuple[bytes, dict[str, Any]]]:
    """One event per tracker named (None: the record names none, so the route's own), over
    SESSIONS sessions (keys)."""
    out = []
    for i, tracker in enumerate(trackers):
        session = f"session-{i % SESSIONS}"
        out.append((session.encode(), {
            "eventId": f"event-{i}", "trackingId": tracker, "sessionId": session,
            "userId": f"user-{i % SESSIONS}", "eventType": "view", "eventValue": None, "itemId": f"item-{i}",
            "properties": {}, "sentAt": SENT + dt.timedelta(seconds=i), "recommendationId": None,
            "impression": [], "eventAttributionSource": None,
        }))
    return out


def _produce(stack: Any, registry_client: Any, topic: str, records: list[tuple[bytes, dict[str, Any]]]) -> int:
    """Round robin over the partitions, whatever the key: every tenant has records on each."""
    schema_id = register(registry_client, f"{topic}-value", SCHEMA)
    produce_raw(stack.bootstrap, topic, [(k, confluent_frame(schema_id, SCHEMA, v)) for k, v in records],
                partition_for=lambda i: i % PARTITIONS)
    return schema_id


def _run(config: dict[str, Any], tmp_path: Path) -> tuple[int, Any]:
    """Run the worker until idle; a stalled partition never gets idle, so it is stopped after 40 s."""
    worker = build_worker(load_settings(write_config(tmp_path, config)))
    deadline = threading.Timer(40, worker.request_stop)
    deadline.start()
    try:
        code = worker.run(exit_when_idle_s=3)
    finally:
        deadline.cancel()
    return code, worker.metrics


def test_an_unknown_tenant_tracker_is_dead_lettered_and_never_pauses_the_other_tenants(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, start_emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    own, known, unknown = tracking_id, f"{tracking_id}-c", f"{tracking_id}-b"
    emulator = start_emulator("--tracking-id", own, "--tracking-id", known)
    topic, dlq = new_topic(partitions=PARTITIONS), new_topic(partitions=1, suffix="dlq")
    # A (by name or by default) and C interleaved, with a run of 40 of B's in the middle: about 13
    # in a row on each partition, where ordinary dead letters stall it after 5 in a row, or more
    # than half of 20.
    others: list[str | None] = [None, own, known]
    records = _records([others[i % 3] for i in range(40)] + [unknown] * 40 + [others[i % 3] for i in range(40)])
    schema_id = _produce(stack, registry_client, topic, records)
    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=own, dlq_topic=dlq,
                              dlq={"max_consecutive_failures": 5, "max_failure_ratio": 0.5, "failure_ratio_window": 20})

    with caplog.at_level(logging.WARNING):
        code, metrics = _run(config, tmp_path)
    assert code == 0

    # Every A and C event delivered, each to its tracker; none of B's reached the service.
    for tracker in (own, known):
        wanted = {v["eventId"] for _, v in records if (v["trackingId"] or own) == tracker}
        assert {e["eventId"] for e in emulator.events(tracker)} == wanted, tracker
    assert emulator.events(unknown) == []

    # Every B record is in the DLQ, once, as UnknownTracker at its source position.
    positions = {r.value: (r.partition, r.offset) for r in read_topic(stack.bootstrap, topic)}
    framed = {v["eventId"]: confluent_frame(schema_id, SCHEMA, v) for _, v in records}
    letters = read_topic(stack.bootstrap, dlq)
    expected = {positions[framed[v["eventId"]]] for _, v in records if v["trackingId"] == unknown}
    got = Counter((int(d.headers["pkc.source.partition"]), int(d.headers["pkc.source.offset"])) for d in letters)
    assert set(got) == expected and set(got.values()) == {1}
    for letter in letters:
        assert letter.headers["pkc.error.class"] == b"UnknownTracker"
        assert letter.headers["pkc.error.stage"] == b"send"
        assert unknown.encode() in letter.headers["pkc.error.message"]
        assert letter.headers["pkc.source.topic"] == topic.encode()

    # Committed to the end; never paused, never stalled, never unready.
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert {p: committed[p] for p, end in ends.items() if end} == {p: end for p, end in ends.items() if end}
    sample = metrics.registry.get_sample_value
    assert sample("pkc_unknown_tracker_dead_letters_total", {"route": "events", "tracking_id": "other"}) == 40
    assert sample("pkc_dead_letters_total", {"stage": "send", "error_class": "UnknownTracker"}) == 40
    assert sample("pkc_systemic_failure") == 0
    stalls = {reason: sample("pkc_partition_stalls_total", {"reason": reason})
              for reason in ("consecutive_failures", "failure_ratio")}
    assert stalls == {"consecutive_failures": None, "failure_ratio": None}
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "systemic reason" in m or "stalled at offset" in m]
    # Found unknown by a few batches at most (those in flight together); the rest without a call.
    found = [m for m in messages if f"does not know the tracker {unknown!r}" in m]
    assert 1 <= len(found) <= 8  # batching.max_in_flight_calls
    rejected = emulator.stats()["rejected_calls"]
    assert rejected == 4 * len(found), (rejected, len(found))


def test_a_record_naming_a_tracker_outside_the_allow_list_is_a_validate_dead_letter(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, start_emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    own, allowed, stranger = tracking_id, f"{tracking_id}-c", f"{tracking_id}-d"
    emulator = start_emulator()  # knows every tracker: a call for the stranger would be stored
    topic, dlq = new_topic(partitions=PARTITIONS), new_topic(partitions=1, suffix="dlq")
    _produce(stack, registry_client, topic, _records([None, allowed, stranger] * 10))
    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=own, dlq_topic=dlq,
                              personalize={"allowed_tracking_ids": [allowed]})

    code, metrics = _run(config, tmp_path)
    assert code == 0
    assert len(emulator.events(own)) == 10 and len(emulator.events(allowed)) == 10
    assert emulator.events(stranger) == []  # no call was made for it
    letters = read_topic(stack.bootstrap, dlq)
    assert len(letters) == 10
    for letter in letters:
        assert letter.headers["pkc.error.stage"] == b"validate"
        assert letter.headers["pkc.error.class"] == b"TrackerNotAllowed"
        assert b"allowed_tracking_ids" in letter.headers["pkc.error.message"]
    assert metrics.registry.get_sample_value("pkc_dead_letters_total",
                                             {"stage": "validate", "error_class": "TrackerNotAllowed"}) == 10
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert {p: committed[p] for p, end in ends.items() if end} == {p: end for p, end in ends.items() if end}
