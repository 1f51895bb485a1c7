"""The sink against answers drawn from a grammar of hostile HTTP responses (a stand-in on 127.0.0.1).

Property, for both HTTP clients (`personalize.http_client: boto3 | lean`): `PutEventsSink.send`
reports an event delivered only if a request carrying it was answered with a well-formed success
(a complete HTTP 200 whose body is empty or a JSON object); an event is dead-lettered only if a call
carrying it alone was refused as invalid input; every event ends in exactly one of delivered /
rejected (the script is finite and then every call succeeds, so nothing may stay undelivered).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from adversarial.figures import Tally
from adversarial.standin_http import Answer, StandIn, standin_server
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from connector.destinations.events import SessionKey
from connector.personalize.ratelimit import AdaptiveRateLimiter
from connector.personalize.sink import Backoff, PutEventsSink, make_client
from connector.records import Batch, Event, SourceRecord

SENT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
INVALID_CODES = ("InvalidInputException", "ValidationException", "SerializationException")
OTHER_CODES = ("ThrottlingException", "InternalFailure", "ServiceUnavailable", "ResourceNotFoundException",
               "AccessDeniedException", "SomethingNew")

HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
JSON_OBJECTS = (b"{}", b'{"RequestId":"x"}', b'{"unexpected":[1,2,3]}')
WRONG_JSON_TYPES = (b"[]", b"[{}]", b'"ok"', b"1", b"null", b"true", b"1.5e3")
TRUNCATED_JSON = (b"{", b'{"', b'{"message":"Rate exc', b'{"__type":"InvalidInputException","mess', b"[")

# Bytes that are not (all of) an HTTP response, written in place of one.
JUNK = (("junk-status-line", b"HTTP/1.1 20"), ("junk-not-http", b"NOT HTTP AT ALL\r\n\r\n"),
        ("junk-200-headers-cut", b"HTTP/1.1 200 OK\r\nContent-Le"))

bodies = st.one_of(
    st.just(b""),
    st.sampled_from(JSON_OBJECTS),
    st.sampled_from(WRONG_JSON_TYPES),
    st.sampled_from(TRUNCATED_JSON),
    st.just(HTML),
    st.binary(max_size=64),
    st.text(max_size=40).map(lambda t: json.dumps({"message": t}).encode()),
)
statuses = st.sampled_from([200, 200, 200, 302, 307, 400, 400, 403, 404, 408, 413, 429, 500, 502, 503, 504, 418])


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    how = draw(st.sampled_from(["respond"] * 6 + ["truncated", "close", "reset", "junk"]))
    if how == "close":
        return Answer("close", label="close")
    if how == "reset":
        return Answer("reset", label="reset")
    if how == "junk":
        label, junk = draw(st.sampled_from(JUNK))
        return Answer("junk", body=junk, label=label)
    status = draw(statuses)
    body = draw(bodies)
    error_type = None
    if status >= 400 and draw(st.booleans()):
        error_type = draw(st.sampled_from(INVALID_CODES + OTHER_CODES))
    content_type = draw(st.sampled_from(["application/json", "application/x-amz-json-1.1", "text/html"]))
    cut_at = None
    if how == "truncated":
        body = body or b'{"x":1}'
        cut_at = draw(st.integers(0, len(body) - 1))
    answer = Answer("respond", status, body, content_type, error_type, cut_at)
    return Answer(answer.how, status, body, content_type, error_type, cut_at, _label(answer))


def _label(answer: Answer) -> str:
    if answer.well_formed_success:
        return "200-ok"
    if answer.cut_at is not None:
        return f"{answer.status}-truncated"
    if answer.status == 200:
        return "200-garbage"
    return f"{answer.status // 100}xx" + ("-invalid" if answer.error_type in INVALID_CODES else "")


def _batch(size: int, tracking_id: str) -> Batch:
    key = SessionKey(tracking_id, "session-1", "user-1")
    return Batch(key, [Event(key, {"eventId": f"e{i}", "eventType": "view", "itemId": f"i{i}", "sentAt": SENT},
                             SourceRecord("adversarial", 0, i, None, b""))
                       for i in range(size)])


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    with standin_server() as server:
        yield server


def _check(standin: StandIn, batch: Batch, outcome: Any) -> list[tuple[str, str]]:
    """The property's violations for one send as (class, detail); empty: it holds."""
    problems: list[tuple[str, str]] = []
    confirmed: set[str] = set()
    refused_alone: set[str] = set()
    for ex in standin.exchanges:
        if ex.event_ids is None:
            continue
        if ex.answer.well_formed_success:
            confirmed.update(ex.event_ids)
        # The error type header is complete even when the body is cut, so it counts as a refusal.
        if len(ex.event_ids) == 1 and 400 <= ex.answer.status < 500 and ex.answer.error_type in INVALID_CODES \
                and ex.answer.how == "respond":
            refused_alone.update(ex.event_ids)
    delivered = [e.body["eventId"] for e in outcome.delivered]
    rejected = [e.body["eventId"] for e, _ in outcome.rejected]
    abandoned = [e.body["eventId"] for e in outcome.abandoned]
    for event_id in delivered:
        if event_id not in confirmed:
            answered = [ex.answer.label or ex.answer.how for ex in standin.exchanges
                        if ex.event_ids and event_id in ex.event_ids]
            # Classed by the answer to its last call: the one the client took for a success.
            problems.append((f"delivered-after:{answered[-1] if answered else 'nothing'}",
                             f"{event_id} reported delivered, but its calls were answered {answered}"))
    for event_id in rejected:
        if event_id not in refused_alone:
            answered = [ex.answer.label or ex.answer.how for ex in standin.exchanges
                        if ex.event_ids and event_id in ex.event_ids]
            problems.append((f"rejected-after:{answered[-1] if answered else 'nothing'}",
                             f"{event_id} dead-lettered without a 4xx invalid-input answer to it alone: {answered}"))
    everything = sorted(delivered + rejected + abandoned)
    if everything != sorted(e.body["eventId"] for e in batch.events):
        problems.append(("not-accounted-once", f"delivered={delivered} rejected={rejected} abandoned={abandoned}"))
    if abandoned:
        problems.append(("abandoned-without-stop", f"{abandoned}"))
    return problems


@pytest.mark.parametrize("http_client", ["boto3", "lean"])
def test_an_event_is_delivered_only_after_a_well_formed_success(
    standin: StandIn, http_client: str, aws_env: None
) -> None:
    fast = Backoff(base_s=0.001, cap_s=0.005)
    sink = PutEventsSink(make_client("us-east-1", standin.url, 4, http_client), AdaptiveRateLimiter(100_000),
                         backoff=fast, systemic_backoff=fast)
    tally = Tally()
    violations: list[str] = []

    @settings(max_examples=120, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(script=st.lists(answers(), max_size=8), size=st.integers(1, 10))
    def case(script: list[Answer], size: int) -> None:
        standin.load(script)
        batch = _batch(size, f"tracker-{http_client}")
        outcome = sink.send(batch)
        tally.cases += 1
        for ex in standin.exchanges:
            tally.add(f"answer:{ex.answer.label or ex.answer.how}")
        tally.add("event:delivered", len(outcome.delivered))
        tally.add("event:rejected", len(outcome.rejected))
        problems = _check(standin, batch, outcome)
        for kind in {kind for kind, _ in problems}:
            tally.add(f"VIOLATION:{kind}")
        if problems:
            violations.append(f"script={[a.label or a.how for a in script]}: {problems[0][1]}")

    # Every example runs (no shrinking, no stop at the first failure) so the figures are complete.
    case()
    line = tally.report(f"http answers, {http_client}")
    assert not violations, (f"{len(violations)} of {tally.cases} scripts broke the property "
                            f"(classes: {line}); first ones:\n" + "\n".join(violations[:8]))
