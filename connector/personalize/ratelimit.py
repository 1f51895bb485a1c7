"""A thread-safe token bucket that slows down on throttling and recovers (AIMD), for one quota.

Personalize's PutEvents quota is per dataset group (1,000 requests/s by default). Staying under it
is cheaper than living on ThrottlingException: every throttled call is a wasted round trip and a
delay for the whole batch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from connector.records import Request

RECOVERY_PER_S = 0.25  # of the full rate, per second, after a throttle cut


class _Turn:
    """A waiting caller's place: set when it is given a token (`granted`) or made the first."""

    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.granted = False


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
        # Callers waiting for a token: the first sleeps until one refills, the others wait for
        # their turn (to be given a token, or to be first), in order.
        self._first: _Turn | None = None
        self._waiting: deque[_Turn] = deque()

    def _sized(self, quota: float) -> tuple[float, float, float, float]:
        """(quota, burst, max_rate, min_rate) for a quota.

        The quota is counted per second, on arrival at the service: a bucket refilling at r with
        capacity b lets any 1 s window of sends hold up to r + b requests, and calls whose time on
        the way varies by d put up to r x d more into a 1 s window of arrivals. Refill at 99 % of the
        quota with a burst of one call plus 0.5 % of the quota: sends stay within 99.6 % of the
        quota in any window (at 1,000 calls/s), which leaves the rest for that jitter below the
        quota and 2.4 % below 1.02 x (the busiest second at the emulator: 1,010 calls at 50 ms);
        waiting callers take turns (`acquire`), so the bucket's pace is kept however many wait.
        At 98.5 % the pace itself was the quota stage's ceiling: 976 calls/s of 1,000 against 980
        at 99 %, when every second without a garbage-collector pause reached 985 against 990.

        The burst is never a single token: the caller waiting for the next token sleeps until one
        has refilled and wakes late (the OS, and the interpreter's lock held by the worker's loop
        for up to its 5 ms switch interval); with room for one token only, what refills while it
        oversleeps is lost. At 200 calls/s (a token every 5 ms) a bucket of one gave 76 % of the
        quota to one worker (`make bench`, group quota). The 0.5 % of the quota is what refills in
        5 ms: a wake-up that late loses nothing."""
        burst = self._fixed_burst if self._fixed_burst is not None else 1.0 + quota / 200
        max_rate = max(min(quota - burst, quota * 0.99), quota / 2)
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
        # Additive recovery towards the configured rate after a throttle cut it: a quarter of it per
        # second, so even a rate cut to the floor is whole again 4 s after the throttling ends. At
        # 5 % a second (20 s), a 5 s throttling storm every minute took a third of the minute's
        # capacity, and a worker fed at 80 % of its quota fell further behind every minute (make soak).
        if self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + elapsed * self.max_rate * RECOVERY_PER_S)

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until a request may be sent; False if `stop` was set while waiting.

        Waiting callers queue in the order they came, and only the first of them sleeps until a
        token has refilled: it takes it, gives the callers behind it the other whole tokens there
        are (a first caller that woke late catches up), and hands its place on. When all of them
        polled for a token, all woke at each refill and all but one slept again: tens of
        thousands of wake-ups a second with 64 callers at 1,000 calls/s, on the interpreter's
        one core. Tokens are taken as they refill, never ahead, so what any 1 s holds stays the
        bucket's bound however late a caller wakes."""
        with self._lock:
            if self._first is None:
                self._refill(self._clock())
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return True
            turn = _Turn()
            if self._first is None:
                self._first = turn
            else:
                self._waiting.append(turn)
        while self._first is not turn:
            if turn.event.wait(0.1):
                if turn.granted:
                    return True
                continue  # made first
            if stop is not None and stop.is_set():  # noticed within 0.1 s
                with self._lock:
                    if turn.granted:
                        return True  # given a token as the stop came: it is spent
                    if self._first is not turn:
                        self._waiting.remove(turn)
                        return False
        return self._as_first(stop)

    def _as_first(self, stop: threading.Event | None) -> bool:
        """The first waiting caller: sleep until a token has refilled, take it, pass the rest on."""
        while True:
            with self._lock:
                self._refill(self._clock())
                granted = self._tokens >= 1.0
                if granted:
                    self._tokens -= 1.0
                    while self._waiting and self._tokens >= 1.0:
                        behind = self._waiting.popleft()
                        self._tokens -= 1.0
                        behind.granted = True
                        behind.event.set()
                if granted or (stop is not None and stop.is_set()):
                    self._first = self._waiting.popleft() if self._waiting else None
                    if self._first is not None:
                        self._first.event.set()
                    return granted
                wait = (1.0 - self._tokens) / self.rate
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
