"""The users destination: profile records -> PutUsers entries of one users dataset."""

from __future__ import annotations

from connector.config import EntityRoute
from connector.destinations.entities import EntityKind, EntityMapper
from connector.destinations.entities import build as build_entity

USERS = EntityKind(name="users", operation="PutUsers", id_field="userId")
READER_SCHEMA = "user.avsc"  # packaged in avro_schemas, used when the route names none


def build(route: EntityRoute) -> EntityMapper:
    return build_entity(USERS, route)
