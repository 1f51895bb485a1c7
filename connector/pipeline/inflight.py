"""How many calls may be in flight: sized from the quota and the service's latency (Little's law).

Sending at the quota Q with calls that take L seconds needs Q x L calls in flight; fewer and the
worker waits on the service instead of the quota (16 calls of 50 ms allow 320 calls/s of a 1,000
quota). Configured as a number, the bound is that number (`lowest == highest`). Configured as
"auto", it follows each window's measurement:

    target = quota x latency x headroom                     (if that is within `highest`)
    target = min(quota, 2 x observed call rate) x latency x headroom          (otherwise)

A quota the pool can serve is served at once, and the first window ends after the first round of
calls, not after a second: a backlog at start-up spent its first seconds growing from 16 calls in
flight (320 calls/s of a 1,000 quota at 50 ms; `make bench`'s quota stage ramped for 5-7 s).

The latency is the mean of the window's successful calls, what Little's law asks for. When the
worker is CPU-bound (its process used most of a core in the window) the mean also holds the time a
call waits for the interpreter, which grows with the calls in flight and would grow the bound
without limit (more calls in flight, longer, more in flight...): then twice the fastest call (about
the service's own latency) caps it. A slow or queueing service, or a busy machine, leaves the
worker's CPU idle while calls wait: more calls in flight is then what helps. The
observed rate caps a quota beyond the pool's reach because a lifted quota (a million per
second) says nothing about how many calls are needed; a bound that limits the rate doubles it per
window (each window at the bound shows rate = bound / latency), until the quota or the `highest`
bound is reached. The bound grows at once and shrinks by a tenth per window, so one quiet window
does not starve the next. Only the loop's thread uses it (outcomes are applied there): no lock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# Without a measurement, or when nothing needs more: the fixed default of earlier versions.
AUTO_LOWEST = 16
# The most the configuration allows (batching.max_in_flight_calls: 1..256), and the pool's size.
AUTO_HIGHEST = 256
# Latency varies between calls and the bucket's pace is not perfectly even: 25 % more calls than
# Little's law says keep the quota, not the calls in flight, the limit.
HEADROOM = 1.25
# How fast the observed rate may pull the bound up: the rate a bound of N allows is what it shows.
RATE_GROWTH = 2.0
# The process used more than this share of a core over a window: its calls wait for the interpreter.
CPU_BOUND = 0.75
SHRINK_PER_WINDOW = 0.9


class InFlightLimit:
    def __init__(self, lowest: int, highest: int, *, quota_rate: Callable[[], float] = lambda: math.inf,
                 window_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 cpu_clock: Callable[[], float] = time.process_time) -> None:
        if not 1 <= lowest <= highest:
            raise ValueError("need 1 <= lowest <= highest")
        self.lowest, self.highest = lowest, highest
        self.current = lowest
        self._quota_rate, self._window_s, self._clock, self._cpu_clock = quota_rate, window_s, clock, cpu_clock
        self._window_start, self._window_cpu = clock(), cpu_clock()
        self._calls = 0
        self._latencies = 0.0  # the window's successful calls: their total latency, count, fastest
        self._answered = 0
        self._fastest = math.inf
        self._sized = False  # not yet measured: the first window ends after one round of calls

    @classmethod
    def fixed(cls, calls: int) -> InFlightLimit:
        """A configured number: the bound never moves."""
        return cls(calls, calls)

    @property
    def automatic(self) -> bool:
        return self.lowest < self.highest

    def completed(self, calls: int, latencies_s: list[float]) -> None:
        """A batch's outcome was applied: `calls` calls made, the successful ones took `latencies_s`."""
        if not self.automatic:
            return
        self._calls += calls
        self._latencies += sum(latencies_s)
        self._answered += len(latencies_s)
        self._fastest = min(self._fastest, *latencies_s) if latencies_s else self._fastest
        now = self._clock()
        elapsed = now - self._window_start
        first_round = not self._sized and self._answered >= self.lowest
        if elapsed < self._window_s and not first_round:
            return
        cpu = self._cpu_clock()
        if self._answered:
            latency = self._latencies / self._answered
            if (cpu - self._window_cpu) / elapsed > CPU_BOUND:
                latency = min(latency, 2 * self._fastest)
            self.current = self.sized(self._quota_rate(), self._calls / elapsed, latency)
            self._sized = True
        self._window_start, self._window_cpu, self._calls, self._latencies, self._answered = now, cpu, 0, 0.0, 0
        self._fastest = math.inf

    def sized(self, quota_rate: float, observed_rate: float, latency_s: float) -> int:
        """The bound after a window that made `observed_rate` calls/s of `latency_s` each."""
        if quota_rate * latency_s * HEADROOM <= self.highest:
            rate = quota_rate  # within the pool's reach: what the whole quota needs, at once
        else:
            rate = min(quota_rate, RATE_GROWTH * observed_rate)
        target = math.ceil(rate * latency_s * HEADROOM)
        target = max(target, math.floor(self.current * SHRINK_PER_WINDOW))
        return max(self.lowest, min(self.highest, target))
