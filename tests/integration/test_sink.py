"""The PutEvents sink against the real emulator over HTTP: failure classes and bisection."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest

from connector.destinations.events import SessionKey
from connector.personalize.ratelimit import AdaptiveRateLimiter
from connector.personalize.sink import Backoff, Failure, PutEventsSink, make_client
from connector.records import Batch, Event, SourceRecord

pytestmark = pytest.mark.integration


def _batch(tracking_id: str, items: list[str]) -> Batch:
    key = SessionKey(tracking_id, "session-1", "user-1")
    sent = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return Batch(key, [
        Event(key, {"eventId": f"e{i}", "eventType": "view", "itemId": item, "sentAt": sent},
              SourceRecord("t", 0, i, None, b""))
        for i, item in enumerate(items)
    ])


def _sink(url: str, **kwargs: Any) -> PutEventsSink:
    fast = Backoff(base_s=0.01, cap_s=0.05)
    return PutEventsSink(make_client("us-east-1", url, 4), AdaptiveRateLimiter(1000), backoff=fast,
                         systemic_backoff=fast, **kwargs)


def test_an_invalid_event_is_isolated_by_bisection_and_the_rest_delivered(
    fresh_emulator: Any, tracking_id: str, aws_env: None
) -> None:
    fresh_emulator.set_faults(reject_item_ids=["bad-3", "bad-8"])
    items = [f"ok-{i}" for i in range(10)]
    items[3], items[8] = "bad-3", "bad-8"
    outcome = _sink(fresh_emulator.url).send(_batch(tracking_id, items))
    assert sorted(e.body["itemId"] for e in outcome.delivered) == sorted(i for i in items if i.startswith("ok"))
    assert sorted(e.body["itemId"] for e, _ in outcome.rejected) == ["bad-3", "bad-8"]
    for _, error in outcome.rejected:
        assert error.stage == "send"
        assert error.error_class == "InvalidInputException"
        assert "itemId" in error.message
    assert outcome.failures[Failure.INVALID] >= 2
    received = [e["itemId"] for e in fresh_emulator.events(tracking_id)]
    assert sorted(received) == sorted(i for i in items if i.startswith("ok"))


@pytest.mark.parametrize("fault", [{"throttle_ratio": 0.6}, {"error_ratio": 0.6},
                                   {"error_ratio": 0.6, "error_status": 503}])
def test_transient_failures_are_retried_until_delivered_and_nothing_is_rejected(
    fresh_emulator: Any, tracking_id: str, aws_env: None, fault: dict[str, Any]
) -> None:
    fresh_emulator.set_faults(**fault)
    sink = _sink(fresh_emulator.url)
    for n in range(5):
        outcome = sink.send(_batch(tracking_id, [f"i{n}-{k}" for k in range(10)]))
        assert len(outcome.delivered) == 10 and not outcome.rejected and not outcome.abandoned
    assert len(fresh_emulator.events(tracking_id)) == 50


def test_an_outage_is_ridden_out(fresh_emulator: Any, tracking_id: str, aws_env: None) -> None:
    fresh_emulator.set_faults(outage=True)
    sink = _sink(fresh_emulator.url)
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(o=sink.send(_batch(tracking_id, ["a", "b"]))))
    thread.start()
    # The call keeps failing while the outage lasts ...
    while fresh_emulator.stats().get("dropped_connections", 0) + fresh_emulator.stats().get("server_errors", 0) < 3:
        thread.join(0.05)
    assert thread.is_alive()
    fresh_emulator.set_faults(outage=False)
    thread.join(30)
    assert len(result["o"].delivered) == 2


def test_an_unknown_tracker_is_systemic_and_never_rejects_events(
    start_emulator: Any, tracking_id: str, aws_env: None
) -> None:
    emulator = start_emulator("--tracking-id", "the-only-tracker")
    stop = threading.Event()
    sink = _sink(emulator.url, stop=stop)
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(o=sink.send(_batch(tracking_id, ["a"]))))
    thread.start()
    while sink.systemic_error is None:
        thread.join(0.05)
    assert "ResourceNotFoundException" in sink.systemic_error
    stop.set()  # the worker stopping: the sink abandons the batch (it stays uncommitted)
    thread.join(30)
    outcome = result["o"]
    assert not outcome.delivered and not outcome.rejected
    assert len(outcome.abandoned) == 1
