"""Records become PutEvents events grouped by session; anything the API would reject is named here."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.config import MappingConfig
from connector.destinations.events import EVENT_ID_NAMESPACE, EventMapper, SessionKey, derived_event_id
from connector.destinations.fields import EPOCH
from connector.personalize import api_model
from connector.records import InvalidEvent, SourceRecord

SOURCE = SourceRecord("interactions", 3, 1234, b"k", b"v")
# What uuid.uuid5 derived for SOURCE's position before the id was built from SHA-1 directly.
PINNED_EVENT_ID = "5ded0111-6100-5506-bbc2-cbc9e61cf4b6"
SENT_AT = dt.datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=dt.UTC)


def canonical(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventId": "e-1", "trackingId": None, "sessionId": "s-1", "userId": "u-1", "eventType": "click",
        "eventValue": 4.5, "itemId": "i-1", "properties": {"color": "red", "numberOfRatings": 3.0},
        "sentAt": SENT_AT, "recommendationId": "r-1", "impression": ["a", "b"], "eventAttributionSource": "src",
    }
    return base | overrides


MAPPER = EventMapper(MappingConfig(), "tracker-default")
# The conversions over every representable time, with the default window (2000 .. now + 1 day) off.
ANY_TIME = EventMapper(MappingConfig(time_not_before=None, time_max_ahead_s=None), "tracker-default")


def invalid(record: dict[str, Any], mapper: EventMapper = MAPPER) -> str:
    with pytest.raises(InvalidEvent) as caught:
        mapper.to_event(record, SOURCE)
    assert caught.value.stage == "validate"
    return caught.value.message


def test_every_api_field_is_carried() -> None:
    event = MAPPER.to_event(canonical(trackingId="tracker-rec"), SOURCE)
    assert event.key == SessionKey("tracker-rec", "s-1", "u-1")
    assert event.record is SOURCE
    assert event.body == {
        "eventId": "e-1",
        "eventType": "click",
        "sentAt": SENT_AT,
        "eventValue": 4.5,
        "itemId": "i-1",
        "properties": '{"color":"red","numberOfRatings":3.0}',
        "recommendationId": "r-1",
        "impression": ["a", "b"],
        "metricAttribution": {"eventAttributionSource": "src"},
    }
    assert api_model.check_event(event.body) == []


def test_optional_fields_are_omitted_and_defaults_applied() -> None:
    record = canonical(eventId=None, userId=None, eventValue=None, itemId=None, properties={},
                       recommendationId=None, impression=[], eventAttributionSource=None)
    event = MAPPER.to_event(record, SOURCE)
    assert event.key == SessionKey("tracker-default", "s-1", None)
    assert set(event.body) == {"eventId", "eventType", "sentAt"}
    assert event.body["eventId"] == derived_event_id(SOURCE)


def test_empty_user_id_is_anonymous() -> None:
    assert MAPPER.to_event(canonical(userId=""), SOURCE).key.user_id is None


def test_derived_event_id_is_stable_and_distinct_per_position() -> None:
    at = [SourceRecord("t", p, o, None, None) for p in (0, 1) for o in (0, 1, 2)]
    ids = [MAPPER.to_event(canonical(eventId=None), s).body["eventId"] for s in at]
    again = [MAPPER.to_event(canonical(eventId=None), s).body["eventId"] for s in at]
    assert ids == again and len(set(ids)) == len(ids)
    assert all(str(uuid.UUID(i)) == i for i in ids)
    other_topic = SourceRecord("u", 0, 0, None, None)
    assert MAPPER.to_event(canonical(eventId=None), other_topic).body["eventId"] != ids[0]


@given(st.text(min_size=1, max_size=249), st.integers(0, 2**31 - 1), st.integers(0, 2**63 - 1))
def test_derived_event_id_is_exactly_uuid5_of_the_position(topic: str, partition: int, offset: int) -> None:
    """Ids derived by earlier versions must come out the same (a replay is deduplicated by them)."""
    expected = str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{topic}/{partition}/{offset}"))
    assert derived_event_id(SourceRecord(topic, partition, offset, None, None)) == expected


def test_derived_event_id_is_what_version_one_derived() -> None:
    assert derived_event_id(SourceRecord("interactions", 3, 1234, None, None)) == PINNED_EVENT_ID


@given(st.integers(min_value=-(2**41), max_value=2**45))
def test_sent_at_from_epoch_millis_is_exact(millis: int) -> None:
    sent_at = ANY_TIME.to_event(canonical(sentAt=millis), SOURCE).body["sentAt"]
    assert sent_at.tzinfo is not None
    assert (sent_at - EPOCH) // dt.timedelta(milliseconds=1) == millis
    assert sent_at.microsecond % 1000 == 0
    # What botocore will send (epoch seconds with millisecond precision) round-trips too.
    assert round(sent_at.timestamp() * 1000) == millis


@given(st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1),
                    timezones=st.just(dt.UTC)))
def test_sent_at_from_a_datetime_keeps_the_millisecond(when: dt.datetime) -> None:
    sent_at = ANY_TIME.to_event(canonical(sentAt=when), SOURCE).body["sentAt"]
    assert sent_at == when.replace(microsecond=when.microsecond // 1000 * 1000)


def test_naive_datetime_is_utc() -> None:
    sent_at = MAPPER.to_event(canonical(sentAt=dt.datetime(2024, 1, 1)), SOURCE).body["sentAt"]
    assert sent_at == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_mapping_with_other_names_nested_paths_and_property_fields() -> None:
    mapping = MappingConfig(
        event_id=None, tracking_id=None, session_id="session.id", user_id="user.id", event_type="action",
        event_value="rating", item_id="product.sku", sent_at="ts", recommendation_id=None,
        impression="shown", event_attribution_source=None, properties="extra",
        property_fields=["stats.numberOfRatings", "stats.numberOfLikes"],
    )
    mapper = EventMapper(mapping, "tracker-x")
    record = {
        "session": {"id": "sess-9"}, "user": {"id": 42}, "action": "like", "rating": 5,
        "product": {"sku": "SKU-1"}, "ts": 1_700_000_000_123, "shown": ["SKU-1", "SKU-2"],
        "extra": {"channel": "app"}, "stats": {"numberOfRatings": 12, "numberOfLikes": 3},
    }
    event = mapper.to_event(record, SOURCE)
    assert event.key == SessionKey("tracker-x", "sess-9", "42")
    assert event.body["eventType"] == "like"
    assert event.body["eventValue"] == 5.0
    assert event.body["itemId"] == "SKU-1"
    assert event.body["sentAt"] == EPOCH + dt.timedelta(milliseconds=1_700_000_000_123)
    assert json.loads(event.body["properties"]) == {"channel": "app", "numberOfRatings": 12, "numberOfLikes": 3}
    assert event.body["impression"] == ["SKU-1", "SKU-2"]


def test_property_fields_without_a_map_and_missing_values_skipped() -> None:
    mapper = EventMapper(MappingConfig(properties=None, property_fields=["numberOfRatings", "absent"]), "t")
    event = mapper.to_event(canonical(numberOfRatings=7), SOURCE)
    assert event.body["properties"] == '{"numberOfRatings":7}'


def test_constant_event_type_when_the_record_has_none() -> None:
    mapper = EventMapper(MappingConfig(event_type=None, event_type_default="view"), "t")
    assert mapper.to_event(canonical(), SOURCE).body["eventType"] == "view"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"sessionId": None}, "sessionId: is required"),
        ({"sessionId": ""}, "sessionId: is required"),
        ({"sessionId": "s" * 257}, "sessionId: has 257 characters; the maximum is 256"),
        ({"userId": "u" * 257}, "userId: has 257 characters; the maximum is 256"),
        ({"trackingId": "t" * 257}, "trackingId: has 257 characters; the maximum is 256"),
        ({"eventType": None}, "eventType: is required"),
        ({"eventType": ""}, "eventType: is required"),
        ({"sentAt": None}, "sentAt: is required"),
        ({"sentAt": "yesterday"}, "sentAt: expected epoch milliseconds"),
        ({"properties": {"userId": "x"}}, "properties: must not contain the reserved key 'userId'"),
        ({"properties": {"EVENTTYPE": "x"}}, "properties: must not contain the reserved key 'EVENTTYPE'"),
        ({"properties": {"Timestamp": 1}}, "properties: must not contain the reserved key 'Timestamp'"),
        ({"properties": {"k": "v" * 1020}}, "properties: has 1028 characters; the maximum is 1024"),
        ({"impression": [f"i{n}" for n in range(26)]}, "impression: has 26 items; the maximum is 25"),
        ({"impression": ["ok", ""]}, "impression.1: has 0 characters; the minimum is 1"),
        ({"recommendationId": "r" * 41}, "recommendationId: has 41 characters; the maximum is 40"),
        ({"eventAttributionSource": "bad\x07source"}, "metricAttribution.eventAttributionSource: does not match"),
        ({"eventAttributionSource": "   "}, "metricAttribution.eventAttributionSource: does not match"),
        ({"itemId": "i" * 257}, "itemId: has 257 characters; the maximum is 256"),
        ({"eventId": "e" * 257}, "eventId: has 257 characters; the maximum is 256"),
        ({"eventValue": "high"}, "eventValue: expected a number"),
        ({"properties": ["not", "a", "map"]}, "properties: expected a map"),
        ({"sessionId": {"nested": 1}}, "sessionId: expected a string"),
    ],
)
def test_invalid_events_name_the_field(overrides: dict[str, Any], expected: str) -> None:
    assert expected in invalid(canonical(**overrides))


def test_every_problem_is_named_at_once() -> None:
    message = invalid(canonical(recommendationId="r" * 41, impression=["x"] * 26))
    assert "recommendationId" in message and "impression" in message


def test_oversized_event_is_rejected() -> None:
    # Each field within its own limit, the whole event over the 10 KB cap (non-ASCII escapes to \\uXXXX).
    big = "\u00e9" * 256
    record = canonical(eventId=big, itemId=big, eventType=big, impression=[big] * 25)
    assert "the maximum event size is" in invalid(record)


def test_a_trailing_newline_does_not_pass_an_anchored_pattern() -> None:
    # Found by the property below: Python's `$` matches before a trailing newline, the model's
    # (ECMA-262) does not; the mapper's fast path must refuse what the service refuses.
    assert "eventAttributionSource" in invalid(canonical(eventAttributionSource="0\n"))


def test_a_string_where_the_model_wants_a_list_is_an_invalid_event_not_a_key_error() -> None:
    # Found by the adversarial suite (own-reader schemas): the fast path looked up string limits
    # for `impression`, which has none, and a KeyError escaped the mapper instead of a dead letter.
    assert "impression: expected a list, got str" in invalid(canonical(impression="item-1"))


@given(st.text(max_size=300), st.text(max_size=50))
def test_fast_path_agrees_with_the_model_validator(text: str, key: str) -> None:
    """Whatever the mapper accepts, api_model.check_event accepts too."""
    record = canonical(itemId=text, recommendationId=text[:40], eventAttributionSource=text,
                       properties={key: text}, impression=[text] if text else [])
    try:
        event = MAPPER.to_event(record, SOURCE)
    except InvalidEvent:
        return
    assert api_model.check_event(event.body) == []
