"""When dead-lettering stops being the answer: a partition whose records mostly fail.

A few bad records are the producer's mistakes and belong in the dead-letter topic. When most of
a stream turns bad at once (a wrong mapping, a producer writing a new schema, a broken upstream
deploy), dead-lettering it all only moves the whole stream aside for someone to replay. The
worker then stalls the partition instead (rewind, retry later, /readyz false) so an operator
fixes the cause and nothing needs replaying.

Two limits, as in Arroyo's `DlqLimit` (max_consecutive_count, max_invalid_ratio): a run of
dead letters in a row (in the worker: `dlq.max_consecutive_failures`) and, here, the share of
failures among the last `window` records of a partition (`dlq.max_failure_ratio` over
`dlq.failure_ratio_window`). The ratio catches what the run cannot: a mostly bad stream with a
good record now and then, each of which would end the run.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from connector.records import TopicPartition


@dataclass(slots=True)
class _Window:
    outcomes: deque[bool] = field(default_factory=deque)  # True: failed
    failures: int = 0


class FailureRatioLimit:
    """Per partition, the outcomes of its last `window` records; says when one more failure
    would put the share of failures above `max_ratio`.

    Only a full window is judged: the first records of a stream say little about it, and a short
    burst is the business of the consecutive limit. `max_ratio` 0 disables the limit.
    """

    def __init__(self, max_ratio: float, window: int) -> None:
        if not 0.0 <= max_ratio <= 1.0:
            raise ValueError("max_ratio must be between 0 and 1")
        if window < 1:
            raise ValueError("window must be >= 1")
        self.max_ratio = max_ratio
        self.window = window
        self._partitions: dict[TopicPartition, _Window] = {}

    @property
    def enabled(self) -> bool:
        return self.max_ratio > 0.0

    def record(self, tp: TopicPartition, failed: bool) -> None:
        """One more record of `tp` has its outcome: dead-lettered (`failed`) or not."""
        if not self.enabled:
            return
        state = self._partitions.get(tp)
        if state is None:
            state = self._partitions[tp] = _Window()
        state.outcomes.append(failed)
        state.failures += failed
        if len(state.outcomes) > self.window:
            state.failures -= state.outcomes.popleft()

    def exceeded_by_one_more_failure(self, tp: TopicPartition) -> bool:
        """Would dead-lettering one more record of `tp` make failures exceed `max_ratio` of a full
        window? Nothing is recorded: a record that stalls its partition is not dead-lettered."""
        if not self.enabled:
            return False
        state = self._partitions.get(tp)
        count = len(state.outcomes) if state else 0
        failures = state.failures if state else 0
        if count + 1 < self.window:
            return False
        if count >= self.window and state is not None and state.outcomes[0]:
            failures -= 1  # the oldest outcome leaves the window as this one enters
        return (failures + 1) > self.max_ratio * self.window

    def failures(self, tp: TopicPartition) -> int:
        state = self._partitions.get(tp)
        return state.failures if state else 0

    def forget(self, tps: set[TopicPartition]) -> None:
        """The records these partitions' windows describe are no longer ours (revoked, restarted)."""
        for tp in tps:
            self._partitions.pop(tp, None)
