"""Endless retries are visible (issue 13, item 12).

Before: HTML 502s from a proxy, connection resets and 413s were retried forever with no log line
(failures were logged at DEBUG) and /readyz stayed 200. Now the first failure is logged at once and
later ones at most every `personalize.failure_log_interval_s` per route, with their count and the
last reason; `pkc_seconds_since_last_delivery{route}` grows; /readyz turns false after
`personalize.unready_after_s` without a successful call while work is pending, and true again
once calls succeed. A stand-in server on 127.0.0.1 gives the answers the emulator cannot.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.faults import OffsetProbe, run_worker, wait_until
from fixtures.pipeline import connector_config, write_config
from fixtures.standin import GOOD, HTML_502, RESET, Answer, StandIn, serve_standin

from connector.observability import Metrics, ObservabilityServer
from connector.personalize.ratelimit import AdaptiveRateLimiter
from connector.personalize.sink import Backoff, PutEventsSink, make_client
from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

EVENTS = 40
INTERVAL_S = 1.0
UNREADY_AFTER_S = 3.0
TOO_LARGE = Answer(413, b"<html><body><h1>413 Request Entity Too Large</h1></body></html>", "text/html")


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with serve_standin(HTML_502) as server:
        yield server


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _sink_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "connector.personalize.sink" and "route events:" in r.getMessage()]


@pytest.mark.parametrize("http_client", ["boto3", "lean"])
def test_failing_calls_are_logged_boundedly_turn_readiness_false_and_recover(
    stack: Any, new_topic: Any, group_id: str, tracking_id: str, aws_env: None, tmp_path: Path,
    standin: StandIn, caplog: pytest.LogCaptureFixture, http_client: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="connector.personalize.sink")
    topic = new_topic(partitions=2)
    produce(list(generate(EVENTS, 8, seed=11)), stack.bootstrap, stack.registry_url, topic, progress=False)
    config = connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=standin.url, topics=[topic],
        group_id=group_id, tracking_id=tracking_id, batching={"linger_ms": 50, "max_in_flight_calls": 4},
        personalize={"http_client": http_client, "unready_after_s": UNREADY_AFTER_S,
                     "failure_log_interval_s": INTERVAL_S},
    )
    with run_worker(write_config(tmp_path, config)) as worker, \
            OffsetProbe(stack.bootstrap, group_id, topic, 2) as probe:
        server = ObservabilityServer(worker.worker.metrics, worker.worker.health, host="127.0.0.1", port=0).start()
        try:
            started = time.monotonic()
            wait_until(lambda: standin.answered(HTML_502) >= 3, "three HTML 502 answers", 120)
            wait_until(lambda: _readyz(server.port)[0] == 503, "/readyz turns 503", 120)
            _, body = _readyz(server.port)
            assert "route events: no successful call for" in body["delivery_stalled"]
            assert "HTTP 502" in body["delivery_stalled"]
            stalled_gauge = worker.metric("pkc_seconds_since_last_delivery", route="events")
            assert stalled_gauge >= UNREADY_AFTER_S

            standin.answer = RESET  # a proxy that now drops connections instead
            resets_from = standin.requests
            wait_until(lambda: standin.requests >= resets_from + 3, "three reset connections", 120)
            wait_until(lambda: any("transient" in line and "HTTP 502" not in line.rsplit("last:", 1)[-1]
                                   for line in _sink_lines(caplog)), "a log line with the reset as last reason", 120)
            assert _readyz(server.port)[0] == 503
            assert worker.metric("pkc_events_delivered_total") == 0
            assert all(offset <= 0 for offset in probe.committed().values())

            failing_for = time.monotonic() - started
            lines = _sink_lines(caplog)
            requests = standin.requests
            standin.answer = GOOD
            recovered_at = time.monotonic()
            wait_until(lambda: _readyz(server.port)[0] == 200, "/readyz 200 again", 120)
            wait_until(lambda: sum(max(o, 0) for o in probe.committed().values()) == EVENTS, "all committed", 120)
            # A call succeeded after the switch: the gauge now counts from then (no timing assumption).
            assert worker.metric("pkc_seconds_since_last_delivery", route="events") < time.monotonic() - recovered_at
        finally:
            server.stop()
    print(f"\n{http_client}: failed calls={requests} over {failing_for:.1f}s, log lines={len(lines)}")
    print("\n".join(lines))
    # Bounded: the first failure, then at most one line per interval (however many calls failed).
    assert lines[0].startswith("route events: a call failed (transient: HTTP 502")
    assert all(line.startswith("route events: still failing: ") for line in lines[1:])
    assert 2 <= len(lines) <= 2 + failing_for / INTERVAL_S
    periodic = re.search(r"still failing: (\d+) calls failed in the last", lines[-1])
    assert periodic is not None and int(periodic.group(1)) >= 1
    recovered = [r.getMessage() for r in caplog.records if "calls succeed again after" in r.getMessage()]
    assert len(recovered) == 1


@pytest.mark.parametrize("http_client", ["boto3", "lean"])
@pytest.mark.parametrize("answer", [HTML_502, RESET, TOO_LARGE], ids=["html-502", "reset", "413"])
def test_each_failure_kind_is_retried_and_logged_not_rejected(
    standin: StandIn, aws_env: None, caplog: pytest.LogCaptureFixture, http_client: str, answer: Answer
) -> None:
    """A 413 may come from a proxy with a small body limit (a call is at most ~100 KB): not the
    record's fault, so it is retried like a 5xx, and logged so an operator sees it."""
    import datetime as dt

    from connector.destinations.events import SessionKey
    from connector.records import Batch, Event, SourceRecord

    caplog.set_level(logging.WARNING, logger="connector.personalize.sink")
    standin.answer = answer
    fast = Backoff(base_s=0.001, cap_s=0.01)
    sink = PutEventsSink(make_client("us-east-1", standin.url, 2, http_client=http_client),
                         AdaptiveRateLimiter(1000), backoff=fast, metrics=Metrics(), failure_log_interval_s=3600)
    key = SessionKey("tracker", "s", None)
    batch = Batch(key, [Event(key, {"eventId": "e0", "eventType": "view", "sentAt": dt.datetime.now(dt.UTC)},
                              SourceRecord("t", 0, 0, None, b""))])
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(o=sink.send(batch)), daemon=True)
    thread.start()
    wait_until(lambda: standin.requests >= 10, "ten failed calls", 60)
    standin.answer = GOOD
    thread.join(60)
    assert [e.body["eventId"] for e in result["o"].delivered] == ["e0"] and not result["o"].rejected
    lines = _sink_lines(caplog)
    # One line for the first failure (the interval is an hour), one for the recovery.
    assert len(lines) == 2, lines
    assert lines[0].startswith("route events: a call failed (transient: ")
    assert lines[1].startswith("route events: calls succeed again after ")
