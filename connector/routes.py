"""Which stages a record goes through, by its topic: one route per configured destination.

A route bundles the decoder, the destination (its mapper and delete policy), the sink (its rate
buckets, one per tracker or dataset, are shared with the other routes that send there) and the
dead-letter topic. One worker serves every route of its configuration from one consumer; the
worker looks the route up once per record (a dict hit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from connector.decode.base import Decoder
from connector.destinations.base import Destination
from connector.personalize.sink import Sink
from connector.records import Event, NotAnUpsert, SourceRecord


@dataclass(slots=True)
class Route:
    name: str
    topics: list[str]
    decoder: Decoder
    destination: Destination
    sink: Sink
    dlq_topic: str | None  # None: a bad record stops the worker instead

    @property
    def counts_events(self) -> bool:
        """Its entries are PutEvents events (counted in pkc_events_delivered_total too)."""
        return self.destination.counts_events

    def to_entry(self, record: SourceRecord) -> Event | None:
        """The record's entry for this route's call, or None for a delete the route skips.

        Raises RecordError for a record that must be dead-lettered, Filtered for one the route's
        mapping leaves out, and the decoder's retryable errors (registry unavailable) as they are.
        """
        destination = self.destination
        try:
            if not record.value:
                refused = destination.tombstone(record)
                if refused is not None:
                    raise refused
            return destination.to_event(self.decoder.decode(record.value), record)
        except NotAnUpsert:
            if destination.skips_deletes:
                return None
            raise


class RouteTable:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self.by_name = {route.name: route for route in routes}
        self._exact = {topic: route for route in routes for topic in route.topics if not topic.startswith("^")}
        self._patterns = [(re.compile(t), route) for route in routes for t in route.topics if t.startswith("^")]
        self._cache: dict[str, Route] = {}

    def topics(self) -> list[str]:
        return [topic for route in self.routes for topic in route.topics]

    def for_topic(self, topic: str) -> Route:
        route = self._cache.get(topic)
        if route is None:
            route = self._exact.get(topic) or next((r for p, r in self._patterns if p.match(topic)), None)
            if route is None:  # subscriptions come from the routes, so this means a bug
                raise LookupError(f"no route for topic {topic!r}")
            self._cache[topic] = route
        return route
