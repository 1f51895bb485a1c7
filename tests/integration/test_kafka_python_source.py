"""The kafka-python backend against the real broker: the Source contract, rebalances, and the whole
connector delivering a workload exactly once with `kafka.client: kafka-python`."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import committed_and_end_offsets, connector_config, read_topic, write_config

from connector.config import ConfigError, Settings, load_settings
from connector.dlq import parse_error_headers
from connector.kafka.kafka_python import KafkaPythonSource
from connector.kafka.kafka_python_config import consumer_config
from connector.records import InvalidEvent, SourceRecord, TopicPartition
from connector.tools.produce import produce
from connector.tools.workload import generate
from connector.worker import Worker

pytestmark = pytest.mark.integration


@dataclass
class Recorder:
    """A RebalanceListener that records every call (and may act inside it, as the worker does)."""

    assigned: set[TopicPartition] = field(default_factory=set)
    calls: list[tuple[str, list[TopicPartition]]] = field(default_factory=list)
    on_revoke: Callable[[list[TopicPartition]], None] | None = None
    on_assign: Callable[[list[TopicPartition]], None] | None = None

    def on_assigned(self, tps: list[TopicPartition]) -> None:
        self.calls.append(("assigned", tps))
        self.assigned |= set(tps)
        if self.on_assign:
            self.on_assign(tps)

    def on_revoked(self, tps: list[TopicPartition]) -> None:
        self.calls.append(("revoked", tps))
        if self.on_revoke:
            self.on_revoke(tps)
        self.assigned -= set(tps)

    def on_lost(self, tps: list[TopicPartition]) -> None:
        self.calls.append(("lost", tps))
        self.assigned -= set(tps)


def _source(stack: Any, group_id: str, **extra: Any) -> KafkaPythonSource:
    return KafkaPythonSource(consumer_config(stack.bootstrap, group_id, "earliest",
                                             {"session.timeout.ms": 10000, **extra}))


def _produce(stack: Any, topic: str, partitions: int, per_partition: int) -> None:
    """Records with keys, headers (one null) and explicit timestamps, `per_partition` in each."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": stack.bootstrap, "enable.idempotence": True})
    for p in range(partitions):
        for i in range(per_partition):
            producer.produce(topic, key=f"k{p}-{i}".encode(), value=f"v{p}-{i}".encode(), partition=p,
                             headers=[("h", f"{i}".encode()), ("empty", None)],
                             timestamp=1_700_000_000_000 + i)
    assert producer.flush(30) == 0


def _poll_until(sources: list[KafkaPythonSource], done: Callable[[], bool], timeout_s: float = 60.0,
                sink: list[SourceRecord] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "condition not reached in time"
        for source in sources:
            records = source.poll(500, 0.05)
            if sink is not None:
                sink.extend(records)


def test_poll_returns_records_in_order_with_headers_and_timestamps_and_commit_keeps_metadata(
    stack: Any, new_topic: Any, group_id: str
) -> None:
    topic = new_topic(partitions=2)
    _produce(stack, topic, partitions=2, per_partition=50)
    source, listener = _source(stack, group_id), Recorder()
    try:
        source.subscribe([topic], listener)
        got: list[SourceRecord] = []
        _poll_until([source], lambda: len(got) >= 100, sink=got)
        assert listener.calls[0] == ("assigned", [TopicPartition(topic, 0), TopicPartition(topic, 1)])
        assert sorted(source.assignment(), key=str) == [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        for p in (0, 1):
            mine = [r for r in got if r.partition == p]
            assert [r.offset for r in mine] == list(range(50))
            assert [r.key for r in mine] == [f"k{p}-{i}".encode() for i in range(50)]
            assert [r.value for r in mine] == [f"v{p}-{i}".encode() for i in range(50)]
            assert [r.timestamp_ms for r in mine] == [1_700_000_000_000 + i for i in range(50)]
            assert mine[7].headers == (("h", b"7"), ("empty", b""))

        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        assert source.committed([tp0, tp1], timeout_s=10) == {tp0: (-1, ""), tp1: (-1, "")}
        source.commit({tp0: 42, tp1: 50}, {tp0: "d:43,45"})
        assert source.committed([tp0, tp1], timeout_s=10) == {tp0: (42, "d:43,45"), tp1: (50, "")}
        committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
        assert committed == {0: 42, 1: 50}
        assert ends == {0: 50, 1: 50}
    finally:
        source.close()


def test_pause_resume_and_seek(stack: Any, new_topic: Any, group_id: str) -> None:
    topic = new_topic(partitions=2)
    _produce(stack, topic, partitions=2, per_partition=20)
    source, listener = _source(stack, group_id), Recorder()
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    try:
        source.subscribe([topic], listener)
        _poll_until([source], lambda: len(listener.assigned) == 2)
        # The poll that completed the assignment may have returned records already: start over.
        source.seek(tp0, 0)
        source.seek(tp1, 0)
        source.pause([tp0])
        got: list[SourceRecord] = []
        _poll_until([source], lambda: sum(r.partition == 1 for r in got) >= 20, sink=got)
        for _ in range(5):
            got.extend(source.poll(500, 0.1))
        assert {r.partition for r in got} == {1}

        source.resume([tp0])
        _poll_until([source], lambda: sum(r.partition == 0 for r in got) >= 20, sink=got)

        # Seek back on one partition: exactly its records from there come again, in order.
        source.seek(tp1, 15)
        again: list[SourceRecord] = []
        _poll_until([source], lambda: len(again) >= 5, sink=again)
        assert [(r.partition, r.offset) for r in again] == [(1, o) for o in range(15, 20)]
        # Not owned: ignored rather than raising (the worker may learn of a revocation later).
        source.pause([TopicPartition(topic, 9)])
        source.seek(TopicPartition(topic, 9), 0)
    finally:
        source.close()


def test_regex_subscription_and_a_plain_name_together(stack: Any, new_topic: Any, group_id: str) -> None:
    first, second = new_topic(partitions=1), new_topic(partitions=2)
    other = new_topic(partitions=1, suffix="other")
    prefix = first.rsplit("-", 1)[0]
    source, listener = _source(stack, group_id), Recorder()
    try:
        # `first` only through the pattern (it does not match `other`'s suffix), `second` by name.
        source.subscribe([f"^{re.escape(prefix)}-0$", second], listener)
        _poll_until([source], lambda: len(listener.assigned) == 3)
        assert listener.assigned == {TopicPartition(first, 0), TopicPartition(second, 0),
                                     TopicPartition(second, 1)}
        assert all(tp.topic != other for tp in source.assignment())
    finally:
        source.close()


class Member:
    """One group member polling on its own thread, as every worker does (kafka-python's poll waits
    for a rebalance in flight, which needs the other members to poll meanwhile)."""

    def __init__(self, source: KafkaPythonSource, listener: Recorder, timeout_s: float = 0.05) -> None:
        self.source, self.listener, self.timeout_s = source, listener, timeout_s
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self, topics: list[str]) -> Member:
        self.topics = topics
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.source.subscribe(self.topics, self.listener)
            while not self.stop.is_set():
                self.source.poll(500, self.timeout_s)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        self.source.close()
        assert self.error is None, self.error


def _wait_for(condition: Callable[[], bool], members: list[Member], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        for m in members:
            assert m.error is None, m.error
        assert time.monotonic() < deadline, [m.listener.calls for m in members]
        time.sleep(0.05)


def test_a_second_member_takes_partitions_cooperatively_after_the_first_committed_them(
    stack: Any, new_topic: Any, group_id: str
) -> None:
    topic = new_topic(partitions=4)
    _produce(stack, topic, partitions=4, per_partition=10)
    a, b = _source(stack, group_id, **{"client.id": "member-a"}), _source(stack, group_id)
    seen_by_b: dict[TopicPartition, tuple[int, str]] = {}
    listener_a = Recorder()
    # Inside the revoke callback, as the worker does: blocking consumer calls work there, and the
    # commit lands before the new owner reads the committed offsets.
    listener_a.on_revoke = lambda tps: a.commit(dict.fromkeys(tps, 7), dict.fromkeys(tps, "from-a"))
    listener_b = Recorder()
    listener_b.on_assign = lambda tps: seen_by_b.update(b.committed(tps, timeout_s=10))
    first = Member(a, listener_a).start([topic])
    second = Member(b, listener_b)
    everything = {TopicPartition(topic, p) for p in range(4)}
    try:
        _wait_for(lambda: listener_a.assigned == everything, [first])
        second.start([topic])

        def balanced() -> bool:
            # Also wait for b's on_assign hook (it reads the committed offsets after `assigned` is set).
            return bool(listener_b.assigned) and listener_a.assigned | listener_b.assigned == everything \
                and not listener_a.assigned & listener_b.assigned and set(seen_by_b) == listener_b.assigned

        _wait_for(balanced, [first, second])
        moved = everything - listener_a.assigned
        assert moved == listener_b.assigned
        # Cooperative: `a` was only told about the partitions that moved, never "revoke everything".
        revoked = [tps for kind, tps in listener_a.calls if kind == "revoked"]
        assert revoked and set().union(*revoked) == moved
        assert [kind for kind, _ in listener_a.calls].count("assigned") == 1
        # `b` read `a`'s commit of the moved partitions when they were assigned to it.
        assert seen_by_b == dict.fromkeys(moved, (7, "from-a"))
        assert set(a.assignment()) == listener_a.assigned and set(b.assignment()) == listener_b.assigned
    finally:
        first.close()
        second.close()


def test_members_that_poll_with_zero_timeouts_still_complete_a_rebalance(
    stack: Any, new_topic: Any, group_id: str
) -> None:
    """kafka-python 3.0.12 discards a JoinGroup that completes between two polls; the source waits
    for a rebalance in flight, so a backpressured worker (poll timeout 0) still gets its share."""
    topic = new_topic(partitions=4)
    la, lb = Recorder(), Recorder()
    first = Member(_source(stack, group_id), la, timeout_s=0.0).start([topic])
    second = Member(_source(stack, group_id), lb, timeout_s=0.0)
    try:
        _wait_for(lambda: len(la.assigned) == 4, [first])
        second.start([topic])
        _wait_for(lambda: len(la.assigned) == 2 and len(lb.assigned) == 2, [first, second], timeout_s=60)
        assert la.assigned.isdisjoint(lb.assigned)
    finally:
        first.close()
        second.close()


def test_a_rebalance_kafka_python_leaves_unfinished_is_completed_and_the_member_heartbeats_again(
    stack: Any, new_topic: Any, group_id: str
) -> None:
    """kafka-python 3.0.12 forgets a rejoin that a metadata change alone asked for once the leader's
    JoinGroup task has made its assignment. When the poll that started the task gave up first (the
    worker's 0 ms poll), nothing applies that assignment: no heartbeats, no commits, and the broker
    drops the member (the flaky topic re-creation test). The source completes it on its next poll.

    The state is made on purpose, through kafka-python's own objects: a partition added (a metadata
    change), then a 0 ms poll straight into kafka-python, as happens when the metadata lands between
    the source's check and kafka-python's poll. Nothing here depends on timing."""
    from confluent_kafka.admin import NewPartitions
    from kafka.structs import MemberState

    topic = new_topic(partitions=2)
    source, listener = _source(stack, group_id, **{"heartbeat.interval.ms": 500}), Recorder()
    consumer = source._consumer
    coordinator = consumer._coordinator
    try:
        source.subscribe([topic], listener)
        _poll_until([source], lambda: len(listener.assigned) == 2)
        admin = stack.admin()
        admin.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=30)
        deadline = time.monotonic() + 30
        while not coordinator.need_rejoin():
            assert time.monotonic() < deadline, "kafka-python never saw the third partition"
            consumer._cluster.request_update()
            time.sleep(0.05)
        consumer.poll(timeout_ms=0)
        task = coordinator._join_task
        assert task is not None, "the 0 ms poll did not leave its JoinGroup in flight"
        while not task.is_done:
            assert time.monotonic() < deadline, "the JoinGroup/SyncGroup never completed"
            time.sleep(0.01)
        # The orphaned state. If this fails, kafka-python no longer forgets the rejoin, and the
        # workaround in connector.kafka.kafka_python.complete_rebalance can go.
        assert not coordinator.need_rejoin() and coordinator.state is MemberState.REBALANCING

        everything = {TopicPartition(topic, p) for p in range(3)}
        _poll_until([source], lambda: listener.assigned == everything and source.group_joined(), timeout_s=30)
        heard = coordinator.heartbeat.last_receive
        _poll_until([source], lambda: coordinator.heartbeat.last_receive > heard, timeout_s=30)
        source.commit({TopicPartition(topic, 2): 0})
        assert source.committed([TopicPartition(topic, 2)], timeout_s=10) == {TopicPartition(topic, 2): (0, "")}
    finally:
        source.close()


# ------------------------------------------------------------------ the connector end to end


@pytest.fixture
def kafka_python_build() -> Callable[[Settings], Worker]:
    """connector.app.build_worker with `kafka.client: kafka-python` (the source and dead-letter writer).

    Everything else (routes, decoders, sinks, worker settings) is built exactly as `run` builds it.
    """
    from connector.app import build_worker

    def build(settings: Settings) -> Worker:
        kafka = settings.kafka.model_copy(update={"client": "kafka-python"})
        return build_worker(settings.model_copy(update={"kafka": kafka}))

    return build


def _check_exactly_once(stack: Any, emulator: Any, tracking_id: str, topic: str, dlq: str, good: int,
                        bad: int, group_id: str) -> None:
    received = emulator.events(tracking_id)
    ids = Counter(e["eventId"] for e in received)
    dead = read_topic(stack.bootstrap, dlq)
    print(f"\ndelivered={len(received)} distinct={len(ids)} dead_letters={len(dead)}")
    assert [i for i, n in ids.items() if n > 1] == []
    assert len(ids) == good
    assert len(dead) == bad
    produced = {(r.partition, r.offset): r for r in read_topic(stack.bootstrap, topic)}
    for letter in dead:
        h = parse_error_headers(list(letter.headers.items()))
        original = produced[(int(h["pkc.source.partition"]), int(h["pkc.source.offset"]))]
        assert (letter.key, letter.value) == (original.key, original.value)
        assert h["pkc.error.stage"] in {InvalidEvent.stage, "decode"}
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends


def test_the_connector_delivers_a_workload_exactly_once_through_kafka_python(
    stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
    kafka_python_build: Callable[[Settings], Worker],
) -> None:
    topic, dlq = new_topic(partitions=3), new_topic(partitions=1, suffix="dlq")
    summary = produce(generate(6_000, 600, seed=23, bad_ratio=0.01), stack.bootstrap, stack.registry_url, topic,
                      progress=False)
    # The workload's "unknown-schema-id" records use an id that is never registered: dead-letter
    # them at once instead of waiting decode.unknown_schema_retry_s for it.
    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq,
                              decode={"unknown_schema_retry_s": 0})
    worker = kafka_python_build(load_settings(write_config(tmp_path, config)))
    assert isinstance(worker._source, KafkaPythonSource)
    assert worker.run(exit_when_idle_s=3) == 0
    assert summary.bad_total > 0
    _check_exactly_once(stack, emulator, tracking_id, topic, dlq, summary.good, summary.bad_total, group_id)


def test_two_workers_share_the_group_and_deliver_exactly_once(
    stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
    kafka_python_build: Callable[[Settings], Worker],
) -> None:
    """A second worker joins mid-stream: partitions move cooperatively, nothing is lost or sent twice."""
    topic, dlq = new_topic(partitions=4), new_topic(partitions=1, suffix="dlq")
    summary = produce(generate(8_000, 800, seed=29), stack.bootstrap, stack.registry_url, topic, progress=False)
    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq,
                              personalize={"max_requests_per_second": 100.0},
                              # Small buffers: the first worker cannot read everything before the second joins.
                              batching={"max_buffered_records": 300, "linger_ms": 200, "max_in_flight_calls": 8})
    settings = load_settings(write_config(tmp_path, config))
    first, second = kafka_python_build(settings), kafka_python_build(settings)
    codes: dict[str, int] = {}
    t1 = threading.Thread(target=lambda: codes.__setitem__("first", first.run(exit_when_idle_s=12)))
    t1.start()
    deadline = time.monotonic() + 60
    while not emulator.events(tracking_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    # Idle exits are generous: the newcomer has nothing to do until the first worker has flushed
    # and committed what it gives up (the cooperative protocol's second round).
    t2 = threading.Thread(target=lambda: codes.__setitem__("second", second.run(exit_when_idle_s=12)))
    t2.start()
    t1.join(180)
    t2.join(180)
    assert codes == {"first": 0, "second": 0}
    one, two = first.metrics.summary(), second.metrics.summary()
    print(f"\nfirst worker: {one}\nsecond worker: {two}")
    assert one["events_delivered"] > 0 and two["events_delivered"] > 0
    assert one["events_delivered"] + two["events_delivered"] >= summary.good
    _check_exactly_once(stack, emulator, tracking_id, topic, dlq, summary.good, 0, group_id)


def test_build_worker_selects_kafka_python_when_configured(
    stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path
) -> None:
    """Once connector/app.py wires `kafka.client`, the real build path uses this backend."""
    from connector.app import build_worker

    topic, dlq = new_topic(partitions=2), new_topic(partitions=1, suffix="dlq")
    summary = produce(generate(1_000, 100, seed=31), stack.bootstrap, stack.registry_url, topic, progress=False)
    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq)
    config["kafka"]["client"] = "kafka-python"
    try:
        worker = build_worker(load_settings(write_config(tmp_path, config)))
    except ConfigError as exc:
        pytest.skip(f"connector/app.py does not select the kafka-python backend yet: {exc}")
    assert isinstance(worker._source, KafkaPythonSource)
    assert worker.run(exit_when_idle_s=3) == 0
    _check_exactly_once(stack, emulator, tracking_id, topic, dlq, summary.good, 0, group_id)
