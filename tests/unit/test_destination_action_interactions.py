"""Records become PutActionInteractions entries batched by tracker and session; what the API would
reject is named in the dead letter's message."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from connector.config import ActionInteractionMappingConfig
from connector.destinations.action_interactions import ActionInteractionMapper, TrackerSessionKey
from connector.destinations.events import derived_event_id
from connector.personalize import api_model
from connector.records import InvalidEvent, SourceRecord

SOURCE = SourceRecord("action-interactions", 2, 77, b"k", b"v")
AT = dt.datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=dt.UTC)
MAPPER = ActionInteractionMapper(ActionInteractionMappingConfig(), "action-tracker", "offers")


def canonical(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventId": "e-1", "trackingId": None, "actionId": "a-1", "sessionId": "s-1", "userId": "u-1",
        "eventType": "Taken", "timestamp": AT, "recommendationId": "r-1", "impression": ["a-1", "a-2"],
        "properties": {"numberOfActions": "12"},
    }
    return base | overrides


def invalid(record: dict[str, Any], mapper: ActionInteractionMapper = MAPPER) -> str:
    with pytest.raises(InvalidEvent) as caught:
        mapper.to_event(record, SOURCE)
    assert caught.value.stage == "validate"
    return caught.value.message


def test_every_api_field_is_carried() -> None:
    entry = MAPPER.to_event(canonical(trackingId="tracker-rec"), SOURCE)
    assert entry.key == TrackerSessionKey("offers", "tracker-rec", "s-1")
    assert entry.record is SOURCE
    assert entry.body == {
        "actionId": "a-1", "sessionId": "s-1", "timestamp": AT, "eventType": "Taken", "eventId": "e-1",
        "userId": "u-1", "recommendationId": "r-1", "impression": ["a-1", "a-2"],
        "properties": '{"numberOfActions":"12"}',
    }
    assert api_model.check_entry("PutActionInteractions", entry.body) == []


def test_optional_fields_are_omitted_and_the_event_id_derived_from_the_position() -> None:
    record = canonical(eventId=None, userId=None, recommendationId=None, impression=[], properties={})
    entry = MAPPER.to_event(record, SOURCE)
    assert entry.key == TrackerSessionKey("offers", "action-tracker", "s-1")
    assert set(entry.body) == {"actionId", "sessionId", "timestamp", "eventType", "eventId"}
    assert entry.body["eventId"] == derived_event_id(SOURCE)
    assert MAPPER.to_event(record, SOURCE).body["eventId"] == entry.body["eventId"]  # a replay: the same id
    elsewhere = SourceRecord(SOURCE.topic, SOURCE.partition, SOURCE.offset + 1, None, b"v")
    assert MAPPER.to_event(record, elsewhere).body["eventId"] != entry.body["eventId"]


def test_an_empty_user_id_is_anonymous() -> None:
    assert "userId" not in MAPPER.to_event(canonical(userId=""), SOURCE).body


def test_sessions_of_one_tracker_are_separate_keys_and_users_share_them() -> None:
    one = MAPPER.to_event(canonical(sessionId="s-1", userId="u-1"), SOURCE).key
    same = MAPPER.to_event(canonical(sessionId="s-1", userId="u-2"), SOURCE).key
    other = MAPPER.to_event(canonical(sessionId="s-2"), SOURCE).key
    assert one == same and one != other and hash(one) == hash(same)


def test_the_timestamp_is_epoch_milliseconds_or_a_datetime_to_the_millisecond() -> None:
    assert MAPPER.to_event(canonical(timestamp=1_714_566_615_123), SOURCE).body["timestamp"] == AT
    naive = dt.datetime(2024, 5, 1, 12, 30, 15, 123999)
    assert MAPPER.to_event(canonical(timestamp=naive), SOURCE).body["timestamp"] == AT
    assert invalid(canonical(timestamp=None)) == "timestamp: is required"
    assert invalid(canonical(timestamp="yesterday")) == "timestamp: expected epoch milliseconds or a timestamp, got str"


def test_the_event_type_default_applies_only_without_one() -> None:
    mapper = ActionInteractionMapper(
        ActionInteractionMappingConfig(event_type=None, event_type_default="Viewed"), "action-tracker", "offers")
    assert mapper.to_event(canonical(eventType="Taken"), SOURCE).body["eventType"] == "Viewed"
    assert invalid(canonical(eventType=None)) == "eventType: is required"


def test_mapping_paths_and_property_fields() -> None:
    mapping = ActionInteractionMappingConfig(action_id="offer.id", session_id="visit", properties=None,
                                             property_fields=["offer.channel"])
    mapper = ActionInteractionMapper(mapping, "action-tracker", "offers")
    record = {"offer": {"id": "a-9", "channel": "email"}, "visit": "v-1", "eventType": "Viewed", "timestamp": AT}
    entry = mapper.to_event(record, SOURCE)
    assert entry.key.session_id == "v-1"  # type: ignore[attr-defined]
    assert entry.body["actionId"] == "a-9" and entry.body["properties"] == '{"channel":"email"}'


@pytest.mark.parametrize(("overrides", "field"), [
    ({"actionId": None}, "actionId: is required"),
    ({"sessionId": ""}, "sessionId: has 0 characters; the minimum is 1"),
    ({"actionId": "a" * 257}, "actionId: has 257 characters; the maximum is 256"),
    ({"recommendationId": "r" * 41}, "recommendationId: has 41 characters; the maximum is 40"),
    ({"impression": [f"a{n}" for n in range(26)]}, "impression: has 26 items; the maximum is 25"),
    ({"properties": {"p": "x" * 1100}}, "properties: has 1108 characters; the maximum is 1024"),
    ({"properties": {"Timestamp": "x"}}, "properties: must not contain the reserved key 'Timestamp'"),
    ({"trackingId": "t" * 257}, "trackingId: has 257 characters; the minimum is 1 and the maximum 256"),
    ({"properties": {"n": float("nan")}}, "properties.n: nan is not a JSON number"),
], ids=["no-action", "empty-session", "long-action", "long-recommendation", "impressions", "properties-size",
        "reserved-key", "long-tracker", "nan-property"])
def test_what_the_api_would_refuse_is_named(overrides: dict[str, Any], field: str) -> None:
    assert field in invalid(canonical(**overrides))


def test_properties_stay_strict_json() -> None:
    entry = MAPPER.to_event(canonical(properties={"when": AT, "n": 3}), SOURCE)
    assert json.loads(entry.body["properties"]) == {"when": 1_714_566_615_123, "n": 3}
