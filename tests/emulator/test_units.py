"""In-process unit tests of the emulator's small parts (no subprocess)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from connector.emulator.faults import Faults
from connector.emulator.ratelimit import RateLimiter
from connector.emulator.storage import SqliteStore, StoredCall, expand


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refills_at_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock)
    assert [limiter.allow("k") for _ in range(3)] == [True, True, False]
    clock.now += 0.5  # one token back
    assert [limiter.allow("k") for _ in range(2)] == [True, False]
    assert limiter.allow("other")
    clock.now += 60  # never more than the burst
    assert [limiter.allow("k") for _ in range(3)] == [True, True, False]


def test_fractional_rate_has_a_burst_of_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.5, clock)
    assert [limiter.allow("k"), limiter.allow("k")] == [True, False]
    clock.now += 2
    assert limiter.allow("k")


def test_faults_update_is_atomic() -> None:
    faults = Faults()
    with pytest.raises(ValueError):
        faults.update({"throttle_ratio": 0.5, "error_ratio": 2})
    assert faults.throttle_ratio == 0
    faults.update({"error_ratio": 1})
    assert faults.pick(random.Random(1)) == "error"
    faults.update({"outage": True})
    assert faults.pick(random.Random(1)) == "outage"


def test_expand_copies_context_and_keeps_entry_order() -> None:
    call = StoredCall("events", "t", 5.0, {"trackingId": "t", "sessionId": "s", "eventList": [{"a": 1}, {"a": 2}]})
    assert list(expand(call)) == [
        {"trackingId": "t", "sessionId": "s", "a": 1, "receivedAt": 5.0},
        {"trackingId": "t", "sessionId": "s", "a": 2, "receivedAt": 5.0},
    ]


def test_sqlite_store_pages_and_filters(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    store.PAGE = 7  # force several pages
    for n in range(20):
        key = "a" if n % 2 else "b"
        request = {"trackingId": key, "sessionId": "s", "eventList": [{"n": n}]}
        store.add(
            StoredCall("events", key, float(n), request),
            b'{"trackingId": "%s", "sessionId": "s", "eventList": [{"n": %d}]}' % (key.encode(), n),
        )
    assert [c.request["eventList"][0]["n"] for c in store.calls("events")] == list(range(20))
    assert [c.received_at for c in store.calls("events", "a")] == [float(n) for n in range(1, 20, 2)]
    assert list(store.calls("items")) == []
    store.close()
