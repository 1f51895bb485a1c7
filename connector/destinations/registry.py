"""The `destination:` names of a route's configuration, each with how to build its destination."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from connector.destinations import action_interactions, actions, events, items, users
from connector.destinations.base import Destination

RouteModel = TypeVar("RouteModel")  # the route configuration model the destination is built from


@dataclass(frozen=True, slots=True)
class Registration(Generic[RouteModel]):
    build: Callable[[RouteModel], Destination]
    reader_schema: str | None = None  # packaged avro_schemas file used when the route names none


DESTINATIONS: dict[str, Registration[Any]] = {
    "events": Registration(events.build),
    "items": Registration(items.build, items.READER_SCHEMA),
    "users": Registration(users.build, users.READER_SCHEMA),
    "actions": Registration(actions.build, actions.READER_SCHEMA),
    "action_interactions": Registration(action_interactions.build, action_interactions.READER_SCHEMA),
}

