"""Routes in the configuration: defaults, destinations, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connector.config import (
    ENTITY_REQUESTS_PER_SECOND,
    ActionInteractionsRoute,
    ConfigError,
    EntityRoute,
    EventsRoute,
    load_settings,
)

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


def _load(tmp_path: Path, data: dict) -> object:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_settings(path, env={})


def _error(tmp_path: Path, data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, data)
    return str(info.value)


def test_kafka_topics_become_the_events_route_and_routes_get_their_defaults(tmp_path: Path) -> None:
    settings = _load(tmp_path, {
        "kafka": {"bootstrap_servers": "b", "topics": ["clicks"]},
        "personalize": {"tracking_id": "t", "max_requests_per_second": 500},
        "dlq": {"topic": "dead"},
        "routes": [{"name": "catalogue", "destination": "items", "topics": ["items"], "dataset_arn": ARN,
                    "mapping": {"id": "sku", "property_fields": ["price"]}},
                   {"name": "more-clicks", "destination": "events", "topics": ["^clicks-.*"]}],
    })
    events, items, more = settings.effective_routes()  # type: ignore[attr-defined]
    assert isinstance(events, EventsRoute) and events.topics == ["clicks"] and events.tracking_id == "t"
    assert events.max_requests_per_second == 500 and events.dlq_topic == "dead"
    assert isinstance(items, EntityRoute) and items.mapping.id == "sku" and items.dlq_topic == "dead"
    assert items.max_requests_per_second == ENTITY_REQUESTS_PER_SECOND and items.on_delete == "dead-letter"
    assert isinstance(more, EventsRoute) and more.tracking_id == "t" and more.max_requests_per_second == 500


def test_routes_alone_need_no_tracking_id(tmp_path: Path) -> None:
    settings = _load(tmp_path, {"kafka": {"bootstrap_servers": "b"}, "personalize": {},
                                "routes": [{"name": "u", "destination": "users", "topics": ["u"],
                                            "dataset_arn": ARN.replace("ITEMS", "USERS")}]})
    assert [r.name for r in settings.effective_routes()] == ["u"]  # type: ignore[attr-defined]


def test_actions_and_action_interactions_routes_get_their_defaults(tmp_path: Path) -> None:
    settings = _load(tmp_path, {
        "kafka": {"bootstrap_servers": "b"}, "personalize": {"tracking_id": "events-tracker"},
        "routes": [{"name": "offers", "destination": "actions", "topics": ["actions"],
                    "dataset_arn": ARN.replace("ITEMS", "ACTIONS"), "on_delete": "skip"},
                   {"name": "offer-clicks", "destination": "action_interactions", "topics": ["ai"],
                    "tracking_id": "action-tracker", "mapping": {"action_id": "offer.id", "event_type": None,
                                                                 "event_type_default": "Viewed"}}],
    })
    actions, interactions = settings.effective_routes()  # type: ignore[attr-defined]
    assert isinstance(actions, EntityRoute) and actions.on_delete == "skip"
    assert actions.max_requests_per_second == ENTITY_REQUESTS_PER_SECOND
    assert isinstance(interactions, ActionInteractionsRoute) and interactions.tracking_id == "action-tracker"
    assert interactions.max_requests_per_second == 1000.0  # personalize.max_requests_per_second, like events
    assert interactions.mapping.action_id == "offer.id" and interactions.mapping.event_type_default == "Viewed"


@pytest.mark.parametrize(("data", "expected"), [
    ({"routes": [{"name": "ai", "destination": "action_interactions", "topics": ["ai"]}]},
     "routes.0.action_interactions.tracking_id: Field required"),
    ({"routes": [{"name": "ai", "destination": "action_interactions", "topics": ["ai"], "tracking_id": "t",
                  "mapping": {"event_type": None}}]},
     "routes.0.action_interactions.mapping.event_type_default: is required when mapping.event_type is null"),
    ({"routes": [{"name": "ai", "destination": "action_interactions", "topics": ["ai"], "tracking_id": "t",
                  "mapping": {"item_id": "x"}}]},
     "routes.0.action_interactions.mapping.item_id: unknown key"),
    ({"routes": [{"name": "a", "destination": "actions", "topics": ["a2"]}]},
     "routes.0.actions.dataset_arn: Field required"),
    ({"routes": [{"name": "i", "destination": "sofa", "topics": ["i"]}]}, "'actions', 'action_interactions'"),
])
def test_new_route_errors_name_the_key(tmp_path: Path, data: dict, expected: str) -> None:
    base = {"kafka": {"bootstrap_servers": "b", "topics": ["a"]}, "personalize": {"tracking_id": "t"}}
    assert expected in _error(tmp_path, {**base, **data})


@pytest.mark.parametrize(("data", "expected"), [
    ({"kafka": {"bootstrap_servers": "b"}, "personalize": {}}, "kafka.topics: must name at least one topic"),
    ({"kafka": {"bootstrap_servers": "b", "topics": ["a"]}, "personalize": {}}, "personalize.tracking_id: is required"),
    ({"routes": [{"name": "i", "destination": "items", "topics": ["i"]}]},
     "routes.0.items.dataset_arn: Field required"),
    ({"routes": [{"name": "i", "destination": "items", "topics": ["i"], "dataset_arn": "not-an-arn"}]},
     "routes.0.items.dataset_arn: String should match pattern"),
    ({"routes": [{"name": "i", "destination": "items", "topics": ["i"], "dataset_arn": ARN, "mapping": {"sku": "x"}}]},
     "routes.0.items.mapping.sku: unknown key; allowed keys here: deleted, exclude, id, include, "
      "join_lists, properties, property_fields, property_keys"),
    ({"routes": [{"name": "i", "destination": "sofa", "topics": ["i"]}]}, "'events', 'items', 'users'"),
    ({"routes": [{"name": "i", "destination": "items", "topics": ["a"], "dataset_arn": ARN}]},
     "routes.topics: 'a' is in two routes ('events' and 'i')"),
    ({"routes": [{"name": "events", "destination": "items", "topics": ["i"], "dataset_arn": ARN}]},
     "routes.name: 'events' is used twice"),
    ({"routes": [{"name": "i", "destination": "items", "topics": ["i"], "dataset_arn": ARN, "on_delete": "drop"}]},
     "on_delete: Input should be 'dead-letter' or 'skip'"),
])
def test_route_errors_name_the_key(tmp_path: Path, data: dict, expected: str) -> None:
    base = {"kafka": {"bootstrap_servers": "b", "topics": ["a"]}, "personalize": {"tracking_id": "t"}}
    assert expected in _error(tmp_path, {**base, **data})
