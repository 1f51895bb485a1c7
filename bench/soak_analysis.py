"""The soak's verdicts from what it sampled and counted: pure functions, no processes or I/O.

- flat: a resource (RSS, open fds, threads) after warm-up never exceeds its early post-warm-up
  level by more than 10 %;
- ideal calls: the fewest PutEvents calls that keep every event within `linger` (the offline
  `bench.workload.ideal_live_calls`), counted one arrival at a time so a 10-minute stream of a
  million events needs no list of arrivals;
- accounting: every good event delivered, every bad record dead-lettered, nothing else.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

WARM_UP_FRACTION = 0.1  # the first tenth of the run: imports, group join, pools and buffers filling
FLAT_TOLERANCE = 0.10
MAX_EVENTS_PER_CALL = 10


@dataclass(frozen=True)
class Flatness:
    """One resource over the run, judged after warm-up.

    `reference` is the median over the tenth of the run right after warm-up (a median, so one
    sample taken mid-reconnect does not set the bar); `peak` the highest sample after warm-up;
    `end` the median over the run's last tenth.
    """

    name: str
    unit: str
    warm_up_s: float
    reference: float
    peak: float
    end: float
    samples: int

    @property
    def growth(self) -> float:
        """Peak after warm-up over the reference: 1.0 is perfectly flat."""
        return self.peak / self.reference if self.reference else math.inf

    @property
    def flat(self) -> bool:
        return self.samples > 0 and self.peak <= self.reference * (1 + FLAT_TOLERANCE)


def flatness(name: str, unit: str, series: Sequence[tuple[float, float]], duration_s: float) -> Flatness:
    """Judge `series` ((seconds since the run started, value), in time order) over `duration_s`."""
    tenth = duration_s * WARM_UP_FRACTION
    after = [v for t, v in series if t >= tenth]
    reference = [v for t, v in series if tenth <= t < 2 * tenth] or after[:1]
    last = [v for t, v in series if duration_s - tenth <= t <= duration_s] or after[-1:]
    if not after:
        return Flatness(name, unit, tenth, math.nan, math.nan, math.nan, 0)
    return Flatness(name, unit, tenth, float(statistics.median(reference)), float(max(after)),
                    float(statistics.median(last)), len(after))


@dataclass
class LiveCallCounter:
    """`ideal_live_calls`, fed one arrival at a time (arrivals of a session in time order).

    Per session the greedy split is optimal: a call opens at the first unsent event and takes every
    later event of its session within `linger_s` of it, up to 10 per call.
    """

    linger_s: float
    max_events: int = MAX_EVENTS_PER_CALL
    calls: int = 0
    events: int = 0
    _open: dict[str, tuple[float, int]] = field(default_factory=dict)  # session -> (call opened, events in it)

    def add(self, session: str, t: float) -> None:
        self.events += 1
        opened = self._open.get(session)
        if opened is not None and opened[1] < self.max_events and t - opened[0] <= self.linger_s:
            self._open[session] = (opened[0], opened[1] + 1)
            return
        self.calls += 1
        self._open[session] = (t, 1)


@dataclass(frozen=True)
class Accounting:
    """Produced records against what came out: the emulator's events and the dead-letter topic."""

    produced: int
    good: int  # produced records that are valid events
    bad: int  # produced records made invalid on purpose (every one must be dead-lettered)
    delivered: int  # distinct expected event ids the emulator accepted
    duplicates: int  # accepted events beyond the first of their id (at-least-once redelivery)
    unexpected: int  # accepted event ids that were never produced as good events
    dead_lettered: int  # distinct source records on the dead-letter topic
    dead_letter_duplicates: int  # dead letters beyond the first of their source record

    @property
    def missing(self) -> int:
        return self.good - self.delivered

    @property
    def balanced(self) -> bool:
        """delivered + dead-lettered = produced, and each side is the one it should be."""
        return (self.delivered + self.dead_lettered == self.produced and self.missing == 0
                and self.dead_lettered == self.bad and self.unexpected == 0)


def account(expected_ids: set[str], accepted_ids: Sequence[str | None], produced: int, bad: int,
            dead_letter_sources: Sequence[tuple[int, int]]) -> Accounting:
    """Compare the good event ids produced with the ids the emulator accepted, and the bad records
    produced with the (partition, offset) sources of the dead letters (duplicates included in both)."""
    seen = {i for i in accepted_ids if i is not None}
    dead = set(dead_letter_sources)
    return Accounting(
        produced=produced,
        good=len(expected_ids),
        bad=bad,
        delivered=len(seen & expected_ids),
        duplicates=len(accepted_ids) - len(seen),
        unexpected=len(seen - expected_ids),
        dead_lettered=len(dead),
        dead_letter_duplicates=len(dead_letter_sources) - len(dead),
    )

