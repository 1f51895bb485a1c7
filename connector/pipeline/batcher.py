"""Group events by session into PutEvents calls.

PutEvents takes one (trackingId, sessionId, userId) per call and at most 10 events, so the
cheapest stream of calls sends each session's events together. A session's open batch is closed
when it is full, when its oldest event has waited `linger` and a call can take it (the worker asks
`due` for no more than dispatch has room for), when one of its partitions is revoked, and at
shutdown. Events of one session keep their original order inside and across batches (the worker
sends a session's batches one at a time).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from connector.records import Batch, BatchKey, Event, TopicPartition


class _OpenBatch:
    __slots__ = ("batch", "opened_at")

    def __init__(self, key: BatchKey, opened_at: float) -> None:
        self.batch = Batch(key)
        self.opened_at = opened_at


class SessionBatcher:
    def __init__(self, max_events_per_call: int, linger_s: float) -> None:
        if not 1 <= max_events_per_call <= 10:
            raise ValueError("max_events_per_call must be within 1..10 (the PutEvents limit)")
        self._max = max_events_per_call
        self._linger = linger_s
        # Insertion order is the order batches were opened, so the oldest is always first:
        # finding due batches is a scan from the front that stops at the first young one.
        self._open: OrderedDict[BatchKey, _OpenBatch] = OrderedDict()
        self._buffered = 0

    @property
    def buffered_events(self) -> int:
        return self._buffered

    def add(self, event: Event, now: float) -> Batch | None:
        """Add an event; returns the session's batch if this event filled it."""
        open_batch = self._open.get(event.key)
        if open_batch is None:
            open_batch = self._open[event.key] = _OpenBatch(event.key, now)
        open_batch.batch.events.append(event)
        self._buffered += 1
        if len(open_batch.batch.events) >= self._max:
            del self._open[event.key]
            self._buffered -= len(open_batch.batch.events)
            return open_batch.batch
        return None

    def due(self, now: float, most: int | None = None) -> list[Batch]:
        """Batches whose oldest event has waited at least `linger`, oldest first (`most`: no more
        than that many; the others stay open and keep taking their sessions' events)."""
        ready: list[Batch] = []
        while self._open and (most is None or len(ready) < most):
            key, open_batch = next(iter(self._open.items()))
            if now - open_batch.opened_at < self._linger:
                break
            del self._open[key]
            self._buffered -= len(open_batch.batch.events)
            ready.append(open_batch.batch)
        return ready

    def next_due_in(self, now: float) -> float | None:
        """Seconds until the oldest open batch is due (None when nothing is open)."""
        if not self._open:
            return None
        oldest = next(iter(self._open.values()))
        return max(0.0, oldest.opened_at + self._linger - now)

    def drop_partitions(self, tps: Iterable[TopicPartition]) -> int:
        """Discard events of partitions revoked or lost (their new owner reads them again)."""
        wanted = set(tps)
        dropped = 0
        for key in list(self._open):
            batch = self._open[key].batch
            kept = [e for e in batch.events if e.record.tp not in wanted]
            dropped += len(batch.events) - len(kept)
            if kept:
                batch.events = kept
            else:
                del self._open[key]
        self._buffered -= dropped
        return dropped

    def flush_all(self) -> list[Batch]:
        ready = [ob.batch for ob in self._open.values()]
        self._open.clear()
        self._buffered = 0
        return ready
