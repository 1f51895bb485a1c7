"""A thread-safe token bucket that slows down on throttling and recovers (AIMD), for one quota.

Personalize's PutEvents quota is per dataset group (1,000 requests/s by default). Staying under it
is cheaper than living on ThrottlingException: every throttled call is a wasted round trip and a
delay for the whole batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from connector.records import Request


class AdaptiveRateLimiter:
    def __init__(
        self,
        rate_per_second: float,
        *,
        burst: float | None = None,
        min_rate: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be > 0")
        self._fixed_burst = burst
        self._floor = min_rate
        self.quota, self._burst, self.max_rate, self.min_rate = self._sized(rate_per_second)
        self.rate = self.max_rate
        self._tokens = self._burst
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._last_cut = float("-inf")
        self._lock = threading.Lock()

    def _sized(self, quota: float) -> tuple[float, float, float, float]:
        """(quota, burst, max_rate, min_rate) for a quota.

        The quota is counted per second: a bucket refilling at r with capacity b lets any 1 s
        window hold up to r + b requests. Refill at (1 - 1/40) of the quota with a burst of 1/40 so
        that no window ever exceeds the quota, at 97.5 % of it in steady state."""
        burst = self._fixed_burst if self._fixed_burst is not None else max(1.0, quota / 40)
        max_rate = max(quota - burst, quota / 2)
        return quota, burst, max_rate, min(self._floor, max_rate)

    def set_quota(self, quota: float) -> None:
        """Follow a new quota (this worker's share of the group's changed): the rate keeps the
        fraction of the maximum it had, so a throttle cut in progress carries over."""
        if quota <= 0:
            raise ValueError("quota must be > 0")
        with self._lock:
            if quota == self.quota:
                return
            self._refill(self._clock())  # what accrued so far accrued at the old rate
            fraction = self.rate / self.max_rate
            self.quota, self._burst, self.max_rate, self.min_rate = self._sized(quota)
            self.rate = max(self.min_rate, self.max_rate * fraction)
            self._tokens = min(self._tokens, self._burst)

    def bucket(self, request: Request, route: str) -> AdaptiveRateLimiter:
        """One bucket for every call (a sink given a single limiter: tools and tests)."""
        return self

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self.rate)
        # Additive recovery towards the configured rate after a throttle cut it.
        if self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + elapsed * self.max_rate * 0.05)

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until a request may be sent; False if `stop` was set while waiting."""
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return True
                wait = (1.0 - self._tokens) / self.rate
            if stop is not None and stop.is_set():
                return False
            self._sleep(min(max(wait, 1e-4), 0.1))  # a floor: a 1e-17 s wait would spin

    def on_throttled(self) -> None:
        """Multiplicative decrease: the service told us we are over quota.

        Several calls in flight are throttled by the same overshoot; cutting once per episode
        (at most every 200 ms) keeps one burst of replies from collapsing the rate.
        """
        with self._lock:
            now = self._clock()
            if now - self._last_cut < 0.2:
                return
            self._last_cut = now
            self.rate = max(self.min_rate, self.rate * 0.7)
            self._tokens = min(self._tokens, 0.0)
