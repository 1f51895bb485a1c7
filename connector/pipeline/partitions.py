"""The partitions this worker owns, and everything it holds about each of them.

A `PartitionState` is created when a partition is assigned (or its log restarts under us) and
dropped with it, in `Partitions.drop`: nothing per partition is cleared by hand anywhere else.
Two things outlive a state on purpose. The epoch: calls and dead letters still in flight when a
partition is dropped report back later, and must be recognised as an earlier ownership's work.
And nothing else: the offsets tracker and the failure windows forget the partition in `drop` too.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from connector.pipeline.dlq_limits import FailureRatioLimit
from connector.pipeline.offsets import OffsetTracker
from connector.records import SourceRecord, TopicPartition

log = logging.getLogger("connector.worker")


@dataclass(slots=True)
class PartitionState:
    epoch: int
    # Bytes of the records polled and not yet delivered or dead-lettered (backpressure).
    buffered_bytes: int = 0
    # Offsets the previous owner delivered above its last commit (from the commit metadata), and
    # that commit: the offsets are relative to it, so a log read from below it is another log.
    already_delivered: set[int] = field(default_factory=set)
    delivered_base: int = -1
    # The current run of dead letters, and the offset of the latest: only a delivery after it
    # ends the run (a late call for earlier records must not).
    consecutive_failures: int = 0
    last_dead_letter: int = -1
    # Set while the partition is stalled (too many dead letters): why, for /readyz and the gauge.
    stall_reason: str | None = None
    # Not to be read before this clock time (registry unavailable, stalled): paused until then.
    held_until: float | None = None


class Partitions:
    def __init__(self, tracker: OffsetTracker, failure_ratio: FailureRatioLimit) -> None:
        self.tracker = tracker
        self.failure_ratio = failure_ratio
        self._states: dict[TopicPartition, PartitionState] = {}
        # Bumped on every assignment and restart; survives `drop` (see the module docstring).
        self._epochs: dict[TopicPartition, int] = defaultdict(int)

    def __contains__(self, tp: TopicPartition) -> bool:
        return tp in self._states

    def __len__(self) -> int:
        return len(self._states)

    @property
    def assigned(self) -> set[TopicPartition]:
        return set(self._states)

    def get(self, tp: TopicPartition) -> PartitionState | None:
        return self._states.get(tp)

    def items(self) -> list[tuple[TopicPartition, PartitionState]]:
        return list(self._states.items())

    def epoch(self, tp: TopicPartition) -> int:
        return self._epochs[tp]

    def current(self, tp: TopicPartition, epoch: int | None) -> bool:
        """Work started under `epoch` still belongs to us: same ownership, same log."""
        return tp in self._states and self._epochs[tp] == epoch

    def assign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self._start(tp)
        self.tracker.forget(tps)

    def restart(self, tp: TopicPartition, offset: int) -> None:
        """The log of `tp` is not the one we tracked: start afresh at `offset`, with a new epoch, so
        outcomes of calls and dead letters in flight for the old records are ignored, and none of
        its old counters. (The caller drops its buffered and queued work.)"""
        log.warning(
            "%s went back from offset %s to %d: its log changed (topic re-created, truncated or reset "
            "by another tool); tracking restarts at %d and work on the older records is dropped",
            tp, self.tracker.expected(tp), offset, offset,
        )
        self._start(tp)
        self.tracker.reset_to(tp, offset)
        self.failure_ratio.forget({tp})

    def drop(self, tps: set[TopicPartition]) -> None:
        """Forget `tps` entirely (revoked after their commit, or lost)."""
        for tp in tps:
            self._states.pop(tp, None)
        self.tracker.forget(tps)
        self.failure_ratio.forget(tps)

    def leave(self, record: SourceRecord) -> None:
        """`record` is delivered or its dead letter acknowledged: it no longer holds a commit."""
        self.tracker.done(record.tp, record.offset)
        state = self._states.get(record.tp)
        if state is not None:
            state.buffered_bytes -= len(record.value or b"")

    def buffered_bytes(self) -> int:
        return sum(state.buffered_bytes for state in self._states.values())

    def stalled(self) -> dict[TopicPartition, str]:
        return {tp: s.stall_reason for tp, s in self._states.items() if s.stall_reason is not None}

    def _start(self, tp: TopicPartition) -> None:
        self._epochs[tp] += 1
        self._states[tp] = PartitionState(self._epochs[tp])
