"""The loop that moves records through the stages, in the data's order:

    poll -> intake (decode + map) -> batcher -> dispatch (calls) -> dead letters -> commit

Each stage is a small owner in `connector.pipeline`; this module composes them, runs the loop,
listens to rebalances and shuts down. Everything that touches Kafka runs on this one thread
(librdkafka calls the rebalance callbacks from inside `poll`). Calls to Personalize run on a pool
and report back through a queue, so a slow Personalize never stops the loop from polling (the
group never evicts us for exceeding `max.poll.interval.ms`); backpressure is pausing partitions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor

from connector.dlq import DeadLetterWriter
from connector.kafka.base import Source
from connector.observability import Health, Metrics
from connector.pipeline.batcher import SessionBatcher
from connector.pipeline.committer import Committer
from connector.pipeline.dead_letters import DeadLetterPolicy, FatalError
from connector.pipeline.dispatch import CompletionQueue, Dispatch, InFlightBound
from connector.pipeline.dlq_limits import FailureRatioLimit
from connector.pipeline.flow import FlowControl
from connector.pipeline.intake import Intake
from connector.pipeline.offsets import OffsetTracker
from connector.pipeline.partitions import Partitions
from connector.pipeline.progress import Progress, TopicWatch
from connector.pipeline.quota_share import QuotaShare
from connector.pipeline.settings import WorkerSettings
from connector.pipeline.status import publish, systemic_error
from connector.records import TopicPartition
from connector.routes import Route, RouteTable

__all__ = ["FatalError", "Worker", "WorkerSettings"]

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self, settings: WorkerSettings, *, source: Source, batcher: SessionBatcher, routes: list[Route],
        dead_letters: DeadLetterWriter | None, max_in_flight_calls: InFlightBound, tracker: OffsetTracker | None = None,
        metrics: Metrics | None = None, health: Health | None = None, clock: Callable[[], float] = time.monotonic,
        executor: Executor | None = None, completions: CompletionQueue | None = None,
        quota_share: QuotaShare | None = None,
    ) -> None:
        """`executor` runs the calls (default: threads up to the in-flight bound), `completions` brings
        their outcomes back (tests pass ones that follow their clock); `quota_share` (None: the
        whole quota) follows the group's assignment."""
        self.settings = s = settings
        self.metrics = m = metrics or Metrics()
        self.health = health or Health()
        self._source, self._batcher, self._clock, self._share = source, batcher, clock, quota_share
        self._routes = RouteTable(routes)
        self._stop = threading.Event()
        self._fatal: str | None = None
        self._started = False
        p = self._partitions = Partitions(
            tracker or OffsetTracker(), FailureRatioLimit(s.max_failure_ratio, s.failure_ratio_window)
        )
        self._flow = FlowControl(s, source, p, self._routes)
        self._dead_letters = DeadLetterPolicy(s, dead_letters, partitions=p, flow=self._flow, routes=self._routes,
                                              metrics=m, clock=clock)
        self._intake = Intake(s, routes=self._routes, partitions=p, dead_letters=self._dead_letters,
                              flow=self._flow, metrics=m, restart=self._restart_partition)
        self._dispatch = Dispatch(max_in_flight_calls, routes=self._routes, partitions=p,
                                  dead_letters=self._dead_letters, metrics=m, stop=self._stop,
                                  executor=executor, completions=completions)
        self._committer = Committer(source, p, m, interval_s=s.commit_interval_s, with_metadata=s.commit_metadata,
                                    clock=clock)
        self._progress = Progress(source, p, busy=self._busy, clock=clock)
        self._topics = TopicWatch(source, s.topics, interval_s=s.topic_check_interval_s, clock=clock)

    def request_stop(self) -> None:
        """Ask the loop to drain, commit and return (safe from a signal handler)."""
        self._stop.set()

    @property
    def assigned(self) -> set[TopicPartition]:
        return self._partitions.assigned

    @property
    def systemic_error(self) -> str | None:
        return systemic_error(self._routes)

    @property
    def calls_in_flight(self) -> int:
        """Calls still running (after `run` returns: abandoned ones whose HTTP request has not ended)."""
        return self._dispatch.in_flight

    # ----------------------------------------------------------------- the loop

    def start(self) -> None:
        """Join the group (assignments arrive from inside `poll`); `run` does it if not done."""
        if not self._started:
            self._source.subscribe(self.settings.topics, self)
            self._started = self.health.started = True

    def run(self, exit_when_idle_s: float | None = None) -> int:
        """Run until stopped; returns the process exit code (0 after a clean drain)."""
        self.start()
        stop_at = self.settings.stop_at
        try:
            while not self._stop.is_set() and self._fatal_reason() is None:
                self.turn()
                if exit_when_idle_s is not None and self._progress.idle_for() >= exit_when_idle_s \
                        and self._progress.caught_up():
                    log.info("idle for %.1fs with everything committed; stopping", exit_when_idle_s)
                    break
                if stop_at is not None and self._progress.reached(stop_at):
                    log.info("reached the stop offsets with everything committed; stopping")
                    break
        except FatalError as exc:
            self._fatal = str(exc)
        finally:
            self._drain_and_close()
        if fatal := self._fatal_reason():
            log.error("stopped: %s", fatal)
            return 1
        return 0

    def turn(self) -> None:
        """One step of the loop: poll -> intake -> batch -> dispatch -> dead letters -> commit."""
        now = self.health.last_turn = self._clock()
        held = self._flow.reconcile(now) or self._dispatch.saturated  # either way: wait on the calls
        publish(self.metrics, self.health, partitions=self._partitions, paused=len(self._flow.paused),
                routes=self._routes, missing_topics=self._topics.missing)
        records = self._source.poll(self.settings.poll_batch_size, self._poll_timeout(now, held))
        if self._share is not None:  # before a new assignment's first records are sent
            self._share.check(self._partitions.assigned)
        if records:
            self._progress.active()
            now = self._clock()
            for entry in self._intake.take(records, now):
                if (full := self._batcher.add(entry, now)) is not None:
                    self._dispatch.submit(full)
        elif held:
            # Nothing can come from Kafka; wait for the calls to make room instead of spinning.
            self._dispatch.settle(wait_s=self.settings.poll_timeout_s)
        self._dispatch.settle()
        for batch in self._batcher.due(self._clock(), self._dispatch.room):
            self._dispatch.submit(batch)
        self._dead_letters.poll()
        if self._committer.due():
            self._committer.commit()
        self._topics.check_if_due()

    def _poll_timeout(self, now: float, held: bool) -> float:
        if held or self._dispatch.outcomes_ready():
            return 0.0
        due_in = self._batcher.next_due_in(now)
        return self.settings.poll_timeout_s if due_in is None else min(due_in, self.settings.poll_timeout_s)

    def _fatal_reason(self) -> str | None:  # ours (FatalError) or a dead letter that could not be written
        return self._fatal or self._dead_letters.fatal

    def _busy(self) -> bool:
        """Anything held, in flight or still to commit: a bounded run is not idle."""
        return bool(self._partitions.tracker.total_in_flight() or not self._dispatch.idle
                    or self._batcher.buffered_events or self._dead_letters.pending or self._committer.uncommitted())

    # ----------------------------------------------------------------- rebalance listener

    def on_assigned(self, tps: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(map(str, tps)) or "nothing")
        self.metrics.rebalances.labels("assigned").inc()
        self._progress.active()
        self._partitions.assign(tps)
        self._flow.forget(tps)  # a fresh assignment starts unpaused in both clients
        self._committer.read_previous_owner(tps)

    def on_revoked(self, tps: list[TopicPartition]) -> None:
        """Let the revoked partitions' running calls finish (bounded wait), commit what is done,
        forget them. Unsent batches are dropped, not flushed: the next owner reads them again, and
        the rebalance (which holds them back from every member) lasts one call, not a read-ahead."""
        log.info("revoking %s", ", ".join(map(str, tps)))
        self.metrics.rebalances.labels("revoked").inc()
        revoked = set(tps) & self._partitions.assigned
        try:
            self._batcher.drop_partitions(revoked)
            self._dispatch.discard(revoked)  # cancels their calls that have not started
            # While closing, the grace period is over: commit what is done without waiting.
            deadline = self._clock() + (0.0 if self._dispatch.closing else self.settings.revoke_timeout_s)
            while (self._dispatch.carrying(revoked) or self._dead_letters.pending) and self._clock() < deadline:
                self._dispatch.settle(wait_s=0.05)
                self._dead_letters.poll()
            self._committer.commit(only=revoked)
        finally:
            self._drop(revoked)

    def on_lost(self, tps: list[TopicPartition]) -> None:
        """Another member owns these now: committing would overwrite its progress."""
        log.warning("lost %s without a clean revoke; dropping their state", ", ".join(map(str, tps)))
        self.metrics.rebalances.labels("lost").inc()
        self._drop(set(tps))

    def _drop(self, tps: set[TopicPartition]) -> None:
        """Forget `tps`: batches, state, pauses, gauges (their running calls finish, ignored)."""
        self._batcher.drop_partitions(tps)
        self._dispatch.discard(tps)
        self._partitions.drop(tps)
        self._flow.forget(tps)
        self._committer.forget(tps)

    def _restart_partition(self, tp: TopicPartition, offset: int) -> None:
        """The offsets of `tp` went backwards without our asking (topic re-created, truncated, reset
        by another tool): drop its work and start it afresh at `offset` (`Partitions.restart`)."""
        self.metrics.offset_resets.labels(tp.topic).inc()
        self._batcher.drop_partitions({tp})
        self._dispatch.discard({tp})
        self._partitions.restart(tp, offset)

    # ----------------------------------------------------------------- shutdown

    def _drain_and_close(self) -> None:
        """Deliver what is buffered within the grace period, commit, leave the group."""
        self.health.stopping = True
        deadline = self._clock() + self.settings.grace_period_s
        dispatch = self._dispatch
        try:
            if self._fatal_reason() is None:
                self._flow.pause_all()
                for batch in self._batcher.flush_all():
                    dispatch.submit(batch)
            while (dispatch.in_flight or self._dead_letters.pending) and self._clock() < deadline:
                self._source.poll(1, 0.0)  # serve group heartbeats and callbacks
                dispatch.settle(wait_s=0.05)
                self._dead_letters.poll()
            if dispatch.in_flight:
                log.warning("grace period over with %d calls in flight; exiting without committing them",
                            dispatch.in_flight)
            # From here on nothing new is sent and nothing is waited for: what is still in flight
            # stays uncommitted and the next owner sends it again.
            dispatch.close()
            dispatch.settle()
            self._committer.commit()
        except Exception:
            log.exception("error while draining")
        finally:
            dispatch.close()
            try:
                self._source.close()  # the revoke callback commits what finished meanwhile
            except Exception:
                log.exception("error while closing the consumer")
            dispatch.shutdown()
