"""Poison records: a bad record never blocks its partition, a run of them stalls it (and only it).

Every record here is produced to an explicit partition, so "the good records after the poison in
the same partition" is exact, not statistical.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.faults import OffsetProbe, event_id_of, figures, run_worker, wait_until
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

from connector.dlq import parse_error_headers

pytestmark = pytest.mark.integration

SCHEMA = canonical_schema()
REJECTED_ITEM = "item-refused-by-the-service"


def _event(event_id: str, session: str, item: str = "item-1", **changes: Any) -> dict[str, Any]:
    return {"eventId": event_id, "trackingId": None, "sessionId": session, "userId": None, "eventType": "view",
            "eventValue": None, "itemId": item, "properties": {}, "sentAt": 1_748_736_000_000,
            "recommendationId": None, "impression": [], "eventAttributionSource": None, **changes}


def _to(partition: int) -> Callable[[int], int]:
    """A `produce_raw` partitioner sending every record to `partition`."""
    return lambda _i: partition


def _dead_letters(bootstrap: str, dlq: str) -> dict[tuple[int, int], dict[str, str]]:
    """(source partition, source offset) -> pkc.* headers of every dead letter."""
    out = {}
    for letter in read_topic(bootstrap, dlq):
        h = parse_error_headers(list(letter.headers.items()))
        out[(int(h["pkc.source.partition"]), int(h["pkc.source.offset"]))] = h
    return out


def test_a_poison_record_of_each_kind_is_dead_lettered_and_its_partition_keeps_flowing(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, start_emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    emulator = start_emulator()
    emulator.set_faults(reject_item_ids=[REJECTED_ITEM])
    topic, dlq = new_topic(partitions=3), new_topic(partitions=1, suffix="dlq")
    schema_id = register(registry_client, f"{topic}-value", SCHEMA)

    def good(i: int, partition: int) -> tuple[bytes, bytes]:
        session = f"p{partition}-s{i % 3}"
        return session.encode(), confluent_frame(schema_id, SCHEMA, _event(f"p{partition}-e{i}", session))

    # Partition 0: good x20, undecodable, good x20, valid Avro but invalid for PutEvents, good x20,
    # refused by the service (batched with good events of its session), good x20.
    poison = {
        "decode": (b"p0-s0", b"not avro at all"),
        "validate": (b"p0-s1", confluent_frame(schema_id, SCHEMA,
                                               _event("p0-bad-rec", "p0-s1", recommendationId="r" * 41))),
        "send": (b"p0-s2", confluent_frame(schema_id, SCHEMA, _event("p0-refused", "p0-s2", item=REJECTED_ITEM))),
    }
    p0: list[tuple[bytes, bytes]] = []
    poison_offsets: dict[str, int] = {}
    n = 0
    for stage in ("decode", "validate", "send"):
        p0 += [good(n + i, 0) for i in range(20)]
        n += 20
        poison_offsets[stage] = len(p0)
        p0.append(poison[stage])
    p0 += [good(n + i, 0) for i in range(20)]
    others = {p: [good(i, p) for i in range(30)] for p in (1, 2)}
    for partition, records in ((0, p0), *others.items()):
        produce_raw(stack.bootstrap, topic, records, partition_for=_to(partition))

    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq,
                              dlq={"max_consecutive_failures": 5, "stall_retry_s": 1})
    with run_worker(write_config(tmp_path, config), exit_when_idle_s=3) as running:
        running.thread.join(300)
    assert running.exit_codes == [0]

    produced = read_topic(stack.bootstrap, topic)
    expected = {event_id_of(r) for r in produced} - {None, "p0-bad-rec", "p0-refused"}
    received = emulator.events(tracking_id)
    dead = _dead_letters(stack.bootstrap, dlq)
    figures("poison", len(produced), received, len(dead))
    assert {e["eventId"] for e in received} == expected
    assert len(received) == len(expected) == 20 * 4 + 30 * 2
    assert {pos: h["pkc.error.stage"] for pos, h in dead.items()} == {
        (0, offset): stage for stage, offset in poison_offsets.items()}
    assert dead[(0, poison_offsets["send"])]["pkc.error.class"] == "InvalidInputException"
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends


def _stall_scenario(stack: Any, topic: str, dlq: str, group_id: str, schema_id: int, emulator: Any,
                    tracking_id: str, tmp_path: Path, *, deliver_before_first: bool) -> None:
    """Partition 0: 10 good, a run of 8 undecodable records, 10 good; partitions 1 and 2: good only.
    With dlq.max_consecutive_failures 5, partition 0 must stall at its 6th bad record for good."""
    limit, run_length = 5, 8

    def good(name: str, partition: int) -> tuple[bytes, bytes]:
        session = f"p{partition}-s"
        return session.encode(), confluent_frame(schema_id, SCHEMA, _event(name, session))

    before = [good(f"p0-before-{i}", 0) for i in range(10)]
    bad_run = [(b"p0-s", b"garbage %d" % i) for i in range(run_length)]  # wrong magic byte: undecodable
    after = [good(f"p0-after-{i}", 0) for i in range(10)]
    for p in (1, 2):
        produce_raw(stack.bootstrap, topic, [good(f"p{p}-first-{i}", p) for i in range(20)],
                    partition_for=_to(p))
    produce_raw(stack.bootstrap, topic, before if deliver_before_first else before + bad_run + after,
                partition_for=_to(0))
    stall_offset = len(before) + limit
    before_ids = {f"p0-before-{i}" for i in range(10)}

    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq,
                              dlq={"max_consecutive_failures": limit, "stall_retry_s": 1})

    def delivered() -> set[str]:
        return {e["eventId"] for e in emulator.events(tracking_id)}

    with run_worker(write_config(tmp_path, config)) as running, \
            OffsetProbe(stack.bootstrap, group_id, topic, 3) as offsets:
        if deliver_before_first:
            wait_until(lambda: before_ids <= delivered() and offsets.committed()[0] == len(before),
                       "partition 0's first good records are delivered and committed")
            produce_raw(stack.bootstrap, topic, bad_run + after, partition_for=_to(0))
        wait_until(lambda: running.metric("pkc_partitions_stalled") == 1, "partition 0 stalls")
        wait_until(lambda: offsets.committed()[0] == stall_offset, f"partition 0 commits up to {stall_offset}")
        assert not running.ready()
        assert running.worker.health.ready()[1]["stalled_partitions"] == 1
        # It retries the same record after stall_retry_s and stalls again: the record is consumed
        # again (the counter moves), nothing more is dead-lettered, the offset stays.
        consumed = running.metric("pkc_records_consumed_total", topic=topic)
        wait_until(lambda: running.metric("pkc_records_consumed_total", topic=topic) >= consumed + 2,
                   "partition 0 retries its stalled record twice")
        assert running.metric("pkc_partitions_stalled") == 1
        assert not running.ready()
        assert running.summary()["dead_letters"] == limit
        assert offsets.committed()[0] == stall_offset

        # The other partitions keep flowing, also with records produced after the stall.
        for p in (1, 2):
            produce_raw(stack.bootstrap, topic, [good(f"p{p}-later-{i}", p) for i in range(20)],
                        partition_for=_to(p))
        others = {f"p{p}-{when}-{i}" for p in (1, 2) for when in ("first", "later") for i in range(20)}
        wait_until(lambda: others <= delivered(), "partitions 1 and 2 deliver everything")
        wait_until(lambda: offsets.committed()[1] == 40 and offsets.committed()[2] == 40,
                   "partitions 1 and 2 commit everything")
        assert running.metric("pkc_partitions_stalled") == 1
        assert offsets.committed()[0] == stall_offset
        assert running.stop() == 0

    received = emulator.events(tracking_id)
    dead = _dead_letters(stack.bootstrap, dlq)
    figures("stall", len(before) + run_length + len(after) + 80, received, len(dead), stalled_at=stall_offset)
    assert sorted(dead) == [(0, len(before) + i) for i in range(limit)]
    assert {e["eventId"] for e in received} == others | before_ids
    assert len(received) == len(others) + len(before_ids)
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == {0: stall_offset, 1: 40, 2: 40}
    assert ends == {0: len(before) + run_length + len(after), 1: 40, 2: 40}


def test_a_run_of_dead_letters_stalls_only_its_partition_and_retries(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, start_emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    topic, dlq = new_topic(partitions=3), new_topic(partitions=1, suffix="dlq")
    schema_id = register(registry_client, f"{topic}-value", SCHEMA)
    _stall_scenario(stack, topic, dlq, group_id, schema_id, start_emulator(), tracking_id, tmp_path,
                    deliver_before_first=True)


def test_a_run_of_dead_letters_stalls_even_while_earlier_records_are_in_flight(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, start_emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    topic, dlq = new_topic(partitions=3), new_topic(partitions=1, suffix="dlq")
    schema_id = register(registry_client, f"{topic}-value", SCHEMA)
    _stall_scenario(stack, topic, dlq, group_id, schema_id, start_emulator(), tracking_id, tmp_path,
                    deliver_before_first=False)
