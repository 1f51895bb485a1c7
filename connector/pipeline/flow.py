"""What must not be read now, as pauses: the loop keeps polling (heartbeats, rebalances) while
paused partitions deliver nothing.

Held are: every partition while the records held (polled, not yet delivered or dead-lettered)
exceed `max_buffered_records` / `max_buffered_bytes`, until back under 80 % (so we do not flap
around the bound); the partitions of a route whose sink fails systemically (unknown tracker, bad
credentials: the other routes go on); one partition read again later (`hold`: the registry is
unavailable, or it stalled on dead letters).
"""

from __future__ import annotations

import math

from connector.kafka.base import Source
from connector.pipeline.partitions import Partitions
from connector.pipeline.settings import WorkerSettings
from connector.records import SourceRecord, TopicPartition
from connector.routes import RouteTable

# batching.max_buffered_records: auto. Below: a few polls' worth (250 records each) for a small
# quota; above: the bound of earlier versions.
AUTO_BUFFER_LOWEST = 1_000
AUTO_BUFFER_HIGHEST = 100_000


def buffer_bound(quota_rate: float, max_events_per_call: int, linger_s: float) -> int:
    """The records worth holding at a quota of `quota_rate` calls/s: what it lets out in twice the
    linger (at least 1 s), enough for a session's events to meet in one call however far behind
    the worker is. More only sits in memory: a backlog is cheaper in Kafka than in the heap, where
    its records' objects pinned memory after they left (`make soak`: 100,000 allowed, RSS grew by
    half after the start-up and broker-restart backlogs and stayed there)."""
    wanted = quota_rate * max_events_per_call * max(1.0, 2 * linger_s)
    if not math.isfinite(wanted):
        return AUTO_BUFFER_HIGHEST
    return max(AUTO_BUFFER_LOWEST, min(AUTO_BUFFER_HIGHEST, math.ceil(wanted)))


class FlowControl:
    def __init__(self, settings: WorkerSettings, source: Source, partitions: Partitions, routes: RouteTable) -> None:
        self._settings = settings
        self._source = source
        self._partitions = partitions
        self._routes = routes
        self.paused: set[TopicPartition] = set()
        self._buffers_full = False

    def hold(self, record: SourceRecord, until: float) -> None:
        """Give up on `record` and everything after it in its partition; read them again from
        `until` on (unless an earlier rewind gave it up already: seeking forward to it would skip
        the records between)."""
        tp = record.tp
        if self._partitions.tracker.truncate(tp, record.offset):
            self._source.seek(tp, record.offset)
        state = self._partitions.get(tp)
        if state is not None:
            state.held_until = until
            # It is counted again when read again; what follows it in the partition is either not
            # read yet or still in the pipeline, and leaves the count when it finishes there.
            state.buffered_bytes -= len(record.value or b"")

    def reconcile(self, now: float) -> bool:
        """Pause what must not be read now and resume the rest; True when everything is held."""
        s, partitions = self._settings, self._partitions
        buffered = partitions.tracker.total_in_flight()
        buffered_bytes = partitions.buffered_bytes()
        if buffered >= s.max_buffered_records or buffered_bytes >= s.max_buffered_bytes:
            self._buffers_full = True
        elif buffered <= s.max_buffered_records * 0.8 and buffered_bytes <= s.max_buffered_bytes * 0.8:
            self._buffers_full = False
        for _, state in partitions.items():
            if state.held_until is not None and state.held_until <= now:
                state.held_until = None
        assigned = partitions.assigned
        if self._buffers_full:
            want = set(assigned)
        else:
            failing = {r.name for r in self._routes.routes if r.sink.systemic_error is not None}
            want = {tp for tp, state in partitions.items() if state.held_until is not None
                    or (failing and self._routes.for_topic(tp.topic).name in failing)}
        if want - self.paused:
            self._source.pause(sorted(want - self.paused, key=str))
        if self.paused - want:
            self._source.resume(sorted((self.paused - want) & assigned, key=str))
        self.paused = want
        return bool(assigned) and want == assigned

    def pause_all(self) -> None:
        """Shutting down: nothing more is read."""
        self._source.pause(sorted(self._partitions.assigned, key=str))
        self.paused = self._partitions.assigned

    def forget(self, tps: set[TopicPartition] | list[TopicPartition]) -> None:
        """A fresh assignment starts unpaused in both clients; a dropped one is not ours."""
        self.paused.difference_update(tps)
