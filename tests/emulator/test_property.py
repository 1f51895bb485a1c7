"""Property: every event within all limits is accepted and stored exactly as boto3 sent it."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import uuid
from typing import Any

from fixtures.emulator import EmulatorProcess, make_personalize_client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.personalize.api_model import MAX_EVENT_BYTES, RESERVED_PROPERTY_KEYS, limit

STRING_MAX = limit("PutEvents", "eventList", "eventType")
ID_MAX = limit("PutEvents", "eventList", "itemId")
RECOMMENDATION_MAX = limit("PutEvents", "eventList", "recommendationId")
PROPERTIES_MAX = limit("PutEvents", "eventList", "properties")
IMPRESSION_MAX = limit("PutEvents", "eventList", "impression")
SOURCE_MAX = limit("PutEvents", "eventList", "metricAttribution", "eventAttributionSource")
EVENTS_MAX = limit("PutEvents", "eventList")

# Any Unicode text that UTF-8 can carry (no lone surrogates): ids need not be ASCII.
text = st.characters(codec="utf-8")


def strings(max_size: int) -> st.SearchStrategy[str]:
    return st.text(text, min_size=1, max_size=max_size)


properties = (
    st.dictionaries(
        st.text(text, max_size=20).filter(lambda k: k.lower() not in RESERVED_PROPERTY_KEYS),
        st.one_of(st.text(text, max_size=40), st.integers(), st.booleans(), st.none()),
        max_size=8,
    )
    .map(json.dumps)
    .filter(lambda s: len(s) <= PROPERTIES_MAX)
)

attribution_source = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=SOURCE_MAX
).filter(lambda s: s.strip(" ") != "")

# sentAt as boto3 callers hold it: a timezone-aware datetime with millisecond precision.
sent_at = st.builds(
    lambda seconds, millis: dt.datetime.fromtimestamp(seconds, dt.UTC).replace(microsecond=millis * 1000),
    st.integers(0, 4_000_000_000),
    st.integers(0, 999),
)

event = st.fixed_dictionaries(
    {"eventType": strings(STRING_MAX), "sentAt": sent_at},
    optional={
        "eventId": strings(STRING_MAX),
        "eventValue": st.floats(allow_nan=False, allow_infinity=False, width=32),
        "itemId": strings(ID_MAX),
        "properties": properties,
        "recommendationId": strings(RECOMMENDATION_MAX),
        "impression": st.lists(strings(ID_MAX), min_size=1, max_size=IMPRESSION_MAX),
        "metricAttribution": st.fixed_dictionaries({"eventAttributionSource": attribution_source}),
    },
)


def wire_form(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the emulator receives it: sentAt as exact epoch seconds with milliseconds."""
    when: dt.datetime = event["sentAt"]
    seconds = calendar.timegm(when.timetuple())
    sent = (seconds * 1000 + when.microsecond // 1000) / 1000 if when.microsecond else seconds
    return {**event, "sentAt": sent}


def fits(events: list[dict[str, Any]]) -> bool:
    return all(
        len(json.dumps(wire_form(e), separators=(",", ":"), ensure_ascii=False).encode()) <= MAX_EVENT_BYTES
        for e in events
    )


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(event, min_size=1, max_size=EVENTS_MAX).filter(fits),
    user_id=st.one_of(st.none(), strings(STRING_MAX)),
    session_id=strings(STRING_MAX),
)
def test_valid_events_are_accepted_unchanged(
    emulator: EmulatorProcess, events: list[dict[str, Any]], user_id: str | None, session_id: str
) -> None:
    client = make_personalize_client(emulator.url, retries={"total_max_attempts": 1})
    tracking_id = f"prop-{uuid.uuid4()}"
    request: dict[str, Any] = {"trackingId": tracking_id, "sessionId": session_id, "eventList": events}
    if user_id is not None:
        request["userId"] = user_id
    client.put_events(**request)

    stored = emulator.events(tracking_id)
    context = {k: request[k] for k in ("trackingId", "sessionId", "userId") if k in request}
    assert [{k: v for k, v in r.items() if k != "receivedAt"} for r in stored] == [
        {**context, **wire_form(e)} for e in events
    ]
