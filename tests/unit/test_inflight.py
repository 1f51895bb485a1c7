"""The calls in flight follow the quota and the service's latency (connector.pipeline.inflight)."""

from __future__ import annotations

import math

import pytest

from connector.pipeline.inflight import InFlightLimit


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run_windows(limit: InFlightLimit, clock: FakeClock, latency_s: float, quota: float, windows: int) -> list[int]:
    """Simulate a backlog: each window makes as many calls as the bound and the quota allow."""
    bounds = []
    for _ in range(windows):
        calls = int(min(quota, limit.current / latency_s))
        for _ in range(calls):
            clock.now += 1.0 / calls
            limit.completed(1, latency_s)
        bounds.append(limit.current)
    return bounds


def test_a_fixed_number_never_moves() -> None:
    limit = InFlightLimit.fixed(16)
    for _ in range(100):
        limit.completed(1, 0.05)
    assert (limit.current, limit.automatic) == (16, False)


def test_grows_to_quota_times_latency_with_headroom_and_stays() -> None:
    clock = FakeClock()
    limit = InFlightLimit(16, 256, quota_rate=lambda: 1000.0, clock=clock)
    bounds = _run_windows(limit, clock, latency_s=0.05, quota=1000.0, windows=8)
    # 16 calls of 50 ms: 320 calls/s; the bound more than doubles per window until the quota.
    assert bounds[0] > 32
    assert bounds[-3:] == [63, 63, 63]  # ceil(1000 x 0.05 x 1.25)
    assert bounds[-1] / 0.05 >= 1000  # enough for the whole quota


def test_a_lifted_quota_does_not_grow_past_what_the_calls_show() -> None:
    """A CPU-bound worker: the fastest call is 1 ms while calls wait for the interpreter."""
    clock = FakeClock()
    limit = InFlightLimit(16, 256, quota_rate=lambda: 1e6, clock=clock)
    for _ in range(10):
        for _ in range(1500):  # 1,500 calls/s whatever the bound
            clock.now += 1 / 1500
            limit.completed(1, 0.001)
    assert limit.current == 16  # ceil(3000 x 0.001 x 1.25) = 4, below the lowest


def test_bounded_by_the_highest() -> None:
    clock = FakeClock()
    limit = InFlightLimit(16, 256, quota_rate=lambda: 20_000.0, clock=clock)
    assert max(_run_windows(limit, clock, latency_s=0.2, quota=20_000.0, windows=10)) == 256


def test_shrinks_by_a_tenth_per_window_when_less_is_needed() -> None:
    clock = FakeClock()
    quota = [1000.0]
    limit = InFlightLimit(16, 256, quota_rate=lambda: quota[0], clock=clock)
    _run_windows(limit, clock, latency_s=0.05, quota=1000.0, windows=8)
    quota[0] = 100.0  # this worker's share fell (a rebalance)
    bounds = _run_windows(limit, clock, latency_s=0.05, quota=100.0, windows=20)
    assert bounds[0] == math.floor(63 * 0.9)
    assert bounds[-1] == 16


def test_a_window_without_a_successful_call_keeps_the_bound() -> None:
    clock = FakeClock()
    limit = InFlightLimit(16, 256, quota_rate=lambda: 1000.0, clock=clock)
    for _ in range(50):
        clock.now += 0.1
        limit.completed(3, math.inf)  # only failed calls: no latency measured
    assert limit.current == 16


@pytest.mark.parametrize(("lowest", "highest"), [(0, 4), (5, 4)])
def test_rejects_an_empty_range(lowest: int, highest: int) -> None:
    with pytest.raises(ValueError):
        InFlightLimit(lowest, highest)
