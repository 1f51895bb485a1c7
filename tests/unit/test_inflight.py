"""The calls in flight follow the quota and the service's latency (connector.pipeline.inflight)."""

from __future__ import annotations

import math

import pytest

from connector.pipeline.inflight import InFlightLimit


def idle_cpu() -> float:
    """A process that used no CPU: its calls waited on the service."""
    return 0.0


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
            limit.completed(1, [latency_s])
        bounds.append(limit.current)
    return bounds


def test_a_fixed_number_never_moves() -> None:
    limit = InFlightLimit.fixed(16)
    for _ in range(100):
        limit.completed(1, [0.05])
    assert (limit.current, limit.automatic) == (16, False)


def test_grows_to_quota_times_latency_with_headroom_and_stays() -> None:
    clock = FakeClock()
    limit = InFlightLimit(16, 256, quota_rate=lambda: 1000.0, clock=clock, cpu_clock=idle_cpu)
    bounds = _run_windows(limit, clock, latency_s=0.05, quota=1000.0, windows=8)
    # 16 calls of 50 ms: 320 calls/s; the bound more than doubles per window until the quota.
    assert bounds[0] > 32
    assert bounds[-3:] == [63, 63, 63]  # ceil(1000 x 0.05 x 1.25)
    assert bounds[-1] / 0.05 >= 1000  # enough for the whole quota


def test_a_cpu_bound_worker_with_a_lifted_quota_stays_at_the_lowest() -> None:
    """Calls take 10 ms on average, waiting for the interpreter (the process uses its whole core);
    the service answers in 1 ms (the fastest call)."""
    clock = FakeClock()
    limit = InFlightLimit(16, 256, quota_rate=lambda: 1e6, clock=clock, cpu_clock=clock)  # a whole core
    for _ in range(10):
        for i in range(1500):  # 1,500 calls/s whatever the bound
            clock.now += 1 / 1500
            limit.completed(1, [0.001 if i % 100 == 0 else 0.01])
    assert limit.current == 16  # ceil(3000 x min(0.01, 2 x 0.001) x 1.25) = 8, below the lowest


def test_a_waiting_worker_sizes_from_the_mean_latency() -> None:
    """The same calls, but the process is idle while they wait (a queueing service, a busy
    machine): more calls in flight is what helps."""
    clock = FakeClock()
    limit = InFlightLimit(16, 256, quota_rate=lambda: 1000.0, clock=clock, cpu_clock=idle_cpu)
    for _ in range(3):
        for i in range(400):
            clock.now += 1 / 400
            limit.completed(1, [0.01 if i % 100 == 0 else 0.1])
    assert limit.current >= 100  # doubling per window from 16: 2 x 400 x ~0.1 x 1.25


def test_calls_slower_than_the_fastest_get_more_calls_in_flight() -> None:
    """The mean latency (up to twice the fastest) is what Little's law needs."""
    clock = FakeClock()
    limit = InFlightLimit(16, 256, quota_rate=lambda: 1000.0, clock=clock, cpu_clock=idle_cpu)
    for _ in range(10):
        for i in range(900):
            clock.now += 1 / 900
            limit.completed(1, [0.05 if i % 2 else 0.08])  # mean 65 ms
    assert limit.current == 82  # ceil(1000 x 0.065 x 1.25)


def test_bounded_by_the_highest() -> None:
    clock = FakeClock()
    limit = InFlightLimit(16, 256, quota_rate=lambda: 20_000.0, clock=clock, cpu_clock=idle_cpu)
    assert max(_run_windows(limit, clock, latency_s=0.2, quota=20_000.0, windows=10)) == 256


def test_shrinks_by_a_tenth_per_window_when_less_is_needed() -> None:
    clock = FakeClock()
    quota = [1000.0]
    limit = InFlightLimit(16, 256, quota_rate=lambda: quota[0], clock=clock, cpu_clock=idle_cpu)
    _run_windows(limit, clock, latency_s=0.05, quota=1000.0, windows=8)
    quota[0] = 100.0  # this worker's share fell (a rebalance)
    bounds = _run_windows(limit, clock, latency_s=0.05, quota=100.0, windows=20)
    assert bounds[0] == math.floor(63 * 0.9)
    assert bounds[-1] == 16


def test_a_window_without_a_successful_call_keeps_the_bound() -> None:
    clock = FakeClock()
    limit = InFlightLimit(16, 256, quota_rate=lambda: 1000.0, clock=clock, cpu_clock=idle_cpu)
    for _ in range(50):
        clock.now += 0.1
        limit.completed(3, [])  # only failed calls: no latency measured
    assert limit.current == 16


@pytest.mark.parametrize(("lowest", "highest"), [(0, 4), (5, 4)])
def test_rejects_an_empty_range(lowest: int, highest: int) -> None:
    with pytest.raises(ValueError):
        InFlightLimit(lowest, highest)


def test_the_first_round_of_calls_sizes_the_bound_for_the_whole_quota() -> None:
    """A backlog at start-up: after the first 16 answers (50 ms), not after a second at 320 calls/s."""
    clock = FakeClock()
    limit = InFlightLimit(16, 256, quota_rate=lambda: 1000.0, clock=clock, cpu_clock=idle_cpu)
    clock.now = 0.05
    for _ in range(15):
        limit.completed(1, [0.05])
    assert limit.current == 16
    limit.completed(1, [0.05])
    assert limit.current == 63  # ceil(1000 x 0.05 x 1.25)


def test_a_lifted_quota_is_grown_into_from_the_observed_rate() -> None:
    """A million calls/s at 50 ms would be 62,500 calls in flight: the bound follows what the calls
    show (doubling per window) instead of jumping to the pool's highest."""
    clock = FakeClock()
    limit = InFlightLimit(16, 256, quota_rate=lambda: 1e6, clock=clock, cpu_clock=idle_cpu)
    clock.now = 0.05
    for _ in range(16):
        limit.completed(1, [0.05])
    assert limit.current <= 41  # 16 calls in 50 ms: ceil(2 x 320 calls/s x 0.05 s x 1.25), not 256
    assert max(_run_windows(limit, clock, latency_s=0.05, quota=2000.0, windows=2)) < 256
