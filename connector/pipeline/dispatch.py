"""Dispatch: batches become calls on a bounded pool, and their outcomes come back to the loop.

A key's batches (a session's, or a dataset partition's) go one call at a time, so they arrive in
order; different keys go in parallel. The loop never waits on a call: outcomes arrive on a queue
it drains every turn. Each call remembers the epoch of every partition it carries, and an outcome
counts only for partitions still owned under that epoch: after a revoke or a restart of the log,
late outcomes of older work are ignored instead of marking re-polled offsets done.
How many calls run at once is the `InFlightLimit`'s (connector.pipeline.inflight): a batch whose
key is free waits for a slot in `ready`, in the order it came.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Protocol

from connector.observability import Metrics
from connector.personalize.sink import SendOutcome
from connector.pipeline.dead_letters import DeadLetterPolicy
from connector.pipeline.inflight import InFlightLimit
from connector.pipeline.partitions import Partitions
from connector.records import Batch, BatchKey, Event, TopicPartition
from connector.routes import RouteTable

Completion = tuple[SendOutcome, dict[TopicPartition, int]]
# batching.max_in_flight_calls: a number (that many calls at most), or a limit that sizes itself.
InFlightBound = int | InFlightLimit


class CompletionQueue(Protocol):
    """Where calls report back (queue.SimpleQueue; tests give one that follows a fake clock)."""

    def put(self, item: Completion) -> None: ...

    def get(self, block: bool = True, timeout: float | None = None) -> Completion: ...

    def get_nowait(self) -> Completion: ...

    def empty(self) -> bool: ...


class Dispatch:
    def __init__(self, limit: InFlightBound, *, routes: RouteTable, partitions: Partitions,
                 dead_letters: DeadLetterPolicy, metrics: Metrics, stop: threading.Event,
                 executor: Executor | None = None, completions: CompletionQueue | None = None) -> None:
        self._routes = routes
        self._partitions = partitions
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._stop = stop
        self.limit = InFlightLimit.fixed(limit) if isinstance(limit, int) else limit
        # Threads start as calls need them, up to the highest bound the limit may reach.
        self._pool = executor or ThreadPoolExecutor(self.limit.highest, thread_name_prefix="put-events")
        self._completions: CompletionQueue = completions or queue.SimpleQueue()
        self.in_flight = 0  # calls given to the pool whose outcome is not applied yet
        self._busy: set[BatchKey] = set()  # keys with a call in flight or a batch in `_ready`
        self._waiting: dict[BatchKey, deque[Batch]] = {}  # a busy key's next batches
        self._ready: deque[Batch] = deque()  # free keys' batches waiting for a slot
        # Submitted calls by their batch, until their outcome is applied: one not started yet can
        # still be cancelled when its partitions are revoked.
        self._submitted: dict[int, tuple[Future[SendOutcome], Batch]] = {}
        # Shutting down: no new calls; what is not sent stays uncommitted for the next owner.
        self.closing = False

    @property
    def idle(self) -> bool:
        return not self.in_flight and not self._waiting and not self._ready

    @property
    def saturated(self) -> bool:
        """Batches wait for a free call slot: only an outcome lets work go on, so the loop must wait
        on the calls (`settle`), never block in Kafka's poll. Blocked there, finished calls' slots
        stayed empty until the poll timed out: 16 calls a 100 ms turn, a fifth of the throughput."""
        return bool(self._ready)

    @property
    def room(self) -> int:
        """How many more due batches may wait for a call slot now: a round of calls at most. The
        others stay open in the batcher and keep taking their sessions' events, so when the quota,
        not the linger, is what holds calls back, they leave with up to 10 events instead of what
        one linger gathered. Closed on linger regardless, a worker fed at 80 % of its quota sent
        6.4 events a call behind a backlog as when live, and caught up at 2 % a minute (make soak)."""
        return max(0, self.limit.current - len(self._ready))

    def outcomes_ready(self) -> bool:
        return not self._completions.empty()

    def submit(self, batch: Batch) -> None:
        if self.closing:
            return
        if batch.key in self._busy:
            self._waiting.setdefault(batch.key, deque()).append(batch)
            return
        self._busy.add(batch.key)
        if self.in_flight >= self.limit.current:
            self._ready.append(batch)
            return
        self._start(batch)

    def _start(self, batch: Batch) -> None:
        self.in_flight += 1
        epochs = {tp: self._partitions.epoch(tp) for tp in {e.record.tp for e in batch.events}}
        future = self._pool.submit(self._routes.by_name[batch.key.route].sink.send, batch)
        self._submitted[id(batch)] = (future, batch)
        completions = self._completions

        def report(done: Future[SendOutcome]) -> None:
            if not done.cancelled():  # cancelled at shutdown: never started, nothing to report
                completions.put((done.result(), epochs))

        future.add_done_callback(report)

    def settle(self, wait_s: float = 0.0) -> None:
        """Apply every outcome that has arrived; with `wait_s`, wait that long for one and apply
        just it (the callers' loops re-check their condition after each outcome)."""
        try:
            item = self._completions.get(timeout=wait_s) if wait_s > 0 else self._completions.get_nowait()
        except queue.Empty:
            return
        self._apply(*item)
        if wait_s > 0:
            return
        while True:
            try:
                item = self._completions.get_nowait()
            except queue.Empty:
                return
            self._apply(*item)

    def discard(self, tps: set[TopicPartition]) -> None:
        """Drop queued batches' entries of `tps` and cancel the calls of only `tps` that have not
        started (calls already running finish and are ignored). A revoked partition's next owner
        sends its uncommitted records again: calls still leaving from here would be duplicates,
        spent from the group's quota while the new owner spends its own share of it."""
        for key in list(self._waiting):
            kept = self._without(self._waiting[key], tps)
            if kept:
                self._waiting[key] = kept
            else:
                del self._waiting[key]
        ready, self._ready = self._ready, self._without(self._ready, tps)
        for batch in ready:
            if not batch.events:  # all its entries were revoked: its key's next batch may go
                self._release(batch.key)
        for batch_id, (future, batch) in list(self._submitted.items()):
            if all(e.record.tp in tps for e in batch.events) and future.cancel():
                del self._submitted[batch_id]
                self._finished(batch.key)

    @staticmethod
    def _without(batches: deque[Batch], tps: set[TopicPartition]) -> deque[Batch]:
        kept: deque[Batch] = deque()
        for batch in batches:
            batch.events = [e for e in batch.events if e.record.tp not in tps]
            if batch.events:
                kept.append(batch)
        return kept

    def carrying(self, tps: set[TopicPartition]) -> bool:
        """A submitted call whose outcome has not been applied carries entries of `tps`."""
        return any(e.record.tp in tps for _, batch in self._submitted.values() for e in batch.events)

    def close(self) -> None:
        """No new calls, and the running ones give up their retries (their records stay uncommitted)."""
        self.closing = True
        self._ready.clear()  # never started: their records stay uncommitted
        for route in self._routes.routes:
            route.sink.stop.set()

    def shutdown(self) -> None:
        self.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _finished(self, key: BatchKey) -> None:
        """A call of `key` is over (done or cancelled): a slot is free, and the key's next batch may go."""
        self.in_flight -= 1
        while self._ready and self.in_flight < self.limit.current and not self.closing:
            self._start(self._ready.popleft())
        self._release(key)

    def _release(self, key: BatchKey) -> None:
        self._busy.discard(key)
        waiting = self._waiting.get(key)
        if waiting:
            self.submit(waiting.popleft())
            if not waiting:
                del self._waiting[key]

    def _apply(self, outcome: SendOutcome, epochs: dict[TopicPartition, int]) -> None:
        self._submitted.pop(id(outcome.batch), None)
        key = outcome.batch.key
        self.limit.completed(outcome.calls, outcome.latencies_s)
        self._finished(key)

        # The batch's partitions still owned under the epochs its call started in (a batch has
        # a partition or a few, an outcome up to ten entries: decided per partition, not per entry).
        owned = {tp for tp, epoch in epochs.items() if self._partitions.current(tp, epoch)}
        stale = len(owned) < len(epochs)
        delivered = [e for e in outcome.delivered if e.record.tp in owned] if stale else outcome.delivered
        for event in delivered:
            self._partitions.leave(event.record)
        self._count_delivered(key.route, delivered)
        for event, error in outcome.rejected:
            if event.record.tp in owned:
                self._dead_letters.handle(event.record, error)
        self._dead_letters.delivered(outcome.delivered)
        retry = [e for e in outcome.abandoned if e.record.tp in owned]
        if retry and not self._stop.is_set() and not self.closing:
            self.submit(Batch(key, retry))

    def _count_delivered(self, route: str, delivered: list[Event]) -> None:
        if not delivered:
            return
        m = self._metrics
        m.entries_delivered.labels(route).inc(len(delivered))
        if self._routes.by_name[route].counts_events:
            m.events_delivered.inc(len(delivered))
        wall_now = time.time()
        m.end_to_end_latency.observe_many([max(0.0, wall_now - e.record.timestamp_ms / 1000)
                                           for e in delivered if e.record.timestamp_ms])
