"""End to end on the real local stack: Kafka broker, Apicurio registry, Personalize emulator.

Each test produces real Avro records, runs the connector exactly as `personalize-connector run`
builds it, and checks what reached the emulator, what reached the dead-letter topic, and what
the consumer group committed.
"""

from __future__ import annotations

import io
import json
import math
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fixtures.pipeline import (
    ReadRecord,
    canonical_schema,
    committed_and_end_offsets,
    confluent_frame,
    connector_config,
    produce_raw,
    read_topic,
    register,
    run_cli,
    run_in_process,
    write_config,
)

from connector.destinations.events import derived_event_id
from connector.records import SourceRecord
from connector.tools.produce import produce
from connector.tools.workload import generate

# Every end-to-end behaviour holds with either Kafka client behind the same Source protocol.
pytestmark = [pytest.mark.integration, pytest.mark.parametrize("kafka_client", ["confluent", "kafka-python"])]

SCHEMA = canonical_schema()
PARSED = fastavro.parse_schema(SCHEMA)


def _decode(value: bytes) -> dict[str, Any]:
    return dict(fastavro.schemaless_reader(io.BytesIO(value[5:]), PARSED, PARSED))  # type: ignore[arg-type]


def _expected(value: dict[str, Any], rec: ReadRecord) -> dict[str, Any]:
    """What the emulator must have received for one canonical record (the PutEvents mapping)."""
    sent_at = value["sentAt"]
    millis = int(sent_at.timestamp() * 1000) if hasattr(sent_at, "timestamp") else int(sent_at)
    event: dict[str, Any] = {
        "sessionId": value["sessionId"],
        "eventId": value["eventId"] or derived_event_id(SourceRecord(rec.topic, rec.partition, rec.offset, None, None)),
        "eventType": value["eventType"],
        "sentAt": millis / 1000,
    }
    if value["userId"]:
        event["userId"] = value["userId"]
    for name in ("eventValue", "itemId", "recommendationId"):
        if value[name] is not None:
            event[name] = value[name]
    if value["properties"]:
        event["properties"] = value["properties"]
    if value["impression"]:
        event["impression"] = value["impression"]
    if value["eventAttributionSource"]:
        event["metricAttribution"] = {"eventAttributionSource": value["eventAttributionSource"]}
    return event


def _received(event: dict[str, Any]) -> dict[str, Any]:
    got = {k: v for k, v in event.items() if k not in ("trackingId", "receivedAt")}
    if "properties" in got:
        got["properties"] = json.loads(got["properties"])
    return got


def test_every_event_arrives_once_with_all_fields_and_offsets_are_committed(
    stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
    kafka_client: str,
) -> None:
    topic = new_topic(partitions=4)
    summary = produce(generate(20_000, 2_000, seed=11), stack.bootstrap, stack.registry_url, topic, progress=False)
    assert summary.produced == 20_000

    config = connector_config(client=kafka_client, bootstrap=stack.bootstrap, registry_url=stack.registry_url,
                              emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id,
                              dlq_topic=new_topic(partitions=1, suffix="dlq"))
    code, stats = run_in_process(write_config(tmp_path, config))
    assert code == 0

    produced = read_topic(stack.bootstrap, topic)
    expected = {}
    for rec in produced:
        assert rec.value is not None
        event = _expected(_decode(rec.value), rec)
        expected[event["eventId"]] = event
    received = emulator.events(tracking_id)
    ids = Counter(e["eventId"] for e in received)
    print(f"\nproduced={len(produced)} delivered={len(received)} distinct={len(ids)} "
          f"calls={stats['calls']} dead_letters={stats['dead_letters']}")
    assert len(expected) == 20_000
    assert [i for i, n in ids.items() if n > 1] == []
    assert set(ids) == set(expected)
    for event in received:
        assert _received(event) == expected[event["eventId"]]
    assert stats["dead_letters"] == 0

    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends


def test_bad_records_are_dead_lettered_with_context(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path, kafka_client: str,
) -> None:
    topic, dlq = new_topic(partitions=3), new_topic(partitions=1, suffix="dlq")
    samples = list(generate(3_000, 300, seed=5, bad_ratio=0.05))
    summary = produce(samples, stack.bootstrap, stack.registry_url, topic, progress=False)
    schema_id = summary.schema_id

    # The kinds the generator does not make: a corrupt body behind a valid header, and a schema
    # that cannot be resolved to ours (no sessionId, no default for it).
    alien = {"type": "record", "name": "Alien", "namespace": "x", "fields": [{"name": "color", "type": "string"}]}
    alien_id = register(registry_client, f"{topic}-alien-value", alien)
    extra = [
        (b"corrupt", b"\x00" + schema_id.to_bytes(4, "big") + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
        (b"incompatible", confluent_frame(alien_id, alien, {"color": "red"})),
        (b"empty", b""),
        (b"wrong-magic", b"\x01" + schema_id.to_bytes(4, "big") + b"abc"),
    ]
    produce_raw(stack.bootstrap, topic, extra)

    # The workload's "unknown-schema-id" records use an id that is never registered: dead-letter
    # them at once instead of waiting decode.unknown_schema_retry_s for it.
    config = connector_config(client=kafka_client, bootstrap=stack.bootstrap, registry_url=stack.registry_url,
                              emulator_url=emulator.url, decode={"unknown_schema_retry_s": 0},
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq)
    code, stats = run_in_process(write_config(tmp_path, config))
    assert code == 0

    produced = read_topic(stack.bootstrap, topic)
    dead = read_topic(stack.bootstrap, dlq)
    received = emulator.events(tracking_id)
    good = summary.good
    bad_total = summary.bad_total + len(extra)
    print(f"\nproduced={len(produced)} good={good} bad={bad_total} delivered={len(received)} "
          f"dead_letters={len(dead)} by_reason={stats['dead_letters_by_reason']}")
    assert len(received) == good
    assert len({e["eventId"] for e in received}) == good
    assert len(dead) == bad_total

    by_position = {(r.partition, r.offset): r for r in produced}
    stages: dict[str, set[str]] = defaultdict(set)
    for letter in dead:
        h = {k: v.decode() for k, v in letter.headers.items() if k.startswith("pkc.")}
        assert h["pkc.source.topic"] == topic
        original = by_position[(int(h["pkc.source.partition"]), int(h["pkc.source.offset"]))]
        assert (letter.key, letter.value) == (original.key, original.value)
        assert h["pkc.error.message"]
        stages[h["pkc.error.stage"]].add(h["pkc.error.class"])
    print(f"dead letters by stage: {dict(stages)}")
    assert set(stages) == {"decode", "validate"}
    # Every undecodable kind has its own error class.
    assert len(stages["decode"]) >= 5

    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends


USER_SCHEMA = {
    "type": "record", "name": "Rating", "namespace": "com.example.shop",
    "fields": [
        {"name": "session", "type": {"type": "record", "name": "Session",
                                     "fields": [{"name": "id", "type": "string"}]}},
        {"name": "customer", "type": ["null", "string"], "default": None},
        {"name": "action", "type": "string"},
        {"name": "product", "type": "string"},
        {"name": "ts", "type": "long"},
        {"name": "numberOfRatings", "type": "int"},
        {"name": "numberOfLikes", "type": "int"},
    ],
}


def test_a_user_schema_with_other_names_works_through_mapping(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path, kafka_client: str,
) -> None:
    topic = new_topic(partitions=2)
    schema_id = register(registry_client, f"{topic}-value", USER_SCHEMA)
    values = [
        {"session": {"id": f"s{i % 7}"}, "customer": None if i % 3 == 0 else f"u{i % 7}", "action": "rate",
         "product": f"p{i}", "ts": 1_700_000_000_123 + i, "numberOfRatings": i, "numberOfLikes": 2 * i}
        for i in range(50)
    ]
    # The user's schema makes customer per event, but a session has one user: keep them consistent.
    for v in values:
        v["customer"] = None if int(v["session"]["id"][1:]) % 3 == 0 else f"u{v['session']['id']}"
    produce_raw(stack.bootstrap, topic, [(v["session"]["id"].encode(), confluent_frame(schema_id, USER_SCHEMA, v))
                                         for v in values])
    # The user's schema is the reader schema too: nothing of ours is imposed on their topic.
    user_schema_file = tmp_path / "rating.avsc"
    user_schema_file.write_text(json.dumps(USER_SCHEMA))
    config = connector_config(
        client=kafka_client, bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
        topics=[topic],
        group_id=group_id, tracking_id=tracking_id, dlq_topic=new_topic(partitions=1, suffix="dlq"),
        decode={"reader_schema": str(user_schema_file)},
        mapping={"session_id": "session.id", "user_id": "customer", "event_type": "action", "item_id": "product",
                 "sent_at": "ts", "event_id": None, "tracking_id": None, "event_value": None,
                 "recommendation_id": None, "impression": None, "event_attribution_source": None,
                 "properties": None, "property_fields": ["numberOfRatings", "numberOfLikes"]},
    )
    code, stats = run_in_process(write_config(tmp_path, config))
    assert code == 0, stats
    received = sorted(emulator.events(tracking_id), key=lambda e: e["itemId"])
    assert len(received) == 50, stats
    by_item = {v["product"]: v for v in values}
    for event in received:
        v = by_item[event["itemId"]]
        assert event["sessionId"] == v["session"]["id"]
        assert event.get("userId") == v["customer"]
        assert event["eventType"] == "rate"
        assert event["sentAt"] == v["ts"] / 1000
        assert json.loads(event["properties"]) == {"numberOfRatings": v["numberOfRatings"],
                                                   "numberOfLikes": v["numberOfLikes"]}


def test_a_schema_evolved_mid_stream_keeps_flowing(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path, kafka_client: str,
) -> None:
    topic = new_topic(partitions=1)
    subject = f"{topic}-value"
    v1_id = register(registry_client, subject, SCHEMA)
    # v2: an optional field removed (recommendationId), a field added with a default (deviceType).
    v2 = dict(SCHEMA)
    v2["fields"] = [f for f in SCHEMA["fields"] if f["name"] != "recommendationId"] + [
        {"name": "deviceType", "type": "string", "default": "unknown"}]
    v2_id = register(registry_client, subject, v2)
    assert v2_id != v1_id

    def event(i: int, **extra: Any) -> dict[str, Any]:
        return {"eventId": f"e{i}", "trackingId": None, "sessionId": "s1", "userId": "u1", "eventType": "view",
                "eventValue": None, "itemId": f"i{i}", "properties": {}, "sentAt": 1_700_000_000_000 + i,
                "impression": [], "eventAttributionSource": None, **extra}

    records = [(b"s1", confluent_frame(v1_id, SCHEMA, event(i, recommendationId="r1"))) for i in range(20)]
    records += [(b"s1", confluent_frame(v2_id, v2, event(i, deviceType="mobile"))) for i in range(20, 40)]
    produce_raw(stack.bootstrap, topic, records)
    config = connector_config(client=kafka_client, bootstrap=stack.bootstrap, registry_url=stack.registry_url,
                              emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id,
                              dlq_topic=new_topic(partitions=1, suffix="dlq"))
    code, stats = run_in_process(write_config(tmp_path, config))
    assert code == 0
    received = {e["eventId"]: e for e in emulator.events(tracking_id)}
    assert sorted(received) == sorted(f"e{i}" for i in range(40))
    assert all(received[f"e{i}"].get("recommendationId") == "r1" for i in range(20))
    assert all("recommendationId" not in received[f"e{i}"] for i in range(20, 40))
    assert stats["dead_letters"] == 0


def test_calls_follow_session_batching(
    stack: Any, new_topic: Any, group_id: str, start_emulator: Any, tracking_id: str, aws_env: None,
    tmp_path: Path, kafka_client: str,
) -> None:
    emulator = start_emulator()  # its own emulator: the call count below is this test's alone
    topic = new_topic(partitions=3)
    sizes = {f"s{i}": n for i, n in enumerate([1, 9, 10, 11, 20, 25, 3, 47, 10, 2])}
    schema_id = register_canonical(stack, topic)
    records = []
    # Interleave sessions the way live traffic does; each session keeps its order (keyed by session).
    cursors = dict.fromkeys(sizes, 0)
    while any(cursors[s] < n for s, n in sizes.items()):
        for session, n in sizes.items():
            if cursors[session] < n:
                i = cursors[session]
                cursors[session] += 1
                value = {"eventId": f"{session}-{i}", "trackingId": None, "sessionId": session, "userId": None,
                         "eventType": "view", "eventValue": None, "itemId": f"i{i}", "properties": {},
                         "sentAt": 1_700_000_000_000 + i, "recommendationId": None, "impression": [],
                         "eventAttributionSource": None}
                records.append((session.encode(), confluent_frame(schema_id, SCHEMA, value)))
    produce_raw(stack.bootstrap, topic, records)
    config = connector_config(client=kafka_client, bootstrap=stack.bootstrap, registry_url=stack.registry_url,
                              emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id,
                              dlq_topic=new_topic(partitions=1, suffix="dlq"), batching={"linger_ms": 2000})
    code, stats = run_in_process(write_config(tmp_path, config), idle_s=4)
    assert code == 0
    received = emulator.events(tracking_id)
    calls = emulator.stats()["operations"]["PutEvents"]["calls"] if "operations" in emulator.stats() else None
    ideal = sum(math.ceil(n / 10) for n in sizes.values())
    print(f"\nsessions={len(sizes)} events={sum(sizes.values())} calls={stats['calls']} ideal={ideal}")
    assert len(received) == sum(sizes.values())
    assert stats["calls"] == ideal
    if calls is not None:
        assert calls == ideal
    # Each session's events arrive in their original order.
    for session, n in sizes.items():
        order = [e["eventId"] for e in received if e["sessionId"] == session]
        assert order == [f"{session}-{i}" for i in range(n)]


def register_canonical(stack: Any, topic: str) -> int:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return register(SchemaRegistryClient({"url": stack.registry_url}), f"{topic}-value", SCHEMA)


def test_without_a_dlq_a_bad_record_stops_the_worker_without_committing_past_it(
    stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
    kafka_client: str,
) -> None:
    topic = new_topic(partitions=1)
    schema_id = register_canonical(stack, topic)
    good = {"eventId": "g", "trackingId": None, "sessionId": "s", "userId": None, "eventType": "view",
            "eventValue": None, "itemId": "i", "properties": {}, "sentAt": 1_700_000_000_000,
            "recommendationId": None, "impression": [], "eventAttributionSource": None}
    produce_raw(stack.bootstrap, topic, [
        (b"s", confluent_frame(schema_id, SCHEMA, {**good, "eventId": "g0"})),
        (b"s", confluent_frame(schema_id, SCHEMA, {**good, "eventId": "g1"})),
        (b"s", b"not avro at all"),
        (b"s", confluent_frame(schema_id, SCHEMA, {**good, "eventId": "g3"})),
    ])
    config = connector_config(client=kafka_client, bootstrap=stack.bootstrap, registry_url=stack.registry_url,
                              emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id)
    result = run_cli(write_config(tmp_path, config), "--exit-when-idle", "3")
    assert result.returncode == 1, result.stderr
    assert "No dlq.topic is configured" in result.stderr
    assert f"{topic}[0]@2" in result.stderr
    committed, _ = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed[0] <= 2


def test_sigterm_drains_commits_and_exits_zero(
    stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
    kafka_client: str,
) -> None:
    topic = new_topic(partitions=2)
    produce(generate(2_000, 200, seed=3), stack.bootstrap, stack.registry_url, topic, progress=False)
    # A long linger keeps events buffered, so SIGTERM has work to drain.
    config = connector_config(client=kafka_client, bootstrap=stack.bootstrap, registry_url=stack.registry_url,
                              emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id,
                              dlq_topic=new_topic(partitions=1, suffix="dlq"), batching={"linger_ms": 60_000})
    exe = Path(sys.executable).with_name("personalize-connector")
    proc = subprocess.Popen([str(exe), "run", "--config", str(write_config(tmp_path, config)), "--log-format", "text"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        # Full sessions (10 events) are sent at once; the rest wait for the 60 s linger.
        while time.monotonic() < deadline and not emulator.events(tracking_id):
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    received = emulator.events(tracking_id)
    per_session = Counter(e["sessionId"] for e in received)
    # Only the drain sends a partial batch before its linger: SIGTERM flushed the open sessions.
    assert any(n % 10 for n in per_session.values()), per_session
    # Whatever was committed was delivered: every record below the committed offset arrived.
    committed, _ = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    delivered = {e["eventId"] for e in received}
    below = [rec for rec in read_topic(stack.bootstrap, topic) if rec.offset < committed[rec.partition]]
    assert below, "nothing was committed"
    assert all(_expected(_decode(rec.value or b""), rec)["eventId"] in delivered for rec in below)
