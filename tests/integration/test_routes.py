"""Items and users routes next to interactions: one worker, three topics, three APIs.

Real broker, registry and emulator: PutItems/PutUsers calls carry ≤ 10 entries, each route has its
own rate limit and dead-letter topic, tombstones and delete markers are dead-lettered or skipped,
and offsets are committed only after delivery, as for events.
"""

from __future__ import annotations

import json
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
from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

ITEM = json.loads(avro_schemas.read(avro_schemas.ITEM))
USER = json.loads(avro_schemas.read(avro_schemas.USER))
ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
USERS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/USERS"


def _items(n: int, deleted: set[int] = frozenset()) -> list[tuple[bytes, dict[str, Any]]]:  # type: ignore[assignment]
    return [
        (f"item-{i}".encode(), {"itemId": f"item-{i}",
                                "properties": {"CATEGORY": f"c{i % 5}", "PRICE": i + 0.5, "IN_STOCK": i % 2 == 0},
                                "deleted": i in deleted})
        for i in range(n)
    ]


def _users(n: int) -> list[tuple[bytes, dict[str, Any]]]:
    return [(f"user-{i}".encode(), {"userId": f"user-{i}", "properties": {"MEMBERSHIP": "gold", "AGE": 20 + i},
                                    "deleted": False}) for i in range(n)]


def _config(stack: Any, emulator: Any, group_id: str, tracking_id: str, topics: dict[str, str], dlq: str,
            **route_overrides: Any) -> dict[str, Any]:
    config = connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
        topics=[topics["events"]], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq,
        personalize={"max_requests_per_second": 10},
    )
    config["routes"] = [
        {"name": "catalogue", "destination": "items", "topics": [topics["items"]], "dataset_arn": ITEMS_ARN,
         **route_overrides.get("items", {})},
        {"name": "profiles", "destination": "users", "topics": [topics["users"]], "dataset_arn": USERS_ARN,
         **route_overrides.get("users", {})},
    ]
    return config


def test_one_worker_streams_interactions_items_and_users_each_by_its_own_rules(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, start_emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    # Every tracker and dataset gets 12 requests/s at the emulator; each route stays under it on
    # its own (events configured at 10/s, items and users at their 10/s default).
    emulator = start_emulator("--max-requests-per-second", "12")
    topics = {"events": new_topic(partitions=2), "items": new_topic(partitions=2, suffix="items"),
              "users": new_topic(partitions=1, suffix="users")}
    dlq = new_topic(partitions=1, suffix="dlq")
    produce(generate(300, 30, seed=9), stack.bootstrap, stack.registry_url, topics["events"], progress=False)
    item_id = register(registry_client, f"{topics['items']}-value", ITEM)
    user_id = register(registry_client, f"{topics['users']}-value", USER)
    items, users = _items(95), _users(23)
    produce_raw(stack.bootstrap, topics["items"], [(k, confluent_frame(item_id, ITEM, v)) for k, v in items])
    produce_raw(stack.bootstrap, topics["users"], [(k, confluent_frame(user_id, USER, v)) for k, v in users])

    config = _config(stack, emulator, group_id, tracking_id, topics, dlq)
    code, summary = run_in_process(write_config(tmp_path, config), idle_s=4)
    assert code == 0, summary
    stats = emulator.stats()
    print(f"\ndelivered_by_route={summary['delivered_by_route']} calls={summary['calls']} "
          f"throttled_at_emulator={stats['throttled_calls']}")

    assert len(emulator.events(tracking_id)) == 300
    got_items = {i["itemId"]: i for i in emulator.items(ITEMS_ARN)}
    got_users = {u["userId"]: u for u in emulator.users(USERS_ARN)}
    assert set(got_items) == {v["itemId"] for _, v in items}
    assert set(got_users) == {v["userId"] for _, v in users}
    assert json.loads(got_items["item-3"]["properties"]) == {"CATEGORY": "c3", "PRICE": 3.5, "IN_STOCK": False}
    assert json.loads(got_users["user-2"]["properties"]) == {"MEMBERSHIP": "gold", "AGE": 22}
    # ≤ 10 entries per PutItems/PutUsers call: 95 items over 2 partitions need at least 10 calls.
    ops = stats["operations"]
    assert ops["PutItems"]["calls"] >= 10 and ops["PutUsers"]["calls"] >= 3
    assert summary["delivered_by_route"] == {"events": 300, "catalogue": 95, "profiles": 23}
    assert stats["throttled_calls"] == 0
    for topic in topics.values():
        committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
        assert committed == ends, topic


@pytest.mark.parametrize("on_delete", ["dead-letter", "skip"])
def test_tombstones_and_delete_markers_are_dead_lettered_or_skipped(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path, on_delete: str,
) -> None:
    topics = {"events": new_topic(partitions=1), "items": new_topic(partitions=1, suffix="items"),
              "users": new_topic(partitions=1, suffix="users")}
    dlq = new_topic(partitions=1, suffix="dlq")
    arn = f"{ITEMS_ARN}-{tracking_id}"  # this test's own dataset in the shared emulator
    item_schema_id = register(registry_client, f"{topics['items']}-value", ITEM)
    items = _items(20, deleted={4, 11})
    records: list[tuple[bytes, bytes | None]] = [(k, confluent_frame(item_schema_id, ITEM, v)) for k, v in items]
    records.insert(7, (b"item-gone", None))  # a tombstone of a compacted topic
    produce_raw(stack.bootstrap, topics["items"], records)

    config = _config(stack, emulator, group_id, tracking_id, topics, dlq,
                     items={"on_delete": on_delete, "dataset_arn": arn})
    code, summary = run_in_process(write_config(tmp_path, config), idle_s=3)
    assert code == 0, summary
    delivered = {i["itemId"] for i in emulator.items(arn)}
    assert delivered == {f"item-{i}" for i in range(20) if i not in (4, 11)}
    dead = read_topic(stack.bootstrap, dlq)
    reasons = Counter(d.headers["pkc.error.class"].decode() for d in dead)
    print(f"\non_delete={on_delete} delivered={len(delivered)} dead_letters={dict(reasons)} "
          f"skipped={summary['deletes_skipped']}")
    if on_delete == "dead-letter":
        assert reasons == {"Tombstone": 1, "DeleteMarker": 2}
        assert all(d.headers["pkc.error.stage"] == b"validate" for d in dead)
    else:
        assert not dead
        assert summary["deletes_skipped"] == 3
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topics["items"])
    assert committed == ends


def test_item_errors_are_dead_lettered_by_stage_and_the_rest_delivered(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, start_emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    emulator = start_emulator()
    emulator.set_faults(reject_item_ids=["item-5"])  # refused by the service: found by bisection
    topics = {"events": new_topic(partitions=1), "items": new_topic(partitions=1, suffix="items"),
              "users": new_topic(partitions=1, suffix="users")}
    dlq, items_dlq = new_topic(partitions=1, suffix="dlq"), new_topic(partitions=1, suffix="items-dlq")
    item_schema_id = register(registry_client, f"{topics['items']}-value", ITEM)
    items = _items(12)
    items[8] = (b"bad", {"itemId": "x" * 257, "properties": {}, "deleted": False})  # over the 256 limit
    produce_raw(stack.bootstrap, topics["items"], [(k, confluent_frame(item_schema_id, ITEM, v)) for k, v in items])

    config = _config(stack, emulator, group_id, tracking_id, topics, dlq, items={"dlq_topic": items_dlq})
    code, summary = run_in_process(write_config(tmp_path, config), idle_s=3)
    assert code == 0, summary
    assert {i["itemId"] for i in emulator.items(ITEMS_ARN)} == {f"item-{i}" for i in range(12) if i not in (5, 8)}
    assert read_topic(stack.bootstrap, dlq) == []  # the items route has its own dead-letter topic
    dead = {d.headers["pkc.source.offset"].decode(): d.headers for d in read_topic(stack.bootstrap, items_dlq)}
    assert dead["8"]["pkc.error.stage"] == b"validate" and b"itemId" in dead["8"]["pkc.error.message"]
    assert dead["5"]["pkc.error.stage"] == b"send"
    assert dead["5"]["pkc.error.class"] == b"InvalidInputException"
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topics["items"])
    assert committed == ends
