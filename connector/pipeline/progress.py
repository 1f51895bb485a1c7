"""When a bounded run is done, and which subscribed topics are gone.

`--exit-when-idle` and `dlq replay` end a run; ending it too early loses nothing (the rest stays
uncommitted) but ends a job before its work. Idle means done only in the group, holding the
assignment, with every assigned partition read to its end: right after a crash the group waits
out the dead member's session before it hands anything out, and "nothing arrived for a while"
then says nothing about the backlog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from connector.kafka.base import Source
from connector.pipeline.partitions import Partitions
from connector.records import TopicPartition

log = logging.getLogger("connector.worker")


class Progress:
    def __init__(self, source: Source, partitions: Partitions, *, busy: Callable[[], bool],
                 clock: Callable[[], float]) -> None:
        self._source = source
        self._partitions = partitions
        self._busy = busy  # records held, calls or letters in flight, or something to commit
        self._clock = clock
        self._last_activity = clock()
        # Why the last idle period did not end the run (logged when it changes, not every period).
        self._not_done_reason: str | None = None

    def active(self) -> None:
        self._last_activity = self._clock()

    def idle_for(self) -> float:
        if self._busy():
            self._last_activity = self._clock()
            return 0.0
        return self._clock() - self._last_activity

    def reached(self, stop_at: dict[TopicPartition, int]) -> bool:
        """Every listed partition committed up to its stop offset."""
        if self.idle_for() == 0.0:
            return False
        for tp, limit in stop_at.items():
            mark = self._partitions.tracker.watermark(tp)
            if mark is None or mark < limit:
                return False
        return True

    def caught_up(self) -> bool:
        """In the group, holding the assignment, each assigned partition read to its end. When
        not, the idle clock starts again: it may only count from here."""
        reason = None
        assigned = self._partitions.assigned
        if not self._source.group_joined():
            reason = "not in the consumer group yet (a previous member's session may still be running)"
        elif assigned:
            behind = self._source.lagging(sorted(assigned, key=str), timeout_s=5.0)
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


class TopicWatch:
    """Notices subscribed topics that do not exist (deleted): /readyz false, said once."""

    def __init__(self, source: Source, topics: list[str], *, interval_s: float, clock: Callable[[], float]) -> None:
        self._source = source
        self._names = [t for t in topics if not t.startswith("^")]
        self._interval_s = interval_s
        self._clock = clock
        self._last_check = clock()
        # Confirmed by two checks in a row: metadata just after start-up or a re-creation can lag.
        self.missing: set[str] = set()
        self._maybe_missing: set[str] = set()

    def check_if_due(self) -> None:
        if self._clock() - self._last_check < self._interval_s:
            return
        self._last_check = self._clock()
        if not self._names:
            return
        try:
            missing = self._source.missing_topics(self._names, timeout_s=2.0)
        except Exception as exc:  # a probe only: the next check tries again
            log.debug("could not check the source topics: %s", exc)
            return
        if missing is None:
            return  # no metadata now (broker unreachable): nothing new to say about the topics
        confirmed = {t for t in missing if t in self._maybe_missing or t in self.missing}
        self._maybe_missing = set(missing)
        for topic in sorted(confirmed - self.missing):
            log.error("source topic %s does not exist (deleted?); /readyz is false until it exists again", topic)
        for topic in sorted(self.missing - confirmed):
            log.info("source topic %s exists again", topic)
        self.missing = confirmed
