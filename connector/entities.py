"""dict -> PutItems Item / PutUsers User, with the API's limits: the items and users routes.

Personalize learns from three datasets; catalogue and profile changes usually already flow through
Kafka. An entry is an id plus a `properties` JSON object, validated against botocore's model like
events are. PutItems/PutUsers can only create or update, so a tombstone or a delete marker raises
NotAnUpsert and the worker dead-letters or skips it as the route says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from connector import api_model
from connector.config import EntityMappingConfig
from connector.events import as_id, collect_properties, compile_path, properties_json
from connector.records import EntityKey, Event, InvalidEvent, NotAnUpsert, SourceRecord

Kind = Literal["items", "users"]
OPERATIONS: dict[str, str] = {"items": "PutItems", "users": "PutUsers"}
ID_FIELDS: dict[str, str] = {"items": "itemId", "users": "userId"}


class EntityMapper:
    """Maps decoded records of an items or users route to PutItems / PutUsers entries."""

    def __init__(self, kind: Kind, mapping: EntityMappingConfig, dataset_arn: str, route: str) -> None:
        self._kind = kind
        self._operation = OPERATIONS[kind]
        self._id_field = ID_FIELDS[kind]
        self._dataset_arn = dataset_arn
        self._route = route
        self._id = compile_path(mapping.id or self._id_field)
        self._properties = compile_path(mapping.properties)
        self._property_fields = [(p.rsplit(".", 1)[-1], compile_path(p)) for p in mapping.property_fields]
        self._deleted = compile_path(mapping.deleted)

    def to_event(self, record: Mapping[str, Any], source: SourceRecord) -> Event:
        if self._deleted(record):
            raise NotAnUpsert(
                f"{self._id_field} {as_id(self._id(record), self._id_field)!r} is marked deleted; "
                f"{self._operation} cannot delete (remove it from the dataset with a full import)",
                error_class="DeleteMarker",
            )
        body: dict[str, Any] = {self._id_field: as_id(self._id(record), self._id_field) or ""}
        properties = collect_properties(record, self._properties, self._property_fields)
        if properties:
            body["properties"] = properties_json(properties)
        problems = api_model.check_entry(self._operation, body, path=self._kind[:-1])
        if problems:
            raise InvalidEvent("; ".join(str(p).removeprefix(f"{self._kind[:-1]}.") for p in problems))
        key = EntityKey(self._route, self._kind, self._dataset_arn, source.partition)
        return Event(key=key, body=body, record=source)


def tombstone(kind: Kind, source: SourceRecord) -> NotAnUpsert:
    """The error for a record without a value (Kafka's deletion marker on compacted topics)."""
    return NotAnUpsert(
        f"a tombstone (null value) at {source.position()} has no {OPERATIONS[kind]} meaning: "
        f"{OPERATIONS[kind]} cannot delete",
        error_class="Tombstone",
    )
