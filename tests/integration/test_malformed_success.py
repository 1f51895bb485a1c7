"""Only a well-formed success answer means delivered (issue 13, item 2).

PutEvents/PutItems/PutUsers have no output shape, so botocore never reads a 2xx body: before this
fix, a 200 carrying a proxy's HTML page, cut JSON or a JSON array counted as delivered with both HTTP
clients (boto3 and lean), offsets were committed past events that never reached Personalize, and
`check` passed. A small stand-in server on 127.0.0.1 gives those answers (the emulator cannot).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.faults import OffsetProbe, run_worker, wait_until
from fixtures.pipeline import connector_config, write_config
from fixtures.standin import GOOD, Answer, StandIn, serve_standin

from connector.destinations.entities import EntityKey
from connector.destinations.events import SessionKey
from connector.destinations.items import ITEMS
from connector.destinations.users import USERS
from connector.observability import Metrics
from connector.personalize.ratelimit import AdaptiveRateLimiter
from connector.personalize.sink import Backoff, Failure, PutEventsSink, make_client
from connector.records import Batch, Event, SourceRecord
from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

HTTP_CLIENTS = ["boto3", "lean"]
GARBAGE = {
    "html": Answer(200, b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>", "text/html"),
    "truncated-json": Answer(200, b'{"status": "acce'),
    "json-array": Answer(200, b"[]"),
    "json-string": Answer(200, b'"OK"'),
    "json-number": Answer(200, b"1"),
    "json-null": Answer(200, b"null"),
    "error-document": Answer(200, b'{"__type": "InternalFailure", "message": "try again"}'),
    "error-header": Answer(200, b"{}", headers=(("x-amzn-ErrorType", "InternalFailure"),)),
    "body-cut-short": Answer(200, b"{}", declared_length=64),
}


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with serve_standin(GOOD) as server:
        yield server


def _events(n: int, route: str = "events") -> Batch:
    key = SessionKey("tracker", "session-1", "user-1", route=route)
    sent = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return Batch(key, [Event(key, {"eventId": f"e{i}", "eventType": "view", "sentAt": sent},
                             SourceRecord("t", 0, i, None, b"")) for i in range(n)])


def _sink(url: str, http_client: str, metrics: Metrics, stop: threading.Event | None = None) -> PutEventsSink:
    fast = Backoff(base_s=0.001, cap_s=0.01)
    return PutEventsSink(make_client("us-east-1", url, 2, http_client=http_client), AdaptiveRateLimiter(1000),
                         backoff=fast, systemic_backoff=fast, metrics=metrics, stop=stop)


@pytest.mark.parametrize("http_client", HTTP_CLIENTS)
@pytest.mark.parametrize("garbage", list(GARBAGE), ids=list(GARBAGE))
def test_a_2xx_that_is_not_the_api_answer_is_retried_and_never_counted_delivered(
    standin: StandIn, aws_env: None, http_client: str, garbage: str
) -> None:
    standin.answer = GARBAGE[garbage]
    metrics = Metrics()
    sink = _sink(standin.url, http_client, metrics)
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(outcome=sink.send(_events(3))), daemon=True)
    thread.start()
    wait_until(lambda: standin.requests >= 5, "the sink retried the malformed answer 5 times", 60)
    assert thread.is_alive() and "outcome" not in result  # not delivered, not rejected: retrying
    if garbage != "body-cut-short":  # a cut body fails in the HTTP layer, before the check
        assert (metrics.registry.get_sample_value("pkc_malformed_responses_total", {"route": "events"}) or 0) >= 4
    standin.answer = GOOD
    thread.join(60)
    outcome = result["outcome"]
    assert [e.body["eventId"] for e in outcome.delivered] == ["e0", "e1", "e2"]
    assert not outcome.rejected and not outcome.abandoned
    assert outcome.failures[Failure.TRANSIENT] >= 5
    assert standin.accepted_event_ids() == ["e0", "e1", "e2"]  # delivered once, by the good answer


@pytest.mark.parametrize("http_client", HTTP_CLIENTS)
def test_put_items_and_put_users_get_the_same_rule(standin: StandIn, aws_env: None, http_client: str) -> None:
    standin.answer = GARBAGE["html"]
    metrics = Metrics()
    stop = threading.Event()
    sink = _sink(standin.url, http_client, metrics, stop=stop)
    arn = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
    for kind, id_field in ((ITEMS, "itemId"), (USERS, "userId")):
        key = EntityKey("catalogue", kind, arn, 0)
        batch = Batch(key, [Event(key, {id_field: "x-1"}, SourceRecord("t", 0, 0, None, b""))])
        before = standin.requests
        result: dict[str, Any] = {}
        thread = threading.Thread(target=lambda b=batch, r=result: r.update(o=sink.send(b)), daemon=True)
        thread.start()
        wait_until(lambda b=before: standin.requests >= b + 3, f"{kind.name} retried", 60)
        stop.set()  # the worker stopping: the batch is abandoned (stays uncommitted), not delivered
        thread.join(60)
        stop.clear()
        assert not result["o"].delivered and len(result["o"].abandoned) == 1


def test_the_worker_commits_nothing_while_answers_are_malformed_and_everything_after(
    stack: Any, new_topic: Any, group_id: str, tracking_id: str, aws_env: None, tmp_path: Path, standin: StandIn
) -> None:
    for http_client in HTTP_CLIENTS:
        topic = new_topic(partitions=2)
        group = f"{group_id}-{http_client}"
        produce(list(generate(60, 12, seed=3)), stack.bootstrap, stack.registry_url, topic, progress=False)
        standin.answer = GARBAGE["html"]
        config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url,
                                  emulator_url=standin.url, topics=[topic], group_id=group,
                                  tracking_id=tracking_id, personalize={"http_client": http_client},
                                  batching={"linger_ms": 50, "max_in_flight_calls": 4})
        with run_worker(write_config(tmp_path, config, f"{http_client}.yaml")) as worker, \
                OffsetProbe(stack.bootstrap, group, topic, 2) as probe:
            start = standin.requests
            # 60 events in 12 sessions need about 12 calls: 10 answers are all garbage either way.
            wait_until(lambda s=start: standin.requests >= s + 10, "10 malformed answers", 120)
            assert worker.metric("pkc_events_delivered_total") == 0
            # The stand-in counts a request before the client has read its answer: wait for the metric.
            wait_until(lambda: worker.metric("pkc_malformed_responses_total", route="events") >= 9,
                       "the malformed answers counted", 60)
            committed = probe.committed()
            assert all(offset <= 0 for offset in committed.values()), committed  # nothing past offset 0
            standin.answer = GOOD
            wait_until(lambda: sum(max(o, 0) for o in probe.committed().values()) == 60, "all 60 committed", 120)
            assert worker.metric("pkc_events_delivered_total") == 60
            malformed = worker.metric("pkc_malformed_responses_total", route="events")
        print(f"\n{http_client}: malformed answers before recovery={malformed:.0f}, then 60/60 delivered")


def test_check_fails_on_a_200_that_is_not_the_api_answer(
    stack: Any, new_topic: Any, group_id: str, tracking_id: str, aws_env: None, tmp_path: Path, standin: StandIn
) -> None:
    standin.answer = GARBAGE["html"]
    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=standin.url,
                              topics=[new_topic(partitions=1)], group_id=group_id, tracking_id=tracking_id)
    exe = Path(sys.executable).with_name("personalize-connector")
    result = subprocess.run([str(exe), "check", "--config", str(write_config(tmp_path, config))],
                            capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stdout + result.stderr
    [reason] = [line for line in result.stdout.splitlines() if line.startswith("FAIL personalize.put_events: ")]
    assert "answered HTTP 200 with a body that is not JSON (text/html" in reason
    assert "Welcome to nginx" in reason  # what came back, so the operator can tell whose page it is
