"""The pure-Python source: kafka-python 3 (`KafkaConsumer`), batched `poll`, manual commits.

Two things make kafka-python 3 different from librdkafka, and shape this module:

* Its network I/O and group protocol run on a background I/O thread, and the rebalance listener is
  invoked on that thread (while the worker thread waits inside `poll`). The worker's listener must
  run on the worker thread and may call blocking consumer APIs (commit, committed), which
  kafka-python refuses on its I/O thread. So the adapter here only queues what happened;
  `KafkaPythonSource.poll` hands the queued callbacks to the worker's listener, in order, before
  it returns that poll's records.
* A revocation must reach the worker *before* the group moves on (so the worker can flush and
  commit while it still owns the partitions). The adapter therefore interrupts `poll` when
  partitions are revoked: it raises `_RebalanceHandOff`, which kafka-python's coordinator lets
  finish the rebalance step it is in and then re-raises from `poll` (wrapped in a KafkaError, as
  the Java client does with listener exceptions). With cooperative-sticky, the second rebalance
  round (that gives the partitions to their new owner) only starts on our next `poll`, after the
  worker has committed. With an eager assignor the JoinGroup is sent on that next `poll` too.

The librdkafka-style `kafka.config` mapping is translated to kafka-python keyword arguments by
connector.kafka.kafka_python_config.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from connector.kafka.base import CommitFailed, KafkaUnreachable, RebalanceListener, explain
from connector.records import SourceRecord, TopicPartition, header_key

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ the source


class _RebalanceHandOff(Exception):
    """Raised from the listener on kafka-python's I/O thread to make `poll` return to the worker."""


class _DropHandOffLogs(logging.Filter):
    """kafka-python logs listener exceptions with a traceback; ours is a signal, not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _RebalanceHandOff)


_HANDOFF_FILTER = _DropHandOffLogs()
logging.getLogger("kafka.coordinator.consumer").addFilter(_HANDOFF_FILTER)


class _MissingTopicOnce(logging.Filter):
    """While a subscribed topic is missing, kafka-python logs "Topic X not found in cluster
    metadata" at ERROR on every metadata refresh (10 a second). Let the first through per topic;
    `KafkaPythonSource.missing_topics` forgets it once the topic exists again."""

    MESSAGE = "Topic %s not found in cluster metadata"

    def __init__(self) -> None:
        super().__init__()
        self.reported: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != self.MESSAGE or not record.args:
            return True
        topic = str(record.args[0] if isinstance(record.args, tuple) else record.args)
        if topic in self.reported:
            return False
        self.reported.add(topic)
        return True


_MISSING_TOPIC_FILTER = _MissingTopicOnce()
logging.getLogger("kafka.cluster").addFilter(_MISSING_TOPIC_FILTER)

Change = Literal["assigned", "revoked", "lost"]


def _ours(tps: Iterable[Any]) -> list[TopicPartition]:
    return sorted((TopicPartition(tp.topic, tp.partition) for tp in tps), key=lambda t: (t.topic, t.partition))


# ------------------------------------------------------------------ header keys


class _EscapedHeaderKey(str):
    """A header key read from bytes that are not UTF-8: kafka-python's fetcher encodes every key
    again (to count header bytes), which must give back the bytes instead of failing."""

    __slots__ = ()

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return str.encode(self, encoding, "surrogateescape")


class _LenientSlice:
    """A slice of a record batch whose decode() keeps bytes that are not UTF-8 (surrogate escapes)."""

    __slots__ = ("_view",)

    def __init__(self, view: memoryview) -> None:
        self._view = view

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raw = bytes(self._view)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return _EscapedHeaderKey(header_key(raw))

    def __bytes__(self) -> bytes:
        return bytes(self._view)


class _LenientBuffer:
    """A record batch's buffer for kafka-python's own record parser, with lenient string slices."""

    __slots__ = ("_view",)

    def __init__(self, data: Any) -> None:
        self._view = memoryview(data)

    def __getitem__(self, index: int | slice) -> Any:
        return _LenientSlice(self._view[index]) if isinstance(index, slice) else self._view[index]

    def __len__(self) -> int:
        return len(self._view)


_lenient_installed = False


def read_header_keys_losslessly() -> None:
    """Make kafka-python read a header key that is not UTF-8 instead of failing the partition.

    kafka-python decodes header keys with strict UTF-8 while parsing a fetched batch: one such key
    raises CorruptRecordError out of poll() for the whole partition, on every restart (a crash
    loop). Its parser sets its position only after a record is fully read, so a record that fails
    that way is parsed again, by the same code, over a buffer whose string slices decode with
    surrogate escapes (connector.records.header_key): the key reaches us losslessly. Records with
    UTF-8 keys never take this path.
    """
    global _lenient_installed
    if _lenient_installed:
        return
    from kafka.record.default_records import DefaultRecordBatch

    strict = DefaultRecordBatch._read_msg

    def read_msg(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return strict(self, *args, **kwargs)
        except UnicodeDecodeError:
            plain = self._buffer
            self._buffer = _LenientBuffer(plain)
            try:
                return strict(self, *args, **kwargs)
            finally:
                self._buffer = plain

    read_msg.__wrapped__ = strict  # type: ignore[attr-defined]
    DefaultRecordBatch._read_msg = read_msg
    _lenient_installed = True


def complete_rebalance(consumer: Any, timeout_ms: int) -> None:
    """Wait inside kafka-python until a rebalance it is in the middle of has completed.

    kafka-python 3.0.12 keeps an unfinished JoinGroup/SyncGroup task across polls, but when
    that task completes *between* two polls, the next poll discards its result and sends a new
    JoinGroup. With the short polls the worker makes (0 s while backpressured, 100 ms
    otherwise) a group then rebalances forever and no member gets its partitions. So while a
    rebalance is due or in flight (and the coordinator is known, so this cannot hang on a
    broker outage), drive it to completion in one call bounded by `timeout_ms` (the rebalance timeout).

    A task can also be orphaned: only `need_rejoin()` leads kafka-python's poll back to its task
    (coordinator/consumer.py:408, base.py:480), and when the rejoin was due to a metadata change
    alone (the leader's snapshot differs, consumer.py:605) the leader's own assignment in that task
    makes the snapshots equal again (consumer.py:473), so need_rejoin() turns False while the task
    runs. If the poll that started the task gave up first, nothing ever applies its assignment: the
    member stays REBALANCING with heartbeats off (base.py:505, re-enabled only at base.py:546),
    cannot commit, and the broker removes it after session.timeout.ms. A topic deleted and
    re-created under the worker does exactly that. An unfinished task whose rejoin kafka-python has
    forgotten is that state: ask for the rejoin again, so the poll below awaits the task (or, if it
    already finished, joins afresh).
    """
    coordinator = getattr(consumer, "_coordinator", None)
    try:
        if coordinator is None or coordinator.coordinator_unknown():
            return
        in_flight = coordinator._join_task is not None
        if not coordinator.need_rejoin():
            if not in_flight:
                return
            log.info("completing a rebalance kafka-python left unfinished (%s)", coordinator._generation)
            coordinator.request_rejoin()
    except AttributeError:  # pragma: no cover - a kafka-python without these internals
        return
    coordinator.poll(timeout_ms=timeout_ms)


def restart_recreated_topics(consumer: Any, topic_ids: dict[str, Any]) -> None:
    """Read an assigned topic that was deleted and re-created from its start (or end, per
    auto.offset.reset), as a partition without a committed offset.

    Re-created at once, the topic may never look missing to kafka-python 3.0.12: it only sees
    a new topic id and resets its cached leader epochs (cluster.py, "topic_id changed"), not the
    positions. A position on the old log (200) then meets a new log whose end is lower (150)
    and which has the same leader epoch (0): kafka-python takes that for a truncation and moves
    to the new end (consumer/fetcher.py, the truncation check), silently skipping offsets
    0-149 (1 run in 28 of tests/faults/test_topic_recreation.py). `topic_ids` holds the id of
    each assigned topic when last looked at. Seeking afresh makes the worker's bookkeeping see
    the offsets go back and restart the partition; anything already read from the new log past
    0 is read again (delivered twice, never lost)."""
    try:
        cluster = consumer._cluster
        assigned = consumer.assignment() or set()
        topics = {tp.topic for tp in assigned}
        for topic in list(topic_ids):
            if topic not in topics:  # a later assignment starts from its committed offsets anyway
                del topic_ids[topic]
        for topic in topics:
            current = cluster.topic_id(topic)
            if current is None:
                continue  # missing now, or a broker too old to say
            prior = topic_ids.setdefault(topic, current)
            if prior == current:
                continue
            topic_ids[topic] = current
            partitions = sorted((tp for tp in assigned if tp.topic == topic), key=lambda tp: tp.partition)
            reset = consumer.config["auto_offset_reset"]
            log.warning("topic %s was re-created under this consumer (topic id %s, was %s): reading its %d "
                        "assigned partition(s) afresh from the %s", topic, current, prior, len(partitions),
                        "end" if reset == "latest" else "start")
            if reset == "latest":
                consumer.seek_to_end(*partitions)
            else:
                consumer.seek_to_beginning(*partitions)
    except AttributeError:  # pragma: no cover - a kafka-python without these internals
        return


def hand_auto_create_to_metadata(consumer: Any) -> None:
    """kafka-python 3.0.12 does not hand allow_auto_create_topics to its metadata cache, whose
    requests then re-create a deleted topic at once (with the broker's defaults): hand it over."""
    cluster_config = getattr(getattr(consumer, "_cluster", None), "config", None)
    if isinstance(cluster_config, dict):
        cluster_config["allow_auto_create_topics"] = bool(consumer.config["allow_auto_create_topics"])


class KafkaPythonSource:
    """`Source` over kafka-python's KafkaConsumer (see the module docstring for the threading)."""

    def __init__(self, config: Mapping[str, Any], *, commit_timeout_s: float = 30.0) -> None:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        read_header_keys_losslessly()
        try:
            # Unlike librdkafka, kafka-python connects here (bootstrap_timeout_ms, default 30 s).
            self._consumer = KafkaConsumer(**dict(config))
        except KafkaError as exc:
            raise KafkaUnreachable(f"cannot use the Kafka cluster: {explain(f'{type(exc).__name__}: {exc}')}") \
                from None
        hand_auto_create_to_metadata(self._consumer)
        self._listener: RebalanceListener | None = None
        # Filled on kafka-python's I/O thread, drained on the worker thread (deque ops are atomic).
        self._changes: deque[tuple[Change, list[TopicPartition]]] = deque()
        # Revoked partitions the worker has already handled while kafka-python still lists them as
        # assigned (eager assignors call the listener again for them right before the JoinGroup).
        self._released: set[TopicPartition] = set()
        self._lock = threading.Lock()
        self._closing = False
        self._commit_timeout_ms = int(commit_timeout_s * 1000)
        # The broker waits up to max.poll.interval.ms for every member to rejoin (Java's join timeout).
        self._rebalance_timeout_ms = int(self._consumer.config["max_poll_interval_ms"]) + 5000
        # The topic id of each assigned topic when last looked at (`restart_recreated_topics`).
        self._topic_ids: dict[str, Any] = {}

    # -------------------------------------------------------------- listener side (I/O thread)

    def _on_revoked(self, partitions: Iterable[Any]) -> None:
        tps = _ours(partitions)
        if self._closing or not tps:
            # Closing: the worker committed what it could before close(). Empty: eager assignors
            # "revoke" nothing before the first join; interrupting that would loop forever.
            return
        with self._lock:
            if tps and set(tps) <= self._released:
                self._released.difference_update(tps)
                return
        self._changes.append(("revoked", tps))
        raise _RebalanceHandOff(f"revoked {', '.join(map(str, tps))}")

    def _on_assigned(self, partitions: Iterable[Any]) -> None:
        tps = _ours(partitions)
        with self._lock:
            self._released.difference_update(tps)
        if not self._closing:
            self._changes.append(("assigned", tps))

    def _on_lost(self, partitions: Iterable[Any]) -> None:
        tps = _ours(partitions)
        with self._lock:
            self._released.difference_update(tps)
        if not self._closing:
            self._changes.append(("lost", tps))

    # -------------------------------------------------------------- Source

    def preflight(self, timeout_s: float = 10.0) -> None:
        """Raise KafkaUnreachable naming the cause if the cluster cannot be used.

        kafka-python already bootstrapped in the constructor (and raised there); this only checks
        that the bootstrap is still good, for the same start-up sequence as the confluent source.
        """
        from kafka.errors import KafkaError

        try:
            self._consumer.bootstrap(timeout_ms=int(timeout_s * 1000))
        except KafkaError as exc:
            raise KafkaUnreachable(f"cannot use the Kafka cluster: {explain(f'{type(exc).__name__}: {exc}')}") \
                from None

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        from kafka import ConsumerRebalanceListener

        source = self

        class Adapter(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                source._on_revoked(revoked)

            def on_partitions_assigned(self, assigned: Any) -> None:
                source._on_assigned(assigned)

            def on_partitions_lost(self, lost: Any) -> None:
                source._on_lost(lost)

        self._listener = listener
        patterns = [t for t in topics if t.startswith("^")]
        if not patterns:
            self._consumer.subscribe(topics=list(topics), listener=Adapter())
            # kafka-python may join the group before its first metadata response for these topics
            # arrives; the leader then assigns nothing and waits for the next metadata refresh
            # (metadata.max.age.ms, 5 minutes). Knowing the partitions before the first poll avoids it.
            for topic in topics:
                self._consumer.partitions_for_topic(topic)
            return
        # kafka-python takes a list of names or one pattern; librdkafka's convention allows both.
        names = [f"^{re.escape(t)}$" for t in topics if not t.startswith("^")]
        pattern = "|".join(f"(?:{p})" for p in [*patterns, *names])
        self._consumer.subscribe(pattern=pattern, listener=Adapter())

    def poll(self, max_records: int, timeout_s: float) -> list[SourceRecord]:
        from kafka.errors import KafkaError

        try:
            complete_rebalance(self._consumer, self._rebalance_timeout_ms)
            restart_recreated_topics(self._consumer, self._topic_ids)
            batches = self._consumer.poll(timeout_ms=max(0, int(timeout_s * 1000)), max_records=max_records)
        except KafkaError as exc:
            if not isinstance(exc.__cause__, _RebalanceHandOff):
                self._dispatch()
                raise
            batches = {}
        gone = self._dispatch()
        records: list[SourceRecord] = []
        append = records.append
        for ktp, batch in batches.items():
            if gone and TopicPartition(ktp.topic, ktp.partition) in gone:
                continue
            for r in batch:  # kafka-python keeps each partition's records in offset order
                timestamp = r.timestamp
                append(
                    SourceRecord(
                        r.topic,
                        r.partition,
                        r.offset,
                        r.key,
                        r.value,
                        # str(): a plain str again if the key came through read_header_keys_losslessly
                        tuple((str(k), v or b"") for k, v in r.headers) if r.headers else (),
                        timestamp if timestamp is not None and timestamp >= 0 else None,
                    )
                )
        return records


    def _dispatch(self) -> set[TopicPartition]:
        """Hand the queued rebalance callbacks to the worker's listener, on this (worker) thread."""
        gone: set[TopicPartition] = set()
        while self._changes:
            change, tps = self._changes.popleft()
            listener = self._listener
            if change == "assigned":
                gone.difference_update(tps)
                if listener is not None:
                    listener.on_assigned(tps)
                continue
            gone.update(tps)
            if change == "revoked":
                if listener is not None:
                    listener.on_revoked(tps)
                # Eager assignors keep revoked partitions assigned until the JoinGroup completes and
                # call the listener again for them first: that call must not interrupt poll again.
                still = set(self.assignment()) & set(tps)
                if still:
                    with self._lock:
                        self._released.update(still)
            elif listener is not None:
                listener.on_lost(tps)
        return gone

    def commit(
        self, offsets: Mapping[TopicPartition, int], metadata: Mapping[TopicPartition, str] | None = None
    ) -> None:
        if not offsets:
            return
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata
        from kafka.structs import TopicPartition as KafkaTopicPartition

        metadata = metadata or {}
        request = {
            # leader_epoch -1: unknown; the broker then skips its fencing check, as librdkafka does.
            KafkaTopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, metadata.get(tp, ""), -1)
            for tp, offset in offsets.items()
        }
        try:
            self._consumer.commit(offsets=request, timeout_ms=self._commit_timeout_ms)
        except KafkaError as exc:
            raise CommitFailed(f"{type(exc).__name__}: {exc}") from exc

    def committed(self, tps: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, tuple[int, str]]:
        from kafka.structs import TopicPartition as KafkaTopicPartition

        request = [KafkaTopicPartition(tp.topic, tp.partition) for tp in tps]
        timeout_ms = int(timeout_s * 1000)
        coordinator = getattr(self._consumer, "_coordinator", None)
        found: dict[Any, Any]
        if coordinator is not None and hasattr(coordinator, "fetch_committed_offsets"):
            # One OffsetFetch for all partitions (KafkaConsumer.committed asks one at a time).
            found = coordinator.fetch_committed_offsets(request, timeout_ms=timeout_ms)
        else:  # pragma: no cover - older kafka-python
            found = {}
            for ktp in request:
                value = self._consumer.committed(ktp, metadata=True, timeout_ms=timeout_ms)
                if value is not None:
                    found[ktp] = value
        out: dict[TopicPartition, tuple[int, str]] = {}
        for tp, ktp in zip(tps, request, strict=True):
            om = found.get(ktp)
            out[tp] = (-1, "") if om is None else (int(om.offset), om.metadata or "")
        return out

    def _assigned_only(self, tps: list[TopicPartition]) -> list[Any]:
        """kafka-python raises for partitions it no longer owns; the worker may not know yet."""
        from kafka.structs import TopicPartition as KafkaTopicPartition

        assigned = self._consumer.assignment()
        wanted = [KafkaTopicPartition(tp.topic, tp.partition) for tp in tps]
        return [ktp for ktp in wanted if ktp in assigned]

    def pause(self, tps: list[TopicPartition]) -> None:
        partitions = self._assigned_only(tps)
        if partitions:
            self._consumer.pause(*partitions)

    def resume(self, tps: list[TopicPartition]) -> None:
        partitions = self._assigned_only(tps)
        if partitions:
            self._consumer.resume(*partitions)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        partitions = self._assigned_only([tp])
        if partitions:
            self._consumer.seek(partitions[0], offset)
        else:
            log.debug("not seeking %s: no longer assigned", tp)

    def assignment(self) -> list[TopicPartition]:
        return _ours(self._consumer.assignment() or ())

    def group_joined(self) -> bool:
        # kafka-python calls the listener only for partitions added, never for an empty assignment:
        # ask the coordinator whether the member is in a stable generation instead.
        coordinator = getattr(self._consumer, "_coordinator", None)
        try:
            return bool(coordinator is not None and coordinator.generation_if_stable() is not None
                        and not coordinator.need_rejoin())
        except AttributeError:  # pragma: no cover - a kafka-python without these internals
            return bool(self._consumer.assignment())

    def lagging(self, tps: list[TopicPartition], timeout_s: float) -> list[TopicPartition] | None:
        from kafka.errors import KafkaError

        partitions = self._assigned_only(tps)
        timeout_ms = int(timeout_s * 1000)
        try:
            ends = self._consumer.end_offsets(partitions, timeout_ms=timeout_ms)
            behind = []
            for ktp in partitions:
                # Resolves an unknown position (committed offset, else auto.offset.reset) first.
                position = self._consumer.position(ktp, timeout_ms=timeout_ms)
                if position is None or position != ends.get(ktp):
                    behind.append(TopicPartition(ktp.topic, ktp.partition))
        except KafkaError:
            return None
        return behind

    def missing_topics(self, topics: list[str], timeout_s: float) -> set[str] | None:
        """From kafka-python's metadata cache (it refreshes it for the subscribed topics on its
        I/O thread, at once after a fetch error); a refresh is requested while one is missing."""
        try:
            cluster = self._consumer._cluster
            known = cluster.topics()
        except AttributeError:  # pragma: no cover - a kafka-python without these internals
            return None
        if not cluster.brokers():
            return None  # no metadata yet (or the cluster is unreachable)
        missing = {t for t in topics if t not in known}
        if missing:
            cluster.request_update()
        _MISSING_TOPIC_FILTER.reported.difference_update(set(topics) - missing)
        return missing

    def partition_counts(self, topics: list[str], timeout_s: float) -> dict[str, int] | None:
        """From kafka-python's metadata cache, which holds every subscribed topic (all topics with
        a pattern): the assignor needs the same counts."""
        try:
            cluster = self._consumer._cluster
            if not cluster.brokers():
                return None
            wanted = cluster.topics() if any(t.startswith("^") for t in topics) else set(topics)
            counts = {t: len(cluster.partitions_for_topic(t) or ()) for t in wanted}
        except AttributeError:  # pragma: no cover - a kafka-python without these internals
            return None
        return {t: n for t, n in counts.items() if n}

    def close(self) -> None:
        # librdkafka revokes the assignment when a consumer closes; kafka-python only leaves the
        # group. Revoke explicitly so the worker flushes and commits the same way with both.
        assigned = self.assignment()
        if assigned and self._listener is not None:
            self._listener.on_revoked(assigned)
        self._closing = True
        self._consumer.close(autocommit=False)
