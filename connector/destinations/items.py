"""The items destination: catalogue records -> PutItems entries of one items dataset."""

from __future__ import annotations

from connector.config import EntityRoute
from connector.destinations.entities import EntityKind, EntityMapper
from connector.destinations.entities import build as build_entity

ITEMS = EntityKind(name="items", operation="PutItems", id_field="itemId")
READER_SCHEMA = "item.avsc"  # packaged in avro_schemas, used when the route names none


def build(route: EntityRoute) -> EntityMapper:
    return build_entity(ITEMS, route)
