"""Destinations: every configured `destination:` has one, and each forms exactly today's call.

The request parameters below are the contract with Personalize (and with the emulator's API): a
refactor that changes one of them changes what the service receives, so they are spelled out.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import threading
from typing import Any, get_args

import pytest

from connector.config import (
    ActionInteractionsRoute,
    AnyRoute,
    EntityMappingConfig,
    EntityRoute,
    EventsRoute,
    MappingConfig,
    RouteConfig,
)
from connector.destinations.action_interactions import TrackerSessionKey
from connector.destinations.actions import ACTIONS
from connector.destinations.base import Destination
from connector.destinations.entities import EntityKey, EntityMapper
from connector.destinations.events import EventMapper, SessionKey
from connector.destinations.items import ITEMS
from connector.destinations.registry import DESTINATIONS
from connector.destinations.users import USERS
from connector.personalize.ratelimit import AdaptiveRateLimiter
from connector.personalize.sink import PutEventsSink
from connector.records import Batch, DecodeError, Event, NotAnUpsert, Request, SourceRecord
from connector.routes import Route

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
SENT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
EVENTS = [{"eventId": "e-1", "eventType": "click", "sentAt": SENT},
          {"eventId": "e-2", "eventType": "view", "sentAt": SENT}]


def configured_destinations() -> set[str]:
    """Every `destination:` value the configuration's route models accept."""
    union, _discriminator = get_args(RouteConfig)
    return {name for model in get_args(union) for name in get_args(model.model_fields["destination"].annotation)}


def route_config(destination: str) -> AnyRoute:
    if destination == "events":
        return EventsRoute(name="r", topics=["t"], destination="events", tracking_id="tracker")
    if destination == "action_interactions":
        return ActionInteractionsRoute(name="r", topics=["t"], destination="action_interactions", tracking_id="t")
    return EntityRoute(name="r", topics=["t"], destination=destination, dataset_arn=ARN)  # type: ignore[arg-type]


def test_the_registry_covers_every_destination_the_configuration_accepts() -> None:
    assert configured_destinations() == {"events", "items", "users", "actions", "action_interactions"}
    assert set(DESTINATIONS) == configured_destinations()


@pytest.mark.parametrize("name", sorted(configured_destinations()))
def test_each_registered_destination_builds_from_its_route_config(name: str) -> None:
    destination: Destination = DESTINATIONS[name].build(route_config(name))
    assert destination.counts_events is (name == "events")
    schema = DESTINATIONS[name].reader_schema
    if schema is not None:  # a packaged reader schema must exist in avro_schemas
        assert (importlib.resources.files("avro_schemas") / schema).is_file()
    assert (schema is None) is (name == "events")


def test_put_events_with_a_user_carries_tracking_session_user_and_the_events() -> None:
    assert SessionKey("tracker", "session-1", "user-1").request(EVENTS) == Request(
        "PutEvents", {"trackingId": "tracker", "sessionId": "session-1", "eventList": EVENTS, "userId": "user-1"})


@pytest.mark.parametrize("user_id", [None, ""], ids=["no-user", "empty-user"])
def test_put_events_of_an_anonymous_session_has_no_user_id(user_id: str | None) -> None:
    assert SessionKey("tracker", "session-1", user_id).request(EVENTS) == Request(
        "PutEvents", {"trackingId": "tracker", "sessionId": "session-1", "eventList": EVENTS})


def test_put_items_and_put_users_carry_the_dataset_and_the_entries() -> None:
    items, users = [{"itemId": "i-1"}, {"itemId": "i-2", "properties": "{}"}], [{"userId": "u-1"}]
    assert EntityKey("catalogue", ITEMS, ARN, 3).request(items) == Request(
        "PutItems", {"datasetArn": ARN, "items": items})
    assert EntityKey("profiles", USERS, ARN, 0).request(users) == Request(
        "PutUsers", {"datasetArn": ARN, "users": users})


def test_put_actions_carries_the_dataset_and_the_actions() -> None:
    actions = [{"actionId": "a-1"}, {"actionId": "a-2", "properties": '{"value":"100"}'}]
    assert EntityKey("offers", ACTIONS, ARN, 1).request(actions) == Request(
        "PutActions", {"datasetArn": ARN, "actions": actions})


def test_put_action_interactions_carries_the_tracker_and_the_interactions_not_the_session() -> None:
    interactions = [{"actionId": "a-1", "sessionId": "s-1", "timestamp": SENT, "eventType": "Viewed"}]
    assert TrackerSessionKey("offers", "action-tracker", "s-1").request(interactions) == Request(
        "PutActionInteractions", {"trackingId": "action-tracker", "actionInteractions": interactions})


class RecordingClient:
    """Answers every write call with success and remembers it as (method, parameters)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        return lambda **params: self.calls.append((method, params))


@pytest.mark.parametrize(("key", "method"), [
    (SessionKey("tracker", "s", "u"), "put_events"),
    (EntityKey("catalogue", ITEMS, ARN, 0), "put_items"),
    (EntityKey("profiles", USERS, ARN, 0), "put_users"),
    (EntityKey("offers", ACTIONS, ARN, 0), "put_actions"),
    (TrackerSessionKey("offers", "action-tracker", "s"), "put_action_interactions"),
], ids=["events", "items", "users", "actions", "action_interactions"])
def test_the_sink_sends_the_call_its_batch_key_forms(
    key: SessionKey | EntityKey | TrackerSessionKey, method: str
) -> None:
    client = RecordingClient()
    sink = PutEventsSink(client, AdaptiveRateLimiter(1000), stop=threading.Event())
    bodies = [{"n": 1}, {"n": 2}]
    entries = [Event(key, body, SourceRecord("t", 0, i, None, b"v")) for i, body in enumerate(bodies)]
    outcome = sink.send(Batch(key, entries))
    assert len(outcome.delivered) == 2 and outcome.calls == 1
    assert client.calls == [(method, key.request(bodies).params)]


class Passthrough:
    def decode(self, value: bytes | None) -> dict[str, Any]:
        return {"itemId": "i-1", "deleted": value == b"deleted"}


def entity_route(*, skips_deletes: bool) -> Route:
    mapper = EntityMapper(ITEMS, EntityMappingConfig(), ARN, "catalogue", skips_deletes=skips_deletes)
    sink = PutEventsSink(RecordingClient(), AdaptiveRateLimiter(1))
    return Route("catalogue", ["items"], Passthrough(), mapper, sink, None)


@pytest.mark.parametrize(("value", "error_class"),
                         [(None, "Tombstone"), (b"", "Tombstone"), (b"deleted", "DeleteMarker")])
def test_items_dead_letter_tombstones_and_delete_markers_unless_the_route_skips_them(
    value: bytes | None, error_class: str
) -> None:
    record = SourceRecord("items", 2, 41, b"k", value)
    with pytest.raises(NotAnUpsert) as caught:
        entity_route(skips_deletes=False).to_entry(record)
    assert caught.value.error_class == error_class and caught.value.stage == "validate"
    if error_class == "Tombstone":
        assert caught.value.message == (
            "a tombstone (null value) at items[2]@41 has no PutItems meaning: PutItems cannot delete")
    else:
        assert caught.value.message == (
            "itemId 'i-1' is marked deleted; PutItems cannot delete (remove it from the dataset with a full import)")
    assert entity_route(skips_deletes=True).to_entry(record) is None


@pytest.mark.parametrize(("value", "message"), [
    (None, "a tombstone (null value) at actions[0]@7 has no PutActions meaning: PutActions cannot delete"),
    (b"deleted",
     "actionId 'a-1' is marked deleted; PutActions cannot delete (remove it from the dataset with a full import)"),
], ids=["tombstone", "delete-marker"])
def test_actions_cannot_delete_either(value: bytes | None, message: str) -> None:
    class Action:
        def decode(self, value: bytes | None) -> dict[str, Any]:
            return {"actionId": "a-1", "properties": {"value": 100}, "deleted": value == b"deleted"}

    mapper = EntityMapper(ACTIONS, EntityMappingConfig(), ARN, "offers")
    sink = PutEventsSink(RecordingClient(), AdaptiveRateLimiter(1))
    route = Route("offers", ["actions"], Action(), mapper, sink, None)
    with pytest.raises(NotAnUpsert) as caught:
        route.to_entry(SourceRecord("actions", 0, 7, b"k", value))
    assert caught.value.message == message
    entry = route.to_entry(SourceRecord("actions", 0, 8, b"k", b"v"))
    assert entry is not None and entry.key == EntityKey("offers", ACTIONS, ARN, 0)
    assert entry.body == {"actionId": "a-1", "properties": '{"value":100}'}


def test_an_item_entry_is_batched_by_route_dataset_and_source_partition() -> None:
    entry = entity_route(skips_deletes=False).to_entry(SourceRecord("items", 2, 41, b"k", b"v"))
    assert entry is not None
    assert entry.key == EntityKey("catalogue", ITEMS, ARN, 2) and entry.body == {"itemId": "i-1"}


class RefusesNull:
    def decode(self, value: bytes | None) -> dict[str, Any]:
        if value is None:
            raise DecodeError("no value")
        raise AssertionError("only the null value is decoded here")


def test_an_events_route_hands_a_null_value_to_its_decoder() -> None:
    """PutEvents has no tombstone meaning of its own: the decoder says why a null is no event."""
    route = Route("events", ["interactions"], RefusesNull(), EventMapper(MappingConfig(), "tracker"),
                  PutEventsSink(RecordingClient(), AdaptiveRateLimiter(1)), None)
    with pytest.raises(DecodeError, match="no value"):
        route.to_entry(SourceRecord("interactions", 0, 1, b"k", None))
