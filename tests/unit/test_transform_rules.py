"""The declarative transforms of `mapping`: time formats and window, camelCase keys, joined lists,
include/exclude filters, constants and defaults of eventType and trackingId (per route too)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.config import ActionInteractionMappingConfig, EntityMappingConfig, MappingConfig, load_settings
from connector.destinations.action_interactions import ActionInteractionMapper
from connector.destinations.actions import ACTIONS
from connector.destinations.entities import EntityKind, EntityMapper
from connector.destinations.events import EventMapper
from connector.destinations.items import ITEMS
from connector.destinations.transforms import camel_case
from connector.destinations.users import USERS
from connector.records import Filtered, InvalidEvent, SourceRecord

SOURCE = SourceRecord("interactions", 0, 7, b"k", b"v", timestamp_ms=1_714_566_645_123)
WHEN = dt.datetime(2024, 5, 1, 12, 30, 45, 123000, tzinfo=dt.UTC)  # 1_714_566_645_123 ms


def record(**overrides: Any) -> dict[str, Any]:
    return {"eventId": "e-1", "sessionId": "s-1", "userId": "u-1", "eventType": "click", "itemId": "i-1",
            "sentAt": WHEN, "properties": None} | overrides


def mapper(**mapping: Any) -> EventMapper:
    return EventMapper(MappingConfig(**mapping), "tracker-route")


def invalid(m: EventMapper | ActionInteractionMapper, rec: dict[str, Any], source: SourceRecord = SOURCE) -> str:
    with pytest.raises(InvalidEvent) as caught:
        m.to_event(rec, source)
    assert caught.value.stage == "validate"
    return caught.value.message


# ------------------------------------------------------------------------------------------ time


@pytest.mark.parametrize(("time_format", "value"), [
    ("epoch_millis", 1_714_566_645_123),
    ("epoch_seconds", 1_714_566_645.123),
    ("epoch_seconds", 1_714_566_645.1234),  # below the millisecond: rounded to it (PutEvents keeps ms)
    ("epoch_micros", 1_714_566_645_123_456),
    ("iso8601", "2024-05-01T12:30:45.123Z"),
    ("iso8601", "2024-05-01T14:30:45.123456+02:00"),
    ("iso8601", "20240501T123045.123Z"),  # the basic format too
    ("record_timestamp", "ignored: the Kafka record's timestamp is used"),
])
def test_each_time_format_reads_the_same_instant(time_format: str, value: Any) -> None:
    sent_at = mapper(time_format=time_format).to_event(record(sentAt=value), SOURCE).body["sentAt"]
    assert sent_at == WHEN and sent_at.utcoffset() == dt.timedelta(0)


def test_whole_epoch_seconds_and_an_avro_timestamp_in_any_format() -> None:
    assert mapper(time_format="epoch_seconds").to_event(record(sentAt=1_714_566_645), SOURCE).body["sentAt"] == \
        WHEN.replace(microsecond=0)
    for time_format in ("epoch_seconds", "epoch_micros", "iso8601"):  # a decoded timestamp is a timestamp
        assert mapper(time_format=time_format).to_event(record(), SOURCE).body["sentAt"] == WHEN


def test_iso_without_a_zone_is_rejected_not_taken_as_utc() -> None:
    assert "has no time zone" in invalid(mapper(time_format="iso8601"), record(sentAt="2024-05-01T12:30:45"))
    assert "is not an ISO-8601" in invalid(mapper(time_format="iso8601"), record(sentAt="yesterday"))
    assert "expected an ISO-8601 string" in invalid(mapper(time_format="iso8601"), record(sentAt=1))


def test_wrong_types_and_missing_times_are_validate_errors() -> None:
    assert "expected epoch seconds" in invalid(mapper(time_format="epoch_seconds"), record(sentAt="1714566645"))
    assert "expected epoch seconds" in invalid(mapper(time_format="epoch_seconds"), record(sentAt=True))
    assert "is not a time" in invalid(mapper(time_format="epoch_seconds"), record(sentAt=float("nan")))
    assert "outside the representable" in invalid(mapper(time_format="epoch_seconds"), record(sentAt=10**15))
    assert "sentAt: is required" in invalid(mapper(time_format="epoch_micros"), record(sentAt=None))
    no_timestamp = SourceRecord("interactions", 0, 7, b"k", b"v", timestamp_ms=-1)
    assert "has no timestamp" in invalid(mapper(time_format="record_timestamp"), record(), no_timestamp)


def test_the_window_dead_letters_times_outside_it() -> None:
    windowed = mapper(time_not_before=dt.datetime(2000, 1, 1, tzinfo=dt.UTC), time_max_ahead_s=86400)
    # Epoch seconds read as milliseconds: January 1970, the mistake the window is for.
    assert "is before mapping.time_not_before" in invalid(windowed, record(sentAt=1_714_566_645))
    far = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    assert "in the future" in invalid(windowed, record(sentAt=far))
    assert windowed.to_event(record(), SOURCE).body["sentAt"] == WHEN
    assert windowed.to_event(record(sentAt=dt.datetime.now(dt.UTC)), SOURCE)  # now is inside


def test_without_a_window_any_representable_time_passes_as_before() -> None:
    unchecked = mapper(time_not_before=None, time_max_ahead_s=None)
    assert unchecked.to_event(record(sentAt=1), SOURCE).body["sentAt"] == dt.datetime(1970, 1, 1, 0, 0, 0, 1000,
                                                                                         tzinfo=dt.UTC)
    far = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    assert unchecked.to_event(record(sentAt=far), SOURCE).body["sentAt"] == far.replace(
        microsecond=far.microsecond // 1000 * 1000)


def test_the_window_is_on_by_default_from_2000_to_a_day_ahead() -> None:
    default = mapper()
    # Epoch seconds written where milliseconds are expected: 20 days after 1 January 1970.
    assert "is before mapping.time_not_before (2000-01-01T00:00:00+00:00)" in invalid(
        default, record(sentAt=1_714_566_645))
    assert "more than mapping.time_max_ahead_s (86400 s) in the future" in invalid(
        default, record(sentAt=dt.datetime.now(dt.UTC) + dt.timedelta(days=2)))
    assert default.to_event(record(sentAt=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)), SOURCE)
    assert default.to_event(record(sentAt=dt.datetime.now(dt.UTC) + dt.timedelta(hours=23)), SOURCE)
    actions = ActionInteractionMapper(ActionInteractionMappingConfig(event_type_default="Viewed"), "t-a", "ai")
    assert "timestamp: " in invalid(actions, {"actionId": "a", "sessionId": "s", "timestamp": 1})


# ------------------------------------------------------------------------------------ properties


@pytest.mark.parametrize(("key", "expected"), [
    ("NUMBER_OF_RATINGS", "numberOfRatings"), ("number_of_ratings", "numberOfRatings"),
    ("Number-Of-Ratings", "numberOfRatings"), ("numberOfRatings", "numberOfRatings"),
    ("NumberOfRatings", "numberOfRatings"), ("number of ratings", "numberOfRatings"),
    ("COLOR", "color"), ("color", "color"), ("item.ID", "itemId"), ("itemID", "itemID"), ("__", "__"),
    ("_leading", "leading"),
])
def test_camel_case(key: str, expected: str) -> None:
    assert camel_case(key) == expected


@given(st.text(alphabet="aBzÜ_- .", max_size=12))  # letters: "9_B" -> "9B" reads as upper case again
def test_camel_case_is_idempotent_and_leaves_no_separator(key: str) -> None:
    once = camel_case(key)
    assert camel_case(once) == once
    if any(c not in "_- ." for c in key):
        assert not set(once) & set("_- .")


def properties(m: EventMapper, props: dict[str, Any]) -> Any:
    return json.loads(m.to_event(record(properties=props), SOURCE).body["properties"])


def test_property_keys_in_camel_case() -> None:
    camel = mapper(property_keys="camelCase")
    assert properties(camel, {"NUMBER_OF_RATINGS": 3, "Color": "red", "nested": {"KEEP_ME": 1}}) == {
        "numberOfRatings": 3, "color": "red", "nested": {"KEEP_ME": 1}}  # only top-level keys
    assert "both become 'numberOfRatings'" in invalid(
        camel, record(properties={"NUMBER_OF_RATINGS": 3, "number_of_ratings": 4}))
    assert properties(mapper(), {"NUMBER_OF_RATINGS": 3}) == {"NUMBER_OF_RATINGS": 3}  # the default: as is


def test_property_fields_are_converted_too() -> None:
    m = mapper(property_keys="camelCase", property_fields=["page_kind"])
    assert json.loads(m.to_event(record(page_kind="home"), SOURCE).body["properties"]) == {"pageKind": "home"}


def test_lists_joined_with_a_bar() -> None:
    joined = mapper(join_lists=True)
    assert properties(joined, {"genres": ["Action", "Comedy"], "ids": [1, 2], "n": 3, "empty": []}) == {
        "genres": "Action|Comedy", "ids": "1|2", "n": 3}  # an empty list: the property is absent
    assert "contains '|'" in invalid(joined, record(properties={"genres": ["Sci|Fi"]}))
    assert "only strings and integers" in invalid(joined, record(properties={"genres": [{"a": 1}]}))
    assert properties(mapper(), {"genres": ["Action", "Comedy"]}) == {"genres": ["Action", "Comedy"]}


# --------------------------------------------------------------------------------------- filters


def test_include_and_exclude_by_equality() -> None:
    m = mapper(include={"eventType": ["click", "purchase"]}, exclude={"userId": ["bot"], "context.test": [True]})
    assert m.to_event(record(), SOURCE)
    assert m.to_event(record(eventType="purchase"), SOURCE)
    for left_out in (record(eventType="view"), record(eventType=None), record(userId="bot"),
                     record(context={"test": True})):
        with pytest.raises(Filtered):
            m.to_event(left_out, SOURCE)
    assert m.to_event(record(context={"test": 1}), SOURCE)  # true is not 1: a flag is not a count


def test_a_filtered_record_is_not_validated() -> None:
    m = mapper(exclude={"eventType": ["view"]})
    with pytest.raises(Filtered):
        m.to_event(record(eventType="view", sentAt="not a time"), SOURCE)


def test_numbers_match_as_numbers() -> None:
    m = mapper(include={"rating": [5]})
    assert m.to_event(record(rating=5.0), SOURCE)
    for other in ("5", [5], {"v": 5}, True):
        with pytest.raises(Filtered):
            m.to_event(record(rating=other), SOURCE)


# ---------------------------------------------------------------------- constants and defaults


def test_event_type_and_tracking_id_constants_and_defaults() -> None:
    constant = mapper(event_type=None, event_type_default="watch", tracking_id=None)
    event = constant.to_event(record(eventType="click", trackingId="t-rec"), SOURCE)
    assert event.body["eventType"] == "watch" and event.key.tracking_id == "tracker-route"  # type: ignore[attr-defined]
    default = mapper(event_type_default="watch")
    assert default.to_event(record(eventType=None), SOURCE).body["eventType"] == "watch"
    assert default.to_event(record(eventType="click"), SOURCE).body["eventType"] == "click"


# ------------------------------------------------------------------------- action interactions


def test_action_interactions_share_the_transforms() -> None:
    m = ActionInteractionMapper(ActionInteractionMappingConfig(
        event_type_default="Viewed", time_format="epoch_seconds", property_keys="camelCase", join_lists=True,
        exclude={"eventType": ["Not Taken"]}), "tracker-actions", "actions")
    rec = {"actionId": "a-1", "sessionId": "s-1", "timestamp": 1_714_566_645, "eventType": "Taken",
           "properties": {"CHANNEL_NAMES": ["web", "app"]}}
    body = m.to_event(rec, SOURCE).body
    assert body["timestamp"] == WHEN.replace(microsecond=0)
    assert json.loads(body["properties"]) == {"channelNames": "web|app"}
    with pytest.raises(Filtered):
        m.to_event(rec | {"eventType": "Not Taken"}, SOURCE)


@pytest.mark.parametrize("kind", [ITEMS, USERS, ACTIONS], ids=lambda k: k.name)
def test_items_users_and_actions_share_the_property_transforms_and_filters(kind: EntityKind) -> None:
    # A catalogue feed with upper-case column names and genre lists, and test rows to leave out.
    m = EntityMapper(kind, EntityMappingConfig(
        property_fields=["GENRES"], property_keys="camelCase", join_lists=True, exclude={"env": ["test"]}),
        "arn:aws:personalize:us-east-1:111122223333:dataset/d/ITEMS", "catalogue")
    rec = {kind.id_field: "id-1", "GENRES": ["Action", "Comedy"], "properties": {"NUMBER_OF_RATINGS": 3},
           "env": "prod"}
    body = m.to_event(rec, SOURCE).body
    assert body[kind.id_field] == "id-1"
    assert json.loads(body["properties"]) == {"numberOfRatings": 3, "genres": "Action|Comedy"}
    with pytest.raises(Filtered):
        m.to_event(rec | {"env": "test"}, SOURCE)
    with pytest.raises(InvalidEvent, match="contains '\\|'"):
        m.to_event(rec | {"GENRES": ["Sci|Fi"]}, SOURCE)
    # Without the keys an entity maps as before: keys and lists as they are.
    plain = EntityMapper(kind, EntityMappingConfig(property_fields=["GENRES"]), "arn:aws:personalize:::d", "c")
    assert json.loads(plain.to_event(rec, SOURCE).body["properties"]) == {
        "NUMBER_OF_RATINGS": 3, "GENRES": ["Action", "Comedy"]}


# -------------------------------------------------------------------------------- configuration


def test_per_route_and_top_level_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "kafka: {bootstrap_servers: 'localhost:9092', group_id: g, topics: [t]}\n"
        "personalize: {tracking_id: tr, region: us-east-1}\n"
        "mapping: {time_format: iso8601, time_not_before: '2000-01-01T00:00:00Z', time_max_ahead_s: 86400}\n"
        "routes:\n"
        "  - {name: web, destination: events, topics: [web],\n"
        "     mapping: {property_keys: camelCase, join_lists: true, include: {eventType: [click]},\n"
        "               exclude: {'context.test': [true]}}}\n"
    )
    settings = load_settings(path, env={})
    assert settings.mapping.time_format == "iso8601"
    assert settings.mapping.time_not_before == dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    [web] = [r for r in settings.effective_routes() if r.name == "web"]
    assert web.mapping.include == {"eventType": ["click"]} and web.mapping.exclude == {"context.test": [True]}


@pytest.mark.parametrize("bad", [
    {"time_format": "auto"}, {"time_not_before": "2000-01-01T00:00:00"},  # no zone: ambiguous
    {"time_max_ahead_s": 0}, {"property_keys": "snake"}, {"include": {"eventType": []}},
    {"exclude": {"bad path": ["x"]}},
])
def test_bad_transform_settings_are_named(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        MappingConfig(**bad)


def test_the_documented_example() -> None:
    """docs/configuration.md, "Transforms": the web back end's record and what it sends."""
    m = EventMapper(MappingConfig(
        event_type="type", event_type_default="watch", tracking_id=None, sent_at="ts", time_format="epoch_seconds",
        time_not_before=dt.datetime(2000, 1, 1, tzinfo=dt.UTC), time_max_ahead_s=86400, properties="attrs",
        property_fields=["NUMBER_OF_RATINGS", "genres"], property_keys="camelCase", join_lists=True,
        exclude={"type": ["heartbeat"]}), "tr-web", route="web")
    rec = {"sessionId": "s-1", "userId": "u-7", "type": None, "itemId": "m-42", "ts": 1714566645,
           "NUMBER_OF_RATINGS": 12, "genres": ["Action", "Comedy"], "attrs": {"page_kind": "home"}}
    event = m.to_event(rec, SOURCE)
    assert event.key.tracking_id == "tr-web"  # type: ignore[attr-defined]
    assert event.body["eventType"] == "watch"
    assert event.body["sentAt"] == dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)
    assert event.body["properties"] == '{"pageKind":"home","numberOfRatings":12,"genres":"Action|Comedy"}'
    with pytest.raises(Filtered):
        m.to_event(rec | {"type": "heartbeat"}, SOURCE)


def test_filters_from_the_environment() -> None:
    settings = load_settings(None, env={
        "PKC_KAFKA__BOOTSTRAP_SERVERS": "localhost:9092", "PKC_KAFKA__GROUP_ID": "g", "PKC_KAFKA__TOPICS": '["t"]',
        "PKC_PERSONALIZE__TRACKING_ID": "tr", "PKC_PERSONALIZE__REGION": "us-east-1",
        "PKC_MAPPING__TIME_FORMAT": "epoch_seconds", "PKC_MAPPING__INCLUDE": '{"eventType": ["click"]}'})
    assert settings.mapping.time_format == "epoch_seconds"
    assert settings.mapping.include == {"eventType": ["click"]}
