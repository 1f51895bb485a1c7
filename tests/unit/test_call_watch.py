"""CallWatch: failing calls are logged boundedly, and readiness follows successful calls (issue 13, item 12).

A fake clock makes these independent of machine speed."""

from __future__ import annotations

import logging

import pytest

from connector.personalize.sink import CallWatch, Failure


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "connector.personalize.sink"]


def test_ten_thousand_failures_in_an_hour_write_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="connector.personalize.sink")
    clock = Clock()
    watch = CallWatch("events", log_interval_s=30, unready_after_s=300, clock=clock)
    watch.begin()
    for i in range(10_000):
        watch.failed(Failure.TRANSIENT, f"HTTP 502: Bad Gateway #{i}")
        clock.now += 0.36  # one hour in all
    lines = _lines(caplog)
    assert len(lines) <= 1 + 3600 / 30 + 1
    assert lines[0] == ("route events: a call failed (transient: HTTP 502: Bad Gateway #0); "
                        "retrying until it succeeds")
    assert lines[1].startswith("route events: still failing: 84 calls failed in the last 30s, 85 over 30s since")
    assert lines[1].endswith("last: transient: HTTP 502: Bad Gateway #84; retrying")
    watch.succeeded()
    assert _lines(caplog)[-1].startswith("route events: calls succeed again after 10000 failed calls over 3600.0s")


def test_throttling_between_successes_stays_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """Every failure run ends with a success; still at most two lines per interval."""
    caplog.set_level(logging.WARNING, logger="connector.personalize.sink")
    clock = Clock()
    watch = CallWatch("events", log_interval_s=30, clock=clock)
    for _ in range(3000):  # 300 s
        watch.failed(Failure.THROTTLED, "HTTP 400 ThrottlingException: Rate exceeded")
        watch.succeeded()
        clock.now += 0.1
    assert len(_lines(caplog)) <= 2 * (300 / 30 + 1)


def test_readiness_turns_false_only_with_work_pending_and_no_success() -> None:
    clock = Clock()
    watch = CallWatch("events", unready_after_s=300, clock=clock)
    clock.now += 10_000
    assert watch.unready_reason() is None  # idle for hours is not failing
    assert watch.seconds_since_success() == 10_000  # since start-up: nothing delivered yet
    watch.begin()  # work arrives: the clock starts now, not at start-up
    watch.failed(Failure.TRANSIENT, "ConnectionClosedError: reset")
    clock.now += 299
    assert watch.unready_reason() is None
    clock.now += 1
    reason = watch.unready_reason()
    assert reason == ("route events: no successful call for 300s with work pending "
                      "(1 calls failed, last: transient: ConnectionClosedError: reset)")
    watch.succeeded()
    assert watch.unready_reason() is None
    assert watch.seconds_since_success() == 0
    clock.now += 301  # still busy, but a success came 301 s ago: unready again
    assert watch.unready_reason() is not None
    watch.end()
    assert watch.unready_reason() is None


def test_zero_disables_the_readiness_rule() -> None:
    clock = Clock()
    watch = CallWatch("events", unready_after_s=0, clock=clock)
    watch.begin()
    clock.now += 1e6
    assert watch.unready_reason() is None
