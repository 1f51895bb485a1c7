"""PutActions and PutActionInteractions routes, end to end: real broker, registry and emulator.

One worker per Kafka client streams an actions topic and an action-interactions topic: every
call carries ≤ 10 entries, a session's interactions arrive in order, records without an eventId
get the one derived from their position, a record-supplied trackingId is honoured, bad records are
dead-lettered with their context, metrics count per route, and offsets are committed after delivery.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
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
    run_in_process,
    write_config,
)

import avro_schemas
from connector.destinations.events import derived_event_id
from connector.records import SourceRecord

pytestmark = pytest.mark.integration

ACTION = json.loads(avro_schemas.read(avro_schemas.ACTION))
ACTION_INTERACTION = json.loads(avro_schemas.read(avro_schemas.ACTION_INTERACTION))
ACTIONS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ACTIONS"
START = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
SESSIONS = 4  # the last one names its own tracker in the record
BAD_ACTION, DELETED_ACTION, BAD_INTERACTION = 5, 7, 13


def _actions(n: int) -> list[tuple[bytes, dict[str, Any]]]:
    out = []
    for i in range(n):
        action_id = "x" * 257 if i == BAD_ACTION else f"action-{i}"
        out.append((f"action-{i}".encode(), {"actionId": action_id, "properties": {"VALUE": i * 10, "TIER": "gold"},
                                             "deleted": i == DELETED_ACTION}))
    return out


def _interactions(n: int, own_tracker: str) -> list[tuple[bytes, dict[str, Any]]]:
    out = []
    for i in range(n):
        session = f"session-{i % SESSIONS}"
        out.append((session.encode(), {
            "eventId": f"own-{i}" if i % 2 else None,
            "trackingId": own_tracker if i % SESSIONS == SESSIONS - 1 else None,
            "actionId": f"action-{i % 7}",
            "sessionId": session,
            "userId": f"user-{i % SESSIONS}" if i % 3 else None,
            "eventType": ("Viewed", "Taken", "Not Taken")[i % 3],
            "timestamp": START + dt.timedelta(seconds=i),
            "recommendationId": None,
            "impression": [f"action-{i % 7}", "action-0"] if i % 5 == 0 else [],
            "properties": {"userId": "reserved"} if i == BAD_INTERACTION else {"step": str(i)},
        }))
    return out


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_actions_and_action_interactions_stream_with_the_guarantees_of_events(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path, client: str,
) -> None:
    actions_topic = new_topic(partitions=2, suffix="actions")
    interactions_topic = new_topic(partitions=2, suffix="action-interactions")
    dlq = new_topic(partitions=1, suffix="dlq")
    arn, own_tracker = f"{ACTIONS_ARN}-{tracking_id}", f"{tracking_id}-own"  # this test's own, in a shared emulator
    actions, interactions = _actions(23), _interactions(40, own_tracker)
    action_schema = register(registry_client, f"{actions_topic}-value", ACTION)
    interaction_schema = register(registry_client, f"{interactions_topic}-value", ACTION_INTERACTION)
    produce_raw(stack.bootstrap, actions_topic, [(k, confluent_frame(action_schema, ACTION, v)) for k, v in actions])
    framed = [(k, confluent_frame(interaction_schema, ACTION_INTERACTION, v)) for k, v in interactions]
    produce_raw(stack.bootstrap, interactions_topic, framed)

    config = connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url, topics=[],
        group_id=group_id, tracking_id="unused-events-tracker", dlq_topic=dlq, client=client,
    )
    config["routes"] = [
        {"name": "offers", "destination": "actions", "topics": [actions_topic], "dataset_arn": arn},
        {"name": "offer-clicks", "destination": "action_interactions", "topics": [interactions_topic],
         "tracking_id": tracking_id},
    ]
    code, summary = run_in_process(write_config(tmp_path, config), idle_s=3)
    assert code == 0, summary
    print(f"\nclient={client} delivered_by_route={summary['delivered_by_route']} calls={summary['calls']} "
          f"dead_letters={summary['dead_letters_by_reason']}")

    # Actions: everything but the delete marker and the over-long id, properties as a JSON string.
    got_actions = {a["actionId"]: a for a in emulator.actions(arn)}
    assert set(got_actions) == {f"action-{i}" for i in range(23) if i not in (BAD_ACTION, DELETED_ACTION)}
    assert json.loads(got_actions["action-3"]["properties"]) == {"VALUE": 30, "TIER": "gold"}

    # Interactions: each tracker gets its own; sessions in order; event ids own or derived.
    positions = {r.value: (r.partition, r.offset) for r in read_topic(stack.bootstrap, interactions_topic)}
    expected: dict[str, list[dict[str, Any]]] = {tracking_id: [], own_tracker: []}
    for (_, value), (_, framed_value) in zip(interactions, framed, strict=True):
        i = int(value["properties"].get("step", BAD_INTERACTION))
        if i == BAD_INTERACTION:
            continue
        partition, offset = positions[framed_value]
        event_id = value["eventId"] or derived_event_id(SourceRecord(interactions_topic, partition, offset, None, None))
        entry = {"actionId": value["actionId"], "sessionId": value["sessionId"], "eventType": value["eventType"],
                 "timestamp": (value["timestamp"] - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds(),
                 "eventId": event_id, "properties": json.dumps({"step": str(i)}, separators=(",", ":"))}
        if value["userId"]:
            entry["userId"] = value["userId"]
        if value["impression"]:
            entry["impression"] = value["impression"]
        expected[value["trackingId"] or tracking_id].append({"trackingId": value["trackingId"] or tracking_id,
                                                             **entry})
    for tracker, wanted in expected.items():
        stored = [{k: v for k, v in r.items() if k != "receivedAt"} for r in emulator.action_interactions(tracker)]
        assert sorted(stored, key=lambda r: r["eventId"]) == sorted(wanted, key=lambda r: r["eventId"]), tracker
        for session in {r["sessionId"] for r in stored}:
            times = [r["timestamp"] for r in stored if r["sessionId"] == session]
            assert times == sorted(times), f"{session} out of order"

    # ≤ 10 entries per call: 21 actions over 2 partitions and 39 interactions over 4 sessions.
    ops = emulator.stats()["operations"]
    assert ops["PutActions"]["calls"] >= 3 and ops["PutActionInteractions"]["calls"] >= SESSIONS
    assert summary["delivered_by_route"] == {"offers": 21, "offer-clicks": 39}
    assert summary["events_delivered"] == 0  # pkc_events_delivered_total counts PutEvents only
    assert summary["calls"] >= math.ceil(21 / 10) + SESSIONS
    assert summary["dead_letters_by_reason"] == {"validate/DeleteMarker": 1, "validate/InvalidEvent": 2}

    dead = {(d.headers["pkc.source.topic"].decode(), int(d.headers["pkc.source.offset"])): d
            for d in read_topic(stack.bootstrap, dlq)}
    assert Counter(topic for topic, _ in dead) == {actions_topic: 2, interactions_topic: 1}
    [bad_interaction] = [d for (topic, _), d in dead.items() if topic == interactions_topic]
    assert bad_interaction.value == framed[BAD_INTERACTION][1] and bad_interaction.key == b"session-1"
    assert b"properties: must not contain the reserved key 'userId'" in bad_interaction.headers["pkc.error.message"]
    classes = Counter(d.headers["pkc.error.class"].decode() for (topic, _), d in dead.items() if topic == actions_topic)
    assert classes == {"DeleteMarker": 1, "InvalidEvent": 1}
    for topic in (actions_topic, interactions_topic):
        committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
        # A partition the keys did not hash to has nothing to commit.
        assert {p: committed[p] for p, end in ends.items() if end} == {p: end for p, end in ends.items() if end}, topic


def test_dlq_replay_of_an_action_interactions_route_after_a_mapping_fix(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    """A wrong mapping dead-letters every interaction to the route's own DLQ; `dlq replay --route`
    with the fixed configuration delivers each once, with the ids derived from the original positions."""
    topic = new_topic(partitions=2, suffix="action-interactions")
    route_dlq = new_topic(partitions=1, suffix="ai-dlq")
    interactions = _interactions(12, f"{tracking_id}-unused")
    interactions = [(k, {**v, "trackingId": None, "properties": {"step": str(i)}})
                    for i, (k, v) in enumerate(interactions)]
    schema_id = register(registry_client, f"{topic}-value", ACTION_INTERACTION)
    framed = [(k, confluent_frame(schema_id, ACTION_INTERACTION, v)) for k, v in interactions]
    produce_raw(stack.bootstrap, topic, framed)

    def config(mapping: dict[str, Any]) -> dict[str, Any]:
        base = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                                topics=[], group_id=group_id, tracking_id="unused-events-tracker")
        base["routes"] = [{"name": "offer-clicks", "destination": "action_interactions", "topics": [topic],
                           "tracking_id": tracking_id, "dlq_topic": route_dlq, "mapping": mapping}]
        return base

    code, summary = run_in_process(write_config(tmp_path, config({"session_id": "noSuchField"}), "broken.yaml"))
    assert code == 0 and summary["dead_letters"] == 12, summary
    assert emulator.action_interactions(tracking_id) == []

    fixed = write_config(tmp_path, config({}), "fixed.yaml")
    exe = Path(sys.executable).with_name("personalize-connector")
    replay = subprocess.run([str(exe), "dlq", "replay", "--config", str(fixed), "--route", "offer-clicks"],
                            capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
                            env={**os.environ, "COLUMNS": "200"})
    print(replay.stdout)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert f"records that fail again go to {route_dlq}" in replay.stdout
    stored = emulator.action_interactions(tracking_id)
    positions = {r.value: (r.partition, r.offset) for r in read_topic(stack.bootstrap, topic)}
    expected = {value["eventId"] or derived_event_id(SourceRecord(topic, *positions[frame], None, None))
                for (_, value), (_, frame) in zip(interactions, framed, strict=True)}
    assert sorted(r["eventId"] for r in stored) == sorted(expected)
    again = subprocess.run([str(exe), "dlq", "replay", "--config", str(fixed), "--route", "offer-clicks"],
                           capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)
    assert again.returncode == 0 and "nothing to replay" in again.stdout, again.stdout + again.stderr
    assert len(emulator.action_interactions(tracking_id)) == 12
