"""What the pipeline may use of a destination (connector.routes.Route holds one per route)."""

from __future__ import annotations

from typing import Any, Protocol

from connector.records import Event, NotAnUpsert, SourceRecord


class Destination(Protocol):
    """One Personalize write operation, seen from the pipeline.

    Its entries carry their batching key (a connector.records.BatchKey of the destination's own
    kind), and that key forms the call, so neither the batcher nor the sink names a destination.
    """

    @property
    def counts_events(self) -> bool:
        """Its entries are PutEvents events (counted in pkc_events_delivered_total too)."""
        ...

    @property
    def skips_deletes(self) -> bool:
        """A NotAnUpsert (tombstone, delete marker) is skipped instead of dead-lettered."""
        ...

    def tombstone(self, record: SourceRecord) -> NotAnUpsert | None:
        """The error for a record without a value, or None to decode it like any other record."""
        ...

    def to_event(self, record: dict[str, Any], source: SourceRecord) -> Event:
        """The decoded record's entry, or a RecordError (NotAnUpsert for a delete it cannot make),
        or Filtered for a record its mapping's include/exclude leaves out."""
        ...
