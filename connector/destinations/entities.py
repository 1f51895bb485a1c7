"""What the items and users destinations share: an entry is an id plus a `properties` JSON object.

Personalize learns from three datasets; catalogue and profile changes usually already flow through
Kafka. Entries are validated against botocore's model like events are. PutItems/PutUsers can only
create or update, so a tombstone or a delete marker raises NotAnUpsert, which the route's
`on_delete` dead-letters or skips. Each kind (connector.destinations.items, .users) is an
EntityKind: its operation, its id field, and the parameter its entries travel in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connector.config import EntityMappingConfig, EntityRoute
from connector.destinations.fields import as_id, collect_properties, compile_path, properties_json
from connector.destinations.transforms import compile_filter, compile_properties
from connector.personalize import api_model
from connector.records import Event, Filtered, InvalidEvent, NotAnUpsert, Request, SourceRecord


@dataclass(frozen=True, slots=True)
class EntityKind:
    """A dataset write operation of the `datasetArn` + list shape (PutItems, PutUsers)."""

    name: str  # the `destination:` name, also the request parameter holding the entries ("items")
    operation: str  # "PutItems"
    id_field: str  # "itemId"

    @property
    def entry(self) -> str:
        """One entry's name in messages and api_model paths ("item")."""
        return self.name[:-1]


@dataclass(frozen=True, slots=True)
class EntityKey:
    """PutItems/PutUsers take any entries of one dataset; grouping by source partition keeps the
    updates of one item or user (keyed to one partition) in order, one call at a time."""

    route: str
    kind: EntityKind
    dataset_arn: str
    partition: int

    def request(self, entries: list[dict[str, Any]]) -> Request:
        return Request(self.kind.operation, {"datasetArn": self.dataset_arn, self.kind.name: entries})


class EntityMapper:
    """Maps decoded records of an items or users route to PutItems / PutUsers entries (the destination)."""

    counts_events = False

    def __init__(self, kind: EntityKind, mapping: EntityMappingConfig, dataset_arn: str, route: str,
                 *, skips_deletes: bool = False) -> None:
        self._kind = kind
        self._dataset_arn = dataset_arn
        self._route = route
        self.skips_deletes = skips_deletes  # on_delete: skip, instead of dead-lettering
        self._id = compile_path(mapping.id or kind.id_field)
        self._properties = compile_path(mapping.properties)
        self._property_fields = [(p.rsplit(".", 1)[-1], compile_path(p)) for p in mapping.property_fields]
        self._deleted = compile_path(mapping.deleted)
        self._shape_properties = compile_properties(mapping.property_keys, mapping.join_lists)
        self._keeps = compile_filter(mapping.include, mapping.exclude)

    def to_event(self, record: Mapping[str, Any], source: SourceRecord) -> Event:
        kind = self._kind
        if self._keeps is not None and not self._keeps(record):
            raise Filtered
        if self._deleted(record):
            raise NotAnUpsert(
                f"{kind.id_field} {as_id(self._id(record), kind.id_field)!r} is marked deleted; "
                f"{kind.operation} cannot delete (remove it from the dataset with a full import)",
                error_class="DeleteMarker",
            )
        body: dict[str, Any] = {kind.id_field: as_id(self._id(record), kind.id_field) or ""}
        properties = collect_properties(record, self._properties, self._property_fields)
        if self._shape_properties is not None:
            properties = self._shape_properties(properties)
        if properties:
            body["properties"] = properties_json(properties)
        problems = api_model.check_entry(kind.operation, body, path=kind.entry)
        if problems:
            raise InvalidEvent("; ".join(str(p).removeprefix(f"{kind.entry}.") for p in problems))
        key = EntityKey(self._route, kind, self._dataset_arn, source.partition)
        return Event(key=key, body=body, record=source)

    def tombstone(self, record: SourceRecord) -> NotAnUpsert:
        """The error for a record without a value (Kafka's deletion marker on compacted topics)."""
        operation = self._kind.operation
        return NotAnUpsert(
            f"a tombstone (null value) at {record.position()} has no {operation} meaning: {operation} cannot delete",
            error_class="Tombstone",
        )


def build(kind: EntityKind, route: EntityRoute) -> EntityMapper:
    """The destination of an items or users route."""
    return EntityMapper(kind, route.mapping, route.dataset_arn, route.name, skips_deletes=route.on_delete == "skip")
