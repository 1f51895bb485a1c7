"""The loop that moves records through the stages: source -> decode -> events -> batcher -> sink,
and brings each record's outcome back to the offset tracker, which decides what may be committed.

Everything that touches Kafka runs on this one thread (librdkafka calls the rebalance callbacks
from inside `poll` on the polling thread). PutEvents calls run on a bounded pool and report back
through a queue, so a slow or failing Personalize never stops the loop from polling: the group
never evicts us for exceeding `max.poll.interval.ms`; backpressure is pausing partitions.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from connector.batcher import SessionBatcher
from connector.dlq import DeadLetterRefused, DeadLetterWriter
from connector.dlq_limits import FailureRatioLimit
from connector.logs import redact
from connector.observability import Health, Metrics
from connector.offsets import OffsetTracker, decode_delivered, encode_delivered
from connector.records import (
    Batch,
    BatchKey,
    Event,
    RecordError,
    SourceRecord,
    TopicPartition,
)
from connector.routes import Decoder, Mapper, Route, RouteTable
from connector.sink import PutEventsSink, SendOutcome
from connector.source.base import CommitFailed, Source

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WorkerSettings:
    topics: list[str]
    poll_batch_size: int = 1000
    poll_timeout_s: float = 0.1
    commit_interval_s: float = 1.0
    max_buffered_records: int = 100_000
    max_buffered_bytes: int = 64 * 1024 * 1024
    grace_period_s: float = 30.0
    revoke_timeout_s: float = 10.0
    # Exceptions from the decoder that mean "try again later" rather than "bad record".
    retryable_decode_errors: tuple[type[BaseException], ...] = ()
    decode_retry_backoff_s: float = 5.0
    # Read each listed partition only below this offset, then stop (dead-letter replay, batch jobs).
    stop_at: dict[TopicPartition, int] | None = None
    # Offsets delivered above the watermark go into the commit metadata; a new owner skips them.
    commit_metadata: bool = True
    # Dead letters in a row on one partition before it stalls instead (0: never).
    max_consecutive_failures: int = 1000
    stall_retry_s: float = 60.0
    # More than this share of dead letters among a partition's last `failure_ratio_window`
    # records stalls it too (0: never).
    max_failure_ratio: float = 0.9
    failure_ratio_window: int = 1000
    # How often the subscribed topics (names, not patterns) are checked for existence.
    topic_check_interval_s: float = 5.0


class FatalError(Exception):
    """The worker cannot go on without losing records (e.g. a bad record and no DLQ)."""


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        source: Source,
        batcher: SessionBatcher,
        dead_letters: DeadLetterWriter | None,
        max_in_flight_calls: int,
        routes: list[Route] | None = None,
        decoder: Decoder | None = None,
        mapper: Mapper | None = None,
        sink: PutEventsSink | None = None,
        tracker: OffsetTracker | None = None,
        metrics: Metrics | None = None,
        health: Health | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._source = source
        if routes is None:
            # One interactions route from the single-destination arguments.
            if decoder is None or mapper is None or sink is None:
                raise ValueError("give either routes or decoder, mapper and sink")
            routes = [Route("events", "events", list(settings.topics), decoder, mapper, sink,
                            dead_letters.topic if dead_letters else None)]
        self._routes = RouteTable(routes)
        self._batcher = batcher
        self._dlq = dead_letters
        self._tracker = tracker or OffsetTracker()
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_in_flight_calls, thread_name_prefix="put-events")
        self._completions: queue.SimpleQueue[tuple[SendOutcome, dict[TopicPartition, int]]] = queue.SimpleQueue()
        self._calls_in_flight = 0
        # One call per session at a time keeps a session's events in order at Personalize.
        self._busy_sessions: set[BatchKey] = set()
        self._waiting: dict[BatchKey, deque[Batch]] = {}
        self._assigned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._backoff_until: dict[TopicPartition, float] = {}
        self._buffers_full = False
        # Bumped on every assignment: outcomes of work from an earlier ownership are ignored.
        self._epoch: dict[TopicPartition, int] = defaultdict(int)
        self._bytes: dict[TopicPartition, int] = defaultdict(int)
        # Offsets the previous owner delivered above its last commit (from the commit metadata),
        # and that commit: the offsets are relative to it, so a log read from below it is another log.
        self._already_delivered: dict[TopicPartition, set[int]] = {}
        self._delivered_base: dict[TopicPartition, int] = {}
        self._consecutive_failures: dict[TopicPartition, int] = defaultdict(int)
        # The offset of each partition's latest dead letter: only a delivery after it ends a run.
        self._last_dead_letter: dict[TopicPartition, int] = {}
        self._stalled: set[TopicPartition] = set()
        self._stall_reason: dict[TopicPartition, str] = {}
        self._failure_ratio = FailureRatioLimit(settings.max_failure_ratio, settings.failure_ratio_window)
        # Subscribed topics the cluster does not have (deleted): confirmed by two checks in a row.
        self._missing_topics: set[str] = set()
        self._maybe_missing: set[str] = set()
        self._last_topic_check = clock()
        # Why the last idle period did not end the run (logged when it changes, not every period).
        self._not_done_reason: str | None = None
        self._stop = threading.Event()
        self._closing = False  # shutting down: no new calls, no waiting in callbacks
        self._fatal: str | None = None
        self._last_commit = clock()
        self._last_activity = clock()
        self.metrics = metrics or Metrics()
        self.health = health or Health()

    # ----------------------------------------------------------------- control

    def request_stop(self) -> None:
        """Ask the loop to drain, commit and return (safe from a signal handler)."""
        self._stop.set()

    @property
    def routes(self) -> list[Route]:
        """The routes this worker serves (their mappers may be wrapped before `run`, e.g. by replay)."""
        return self._routes.routes

    @property
    def assigned(self) -> set[TopicPartition]:
        return set(self._assigned)

    @property
    def systemic_error(self) -> str | None:
        return next((r.sink.systemic_error for r in self._routes.routes if r.sink.systemic_error), None)

    # ----------------------------------------------------------------- main loop

    def run(self, exit_when_idle_s: float | None = None) -> int:
        """Run until stopped; returns the process exit code (0 after a clean drain)."""
        self._source.subscribe(self.settings.topics, self)
        self.health.started = True
        try:
            while not self._stop.is_set() and self._fatal is None:
                self._turn()
                if exit_when_idle_s is not None and self._idle_for() >= exit_when_idle_s and self._caught_up():
                    log.info("idle for %.1fs with everything committed; stopping", exit_when_idle_s)
                    break
                if self.settings.stop_at is not None and self._reached_stop_offsets():
                    log.info("reached the stop offsets with everything committed; stopping")
                    break
        except FatalError as exc:
            self._fatal = str(exc)
        finally:
            self._drain_and_close()
        if self._fatal:
            log.error("stopped: %s", self._fatal)
            return 1
        return 0

    def summary(self) -> dict[str, Any]:
        return self.metrics.summary()

    def _turn(self) -> None:
        now = self._clock()
        self.health.last_turn = now
        backpressured = self._reconcile_pauses(now)
        if backpressured or not self._completions.empty():
            timeout = 0.0
        else:
            due_in = self._batcher.next_due_in(now)
            timeout = self.settings.poll_timeout_s if due_in is None else min(due_in, self.settings.poll_timeout_s)
        records = self._source.poll(self.settings.poll_batch_size, timeout)
        if records:
            self._last_activity = self._clock()
            self._process(records)
        elif backpressured:
            # Nothing can come from Kafka; wait for the sink to make room instead of spinning.
            self._wait_for_completion(self.settings.poll_timeout_s)
        self._drain_completions()
        for batch in self._batcher.due(self._clock()):
            self._submit(batch)
        if self._dlq is not None:
            self._dlq.poll()
        if self._clock() - self._last_commit >= self.settings.commit_interval_s:
            self._commit()
        if self._clock() - self._last_topic_check >= self.settings.topic_check_interval_s:
            self._check_topics()

    def _process(self, records: list[SourceRecord]) -> None:
        tracker, batcher, for_topic = self._tracker, self._batcher, self._routes.for_topic
        retryable = self.settings.retryable_decode_errors
        rewound: set[TopicPartition] = set()
        now = self._clock()
        consumed: dict[str, int] = defaultdict(int)
        stop_at = self.settings.stop_at
        for record in records:
            tp = record.tp
            if tp in rewound or (stop_at is not None and record.offset >= stop_at.get(tp, 0)):
                continue
            consumed[record.topic] += 1
            if not tracker.track(tp, record.offset):
                self._restart_partition(tp, record.offset)
                tracker.track(tp, record.offset)
            already = self._already_delivered.get(tp)
            if already and record.offset < self._delivered_base.get(tp, -1):
                # Read from below the previous owner's commit: the log was re-created or reset
                # since, and the offsets it delivered name other records now.
                log.warning("%s starts at %d, below its committed offset %d: not skipping the %d offsets "
                            "the previous owner delivered (they belong to an older log)",
                            tp, record.offset, self._delivered_base[tp], len(already))
                already = None
                self._already_delivered.pop(tp, None)
            if already and record.offset in already:
                already.discard(record.offset)
                tracker.done(tp, record.offset)
                self.metrics.records_skipped.inc()
                continue
            self._bytes[tp] += len(record.value or b"")
            route = for_topic(record.topic)
            try:
                event = route.to_entry(record)
            except RecordError as error:
                if not self._dead_letter(record, error):
                    rewound.add(tp)
                continue
            except retryable as exc:
                # Not the record's fault: read this partition again from here after a pause.
                log.warning("decode of %s must wait: %s", record.position(), exc)
                self._rewind(tp, record.offset)
                self._backoff_until[tp] = now + self.settings.decode_retry_backoff_s
                rewound.add(tp)
                continue
            if event is None:  # a delete the route skips
                self._leave(record)
                self.metrics.deletes_skipped.labels(route.name).inc()
                self._failure_ratio.record(tp, False)
                continue
            if self._consecutive_failures[tp] or tp in self._stalled:
                self._consecutive_failures[tp] = 0
                self._stalled.discard(tp)
                self._stall_reason.pop(tp, None)
            self._failure_ratio.record(tp, False)
            full = batcher.add(event, now)
            if full is not None:
                self._submit(full)
        for topic, n in consumed.items():
            self.metrics.records_consumed.labels(topic).inc(n)

    # ----------------------------------------------------------------- sink side

    def _submit(self, batch: Batch) -> None:
        if self._closing:
            return  # its records stay uncommitted; the next owner sends them
        if batch.key in self._busy_sessions:
            self._waiting.setdefault(batch.key, deque()).append(batch)
            return
        self._busy_sessions.add(batch.key)
        self._calls_in_flight += 1
        epochs = {e.record.tp: self._epoch[e.record.tp] for e in batch.events}
        future = self._pool.submit(self._routes.by_name[batch.key.route].sink.send, batch)

        def report(done: Future[SendOutcome]) -> None:
            if not done.cancelled():  # cancelled at shutdown: never started, nothing to report
                self._completions.put((done.result(), epochs))

        future.add_done_callback(report)

    def _wait_for_completion(self, timeout: float) -> None:
        try:
            item = self._completions.get(timeout=timeout)
        except queue.Empty:
            return
        self._complete(*item)

    def _drain_completions(self) -> None:
        while True:
            try:
                item = self._completions.get_nowait()
            except queue.Empty:
                return
            self._complete(*item)

    def _complete(self, outcome: SendOutcome, epochs: dict[TopicPartition, int]) -> None:
        self._calls_in_flight -= 1
        key = outcome.batch.key
        self._busy_sessions.discard(key)
        waiting = self._waiting.get(key)
        if waiting:
            self._submit(waiting.popleft())
            if not waiting:
                del self._waiting[key]

        def current(event: Event) -> bool:
            tp = event.record.tp
            return tp in self._assigned and epochs.get(tp) == self._epoch[tp]

        delivered = 0
        route = key.route
        counts_events = self._routes.by_name[route].counts_events
        wall_now = time.time()
        observe_e2e = self.metrics.end_to_end_latency.observe
        for event in outcome.delivered:
            if current(event):
                delivered += 1
                self._leave(event.record)
                if event.record.timestamp_ms:
                    observe_e2e(max(0.0, wall_now - event.record.timestamp_ms / 1000))
        if delivered:
            self.metrics.entries_delivered.labels(route).inc(delivered)
            if counts_events:
                self.metrics.events_delivered.inc(delivered)
        for event, error in outcome.rejected:
            if current(event):
                self._dead_letter(event.record, error)
        for event in outcome.delivered:
            # A call finishing late for records *before* a run of dead letters must not end it.
            tp = event.record.tp
            if event.record.offset > self._last_dead_letter.get(tp, -1):
                self._consecutive_failures[tp] = 0
        retry = [e for e in outcome.abandoned if current(e)]
        if retry and not self._stop.is_set() and not self._closing:
            self._submit(Batch(key, retry))

    # ----------------------------------------------------------------- outcomes

    def _leave(self, record: SourceRecord) -> None:
        tp = record.tp
        self._tracker.done(tp, record.offset)
        self._bytes[tp] -= len(record.value or b"")

    def _dead_letter(self, record: SourceRecord, error: RecordError) -> bool:
        """Send `record` to the dead-letter topic; False if its partition stalled instead."""
        tp = record.tp
        limit = self.settings.max_consecutive_failures
        if limit and self._consecutive_failures[tp] >= limit:
            self._stall(record, error, "consecutive_failures")
            return False
        if self._failure_ratio.exceeded_by_one_more_failure(tp):
            self._stall(record, error, "failure_ratio")
            return False
        self._consecutive_failures[tp] += 1
        self._failure_ratio.record(tp, True)
        self._last_dead_letter[tp] = max(record.offset, self._last_dead_letter.get(tp, -1))
        log.warning(
            "dead-lettering %s (%s/%s): %s", record.position(), error.stage, error.error_class, redact(error.message)
        )
        topic = self._routes.for_topic(record.topic).dlq_topic
        if self._dlq is None or topic is None:
            raise FatalError(
                f"{error.stage} error at {record.position()}: {error.error_class}: {redact(error.message)}. "
                "No dlq.topic is configured, so the worker stops here without committing past "
                "this record; configure dlq.topic (or the route's dlq_topic) or fix the record."
            )
        epoch = self._epoch[record.tp]
        self.metrics.dead_letters.labels(error.stage, error.error_class).inc()

        def done(rec: SourceRecord, err: Exception | None) -> None:
            current = rec.tp in self._assigned and self._epoch[rec.tp] == epoch
            if isinstance(err, DeadLetterRefused):
                # Even the reduced letter does not fit the DLQ topic: stopping would crash-loop on
                # this record after every restart; holding only its partition keeps the rest going.
                if current:
                    self._stall(rec, RecordError(str(err), error_class="DeadLetterRefused"), "dead_letter_refused")
            elif err is not None:
                self._fatal = f"could not write the dead letter of {rec.position()}: {err}"
            elif current:
                self._leave(rec)

        self._dlq.send(record, error, done, topic=topic)
        return True

    def _stall(self, record: SourceRecord, error: RecordError, reason: str) -> None:
        """Too many dead letters in a row (`consecutive_failures`), or too large a share of the
        partition's recent records (`failure_ratio`): more likely a wrong mapping or a broken
        producer than bad records. Hold the partition at this record and retry later instead of
        dead-lettering the whole stream; operators see it in pkc_partitions_stalled,
        pkc_partition_stalls_total{reason} and /readyz."""
        tp = record.tp
        if tp not in self._stalled:
            if reason == "failure_ratio":
                why = (f"{self._failure_ratio.failures(tp)} of its last {self._failure_ratio.window} records were "
                       f"dead-lettered (dlq.max_failure_ratio {self._failure_ratio.max_ratio:g})")
            elif reason == "dead_letter_refused":
                why = "the dead-letter topic refused even the reduced dead letter (raise its max.message.bytes)"
            else:
                why = f"{self._consecutive_failures[tp]} dead letters in a row (dlq.max_consecutive_failures)"
            log.error(
                "%s stalled at offset %d: %s; last: %s/%s: %s; retrying in %.0fs",
                tp, record.offset, why, error.stage, error.error_class,
                redact(error.message), self.settings.stall_retry_s,
            )
            self.metrics.partition_stalls.labels(reason).inc()
        self._stalled.add(tp)
        self._stall_reason[tp] = reason
        self._rewind(tp, record.offset)
        self._backoff_until[tp] = self._clock() + self.settings.stall_retry_s

    # ----------------------------------------------------------------- offsets

    def _commit(self, only: set[TopicPartition] | None = None) -> None:
        self._last_commit = self._clock()
        with_metadata = self.settings.commit_metadata
        offsets = {
            tp: offset
            for tp, offset in self._tracker.committable(include_delivered_above=with_metadata).items()
            if tp in self._assigned and (only is None or tp in only)
        }
        if not offsets:
            return
        metadata = (
            {tp: encode_delivered(o, self._tracker.delivered_above_watermark(tp)) for tp, o in offsets.items()}
            if with_metadata
            else None
        )
        try:
            self._source.commit(offsets, metadata)
        except CommitFailed as exc:
            # Nothing is lost: the same (or a later) watermark is committed next time.
            log.warning("commit failed, will retry: %s", exc)
            self.metrics.commits.labels("failed").inc()
            return
        self.metrics.commits.labels("ok").inc()
        for tp, offset in offsets.items():
            self._tracker.mark_committed(tp, offset)
        for tp in self._assigned:
            self.metrics.watermark_lag.labels(tp.topic, str(tp.partition)).set(self._tracker.lag(tp))

    def _restart_partition(self, tp: TopicPartition, offset: int) -> None:
        """The offsets of `tp` went backwards without our asking: its log is not the one we were
        tracking (topic deleted and re-created, truncated, offsets reset by another tool). Start
        the partition afresh at `offset`: a new epoch, so outcomes of calls and dead letters in
        flight for the old records are ignored, and none of its old buffered work or counters."""
        log.warning(
            "%s went back from offset %s to %d: its log changed (topic re-created, truncated or reset "
            "by another tool); tracking restarts at %d and work on the older records is dropped",
            tp, self._tracker.expected(tp), offset, offset,
        )
        self.metrics.offset_resets.labels(tp.topic).inc()
        self._epoch[tp] += 1
        self._discard_work({tp})
        self._tracker.reset_to(tp, offset)
        self._forget_counters({tp})

    def _check_topics(self) -> None:
        """Notice subscribed topics that do not exist (deleted): /readyz false, said once."""
        self._last_topic_check = self._clock()
        names = [t for t in self.settings.topics if not t.startswith("^")]
        if not names:
            return
        try:
            missing = self._source.missing_topics(names, timeout_s=2.0)
        except Exception as exc:  # a probe only: the next check tries again
            log.debug("could not check the source topics: %s", exc)
            return
        if missing is None:
            return  # no metadata now (broker unreachable): nothing new to say about the topics
        # Twice in a row: metadata just after start-up or a re-creation can lag for a moment.
        confirmed = {t for t in missing if t in self._maybe_missing or t in self._missing_topics}
        self._maybe_missing = set(missing)
        for topic in sorted(confirmed - self._missing_topics):
            log.error("source topic %s does not exist (deleted?); /readyz is false until it exists again", topic)
        for topic in sorted(self._missing_topics - confirmed):
            log.info("source topic %s exists again", topic)
        self._missing_topics = confirmed

    def _rewind(self, tp: TopicPartition, offset: int) -> None:
        """Give up on `offset` and everything after it in `tp`; read them again later (unless an
        earlier rewind gave it up already: seeking forward to it would skip the records between)."""
        if self._tracker.truncate(tp, offset):
            self._source.seek(tp, offset)

    # ----------------------------------------------------------------- flow control

    def _reconcile_pauses(self, now: float) -> bool:
        """Pause what must not be read now and resume the rest; True when everything is held.

        Held: buffers over their bound (until back under 80%, so we don't flap around it) or the
        sink in systemic failure. Held per partition: a decode backoff (registry unavailable).
        Paused partitions are still polled, so the group keeps us as a member.
        """
        s = self.settings
        buffered = self._tracker.total_in_flight()
        buffered_bytes = sum(self._bytes.values())
        if buffered >= s.max_buffered_records or buffered_bytes >= s.max_buffered_bytes:
            self._buffers_full = True
        elif buffered <= s.max_buffered_records * 0.8 and buffered_bytes <= s.max_buffered_bytes * 0.8:
            self._buffers_full = False
        for tp, until in list(self._backoff_until.items()):
            if until <= now:
                del self._backoff_until[tp]
        failing = {r.name for r in self._routes.routes if r.sink.systemic_error is not None}
        if self._buffers_full:
            want = set(self._assigned)
        else:
            # A route whose sink fails systemically (unknown tracker, bad credentials) stops reading;
            # the other routes go on.
            want = {tp for tp in self._assigned if tp in self._backoff_until
                    or (failing and self._routes.for_topic(tp.topic).name in failing)}
        hold_all = bool(self._assigned) and want == self._assigned
        if want - self._paused:
            self._source.pause(sorted(want - self._paused, key=str))
        if self._paused - want:
            self._source.resume(sorted((self._paused - want) & self._assigned, key=str))
        self._paused = want
        m, h = self.metrics, self.health
        m.records_buffered.set(buffered)
        m.bytes_buffered.set(buffered_bytes)
        m.partitions_assigned.set(len(self._assigned))
        m.partitions_paused.set(len(want))
        m.partitions_stalled.set(len(self._stalled))
        h.stalled = len(self._stalled)
        h.stall_reasons = {str(tp): self._stall_reason.get(tp, "") for tp in self._stalled}
        h.systemic_error = self.systemic_error
        h.delivery_stalled = next(filter(None, (r.sink.unready_reason() for r in self._routes.routes)), None)
        h.assigned = len(self._assigned)
        h.missing_topics = tuple(sorted(self._missing_topics))
        m.source_topics_missing.set(len(self._missing_topics))
        m.systemic_failure.set(0 if h.systemic_error is None else 1)
        return hold_all

    def _reached_stop_offsets(self) -> bool:
        assert self.settings.stop_at is not None
        if self._idle_for() == 0.0:
            return False
        for tp, limit in self.settings.stop_at.items():
            mark = self._tracker.watermark(tp)
            if mark is None or mark < limit:
                return False
        return True

    def _caught_up(self) -> bool:
        """Idle means done only in the group, holding the assignment, with every assigned partition
        read to its end. Right after a crash the group waits out the dead member's session before
        it hands anything out: "nothing arrived for a while" then says nothing about the backlog.
        When not caught up, the idle clock starts again: it may only count from here."""
        reason = None
        if not self._source.group_joined():
            reason = "not in the consumer group yet (a previous member's session may still be running)"
        elif self._assigned:
            behind = self._source.lagging(sorted(self._assigned, key=str), timeout_s=5.0)
            if behind is None:
                reason = "the partitions' positions and ends cannot be read now"
            elif behind:
                reason = f"{len(behind)} partition(s) not read to their end ({', '.join(map(str, behind[:5]))})"
        if reason is None:
            return True
        if reason.split(" (")[0] != (self._not_done_reason or "").split(" (")[0]:
            log.info("nothing to do for now but not done: %s", reason)
        self._not_done_reason = reason
        self._last_activity = self._clock()
        return False

    def _idle_for(self) -> float:
        busy = (
            self._tracker.total_in_flight()
            or self._calls_in_flight
            or self._waiting
            or self._batcher.buffered_events
            or (self._dlq is not None and self._dlq.pending)
            or any(tp in self._assigned for tp in self._tracker.committable())
        )
        if busy:
            self._last_activity = self._clock()
            return 0.0
        return self._clock() - self._last_activity

    # ----------------------------------------------------------------- rebalance listener

    def on_assigned(self, tps: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(map(str, tps)) or "nothing")
        self.metrics.rebalances.labels("assigned").inc()
        self._last_activity = self._clock()
        for tp in tps:
            self._epoch[tp] += 1
            self._assigned.add(tp)
            self._paused.discard(tp)  # a fresh assignment starts unpaused in both clients
        self._tracker.forget(tps)
        if self.settings.commit_metadata and tps:
            self._load_delivered_above(tps)

    def _load_delivered_above(self, tps: list[TopicPartition]) -> None:
        """Read which offsets the previous owner delivered above its last commit."""
        try:
            committed = self._source.committed(tps, timeout_s=10.0)
        except Exception as exc:  # only an optimisation: without it those offsets are sent again
            log.warning("could not read commit metadata of %s: %s", ", ".join(map(str, tps)), exc)
            return
        for tp, (offset, metadata) in committed.items():
            delivered = decode_delivered(offset, metadata)
            if delivered:
                self._already_delivered[tp] = set(delivered)
                self._delivered_base[tp] = offset
                log.info("%s: skipping %d offsets delivered above %d by the previous owner",
                         tp, len(delivered), offset)

    def on_revoked(self, tps: list[TopicPartition]) -> None:
        """Flush and commit what we can of the revoked partitions within a bounded wait."""
        log.info("revoking %s", ", ".join(map(str, tps)))
        self.metrics.rebalances.labels("revoked").inc()
        revoked = set(tps) & self._assigned
        for batch in self._batcher.flush_partitions(revoked):
            self._submit(batch)
        # While closing, the grace period is over: commit what is done without waiting.
        deadline = self._clock() + (0.0 if self._closing else self.settings.revoke_timeout_s)
        while any(self._tracker.in_flight(tp) for tp in revoked) and self._clock() < deadline:
            self._wait_for_completion(0.05)
            if self._dlq is not None:
                self._dlq.poll()
        self._commit(only=revoked)
        self._drop(revoked)

    def on_lost(self, tps: list[TopicPartition]) -> None:
        """Another member owns these now: committing would overwrite its progress."""
        log.warning("lost %s without a clean revoke; dropping their state", ", ".join(map(str, tps)))
        self.metrics.rebalances.labels("lost").inc()
        self._drop(set(tps))

    def _drop(self, tps: set[TopicPartition]) -> None:
        self._discard_work(tps)
        self._tracker.forget(tps)
        for tp in tps:
            self._assigned.discard(tp)
            self._paused.discard(tp)
            with suppress(KeyError):  # no series yet if we never committed this partition
                self.metrics.watermark_lag.remove(tp.topic, str(tp.partition))
        self._forget_counters(tps)

    def _forget_counters(self, tps: set[TopicPartition]) -> None:
        """Per-partition state that describes records we no longer hold."""
        for tp in tps:
            self._backoff_until.pop(tp, None)
            self._bytes.pop(tp, None)
            self._already_delivered.pop(tp, None)
            self._delivered_base.pop(tp, None)
            self._stalled.discard(tp)
            self._stall_reason.pop(tp, None)
            self._consecutive_failures.pop(tp, None)
            self._last_dead_letter.pop(tp, None)
        self._failure_ratio.forget(tps)

    def _discard_work(self, tps: set[TopicPartition]) -> None:
        """Drop buffered and queued batches of `tps` (calls already running finish and are ignored)."""
        self._batcher.drop_partitions(tps)
        for key in list(self._waiting):
            kept: deque[Batch] = deque()
            for batch in self._waiting[key]:
                batch.events = [e for e in batch.events if e.record.tp not in tps]
                if batch.events:
                    kept.append(batch)
            if kept:
                self._waiting[key] = kept
            else:
                del self._waiting[key]

    # ----------------------------------------------------------------- shutdown

    def _drain_and_close(self) -> None:
        """Deliver what is buffered within the grace period, commit, leave the group."""
        self.health.stopping = True
        deadline = self._clock() + self.settings.grace_period_s
        try:
            if self._fatal is None:
                self._source.pause(sorted(self._assigned, key=str))
                self._paused = set(self._assigned)
                for batch in self._batcher.flush_all():
                    self._submit(batch)
            while (self._calls_in_flight or (self._dlq is not None and self._dlq.pending)) and (
                self._clock() < deadline
            ):
                self._source.poll(1, 0.0)  # serve group heartbeats and callbacks
                self._wait_for_completion(0.05)
                if self._dlq is not None:
                    self._dlq.poll()
            if self._calls_in_flight:
                log.warning(
                    "grace period over with %d calls in flight; exiting without committing them",
                    self._calls_in_flight,
                )
            # From here on nothing new is sent and nothing is waited for: what is still in flight
            # stays uncommitted and the next owner sends it again.
            self._closing = True
            self._stop_sinks()
            self._drain_completions()
            self._commit()
        except Exception:
            log.exception("error while draining")
        finally:
            self._closing = True
            self._stop_sinks()
            try:
                self._source.close()  # the revoke callback commits what finished meanwhile
            except Exception:
                log.exception("error while closing the consumer")
            self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def calls_in_flight(self) -> int:
        """Calls still running (after `run` returns: abandoned ones whose HTTP request has not ended)."""
        return self._calls_in_flight

    def _stop_sinks(self) -> None:
        for route in self._routes.routes:
            route.sink.stop.set()
