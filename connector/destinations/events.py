"""The events destination: records -> PutEvents events, batched by session, sent with PutEvents.

Field paths are compiled once per mapper. Validation has two tiers: a fast check with the limits read
from botocore's service model (connector.personalize.api_model) that passes almost every real event, and, when it
has any doubt, the full model-driven `check_event`, whose messages are what the dead letter carries.
The fast check may only say "certainly valid"; it never rejects, so api_model stays the one authority.

A record without a value is decoded like any other (the decoder says why it cannot be an event);
PutEvents has no deletes, so nothing is skipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.model import ListShape, Shape, StructureShape

from connector.config import EventsRoute, MappingConfig
from connector.destinations.fields import as_id, collect_properties, compile_path, properties_json
from connector.destinations.trackers import RecordTrackers
from connector.destinations.transforms import compile_filter, compile_properties, compile_time
from connector.personalize import api_model
from connector.records import Event, Filtered, InvalidEvent, NotAnUpsert, Request, SourceRecord

# Fixed namespace of the ids derived from a record's position, uuid5(namespace, "topic/partition/offset").
# A replay of the same record yields the same eventId, so Personalize sees the same event, not a new one.
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:personalize-kafka-connector:event-id")
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


@dataclass(frozen=True, slots=True)
class SessionKey:
    """PutEvents carries one session per call: events are grouped by this key."""

    tracking_id: str
    session_id: str
    user_id: str | None
    route: str = "events"

    def request(self, entries: list[dict[str, Any]]) -> Request:
        params: dict[str, Any] = {"trackingId": self.tracking_id, "sessionId": self.session_id, "eventList": entries}
        if self.user_id:  # None or "": an anonymous session, sent without userId
            params["userId"] = self.user_id
        return Request("PutEvents", params)


def derived_event_id(source: SourceRecord) -> str:
    """uuid5(EVENT_ID_NAMESPACE, "topic/partition/offset"), the same string `uuid.uuid5` gives
    (replays must keep their ids), built from the SHA-1 directly: a third of uuid5's cost, paid
    by every record without an eventId."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{source.topic}/{source.partition}/{source.offset}".encode(),
                                    usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Limits:
    """The limits the fast check needs, read once from botocore's model via api_model."""

    def __init__(self) -> None:
        event_shape = _event_shape()
        self.strings: dict[str, tuple[int, int]] = {}
        for name, shape in event_shape.members.items():
            if shape.type_name == "string":
                self.strings[name] = (shape.metadata.get("min", 0), shape.metadata["max"])
        impression = event_shape.members["impression"]
        assert isinstance(impression, ListShape)
        self.impression_items = impression.metadata["max"]
        self.impression_item = (impression.member.metadata.get("min", 0), impression.member.metadata["max"])
        source = _member(event_shape, "metricAttribution", "eventAttributionSource")
        self.attribution_max: int = source.metadata["max"]
        self.attribution_pattern = api_model.model_pattern(source.metadata["pattern"])
        self.session = {
            name: (api_model.limit("PutEvents", name, key="min"), api_model.limit("PutEvents", name))
            for name in ("trackingId", "sessionId", "userId")
        }


def _event_shape() -> StructureShape:
    request = api_model.operation("PutEvents").input_shape
    assert request is not None
    events = request.members["eventList"]
    assert isinstance(events, ListShape) and isinstance(events.member, StructureShape)
    return events.member


def _member(shape: StructureShape, *path: str) -> Shape:
    current: Shape = shape
    for name in path:
        assert isinstance(current, StructureShape)
        current = current.members[name]
    return current


class EventMapper:
    """Maps decoded records to PutEvents events according to a MappingConfig (the events destination)."""

    counts_events = True  # its entries count in pkc_events_delivered_total too
    skips_deletes = False

    def __init__(self, mapping: MappingConfig, default_tracking_id: str, route: str = "events",
                 allowed_tracking_ids: Iterable[str] | None = None) -> None:
        self._trackers = RecordTrackers(default_tracking_id, allowed_tracking_ids, route)
        self._route = route
        self._event_type_default = mapping.event_type_default
        self._event_id = compile_path(mapping.event_id)
        self._tracking_id = compile_path(mapping.tracking_id)
        self._session_id = compile_path(mapping.session_id)
        self._user_id = compile_path(mapping.user_id)
        self._event_type = compile_path(mapping.event_type)
        self._event_value = compile_path(mapping.event_value)
        self._item_id = compile_path(mapping.item_id)
        self._sent_at = compile_path(mapping.sent_at)
        self._recommendation_id = compile_path(mapping.recommendation_id)
        self._impression = compile_path(mapping.impression)
        self._attribution = compile_path(mapping.event_attribution_source)
        self._properties = compile_path(mapping.properties)
        self._property_fields = [(p.rsplit(".", 1)[-1], compile_path(p)) for p in mapping.property_fields]
        self._read_sent_at = compile_time(mapping.time_format, mapping.time_not_before, mapping.time_max_ahead_s,
                                          "sentAt")
        self._shape_properties = compile_properties(mapping.property_keys, mapping.join_lists)
        self._keeps = compile_filter(mapping.include, mapping.exclude)
        self._limits = _Limits()

    def to_event(self, record: Mapping[str, Any], source: SourceRecord) -> Event:
        if self._keeps is not None and not self._keeps(record):
            raise Filtered
        key = SessionKey(
            tracking_id=self._trackers.tracker(as_id(self._tracking_id(record), "trackingId")),
            session_id=as_id(self._session_id(record), "sessionId") or "",
            user_id=as_id(self._user_id(record), "userId") or None,  # None or "": an anonymous session
            route=self._route,
        )
        body: dict[str, Any] = {
            "eventId": as_id(self._event_id(record), "eventId") or derived_event_id(source),
            "eventType": as_id(self._event_type(record), "eventType") or self._event_type_default,
            "sentAt": self._read_sent_at(self._sent_at(record), source),
        }
        value = self._event_value(record)
        if value is not None:
            body["eventValue"] = _event_value(value)
        item_id = as_id(self._item_id(record), "itemId")
        if item_id is not None:
            body["itemId"] = item_id
        properties = self._collect_properties(record)
        if properties:
            body["properties"] = properties_json(properties)
        recommendation_id = as_id(self._recommendation_id(record), "recommendationId")
        if recommendation_id is not None:
            body["recommendationId"] = recommendation_id
        impression = self._impression(record)
        if impression:  # an empty list means "not sent" (the API's minimum is 1 item)
            body["impression"] = list(impression) if isinstance(impression, list | tuple) else impression
        attribution = self._attribution(record)
        if attribution is not None:
            body["metricAttribution"] = {"eventAttributionSource": attribution}
        if not self._certainly_valid(key, body, properties):
            self._validate(key, body)
        return Event(key=key, body=body, record=source)

    def tombstone(self, record: SourceRecord) -> NotAnUpsert | None:
        """None: a record without a value goes to the decoder like any other."""
        return None

    def _collect_properties(self, record: Mapping[str, Any]) -> dict[str, Any]:
        properties = collect_properties(record, self._properties, self._property_fields)
        return properties if self._shape_properties is None else self._shape_properties(properties)

    def _certainly_valid(self, key: SessionKey, body: dict[str, Any], properties: dict[str, Any]) -> bool:
        """True only when every rule is certainly met; False means "ask check_event"."""
        limits = self._limits
        session = {"trackingId": key.tracking_id, "sessionId": key.session_id, "userId": key.user_id}
        for name, (lo, hi) in limits.session.items():
            value = session[name]
            if value is not None and not lo <= len(value) <= hi:
                return False
        if not isinstance(body["eventType"], str) or not isinstance(body["sentAt"], dt.datetime):
            return False
        size = 64  # braces, quotes, commas, the sentAt number
        for name, value in body.items():
            size += len(name) + 6
            if isinstance(value, str):
                if name not in limits.strings:
                    return False  # a string where the API wants a list (impression): check_event says so
                lo, hi = limits.strings[name]
                # ASCII text grows at most 6x when JSON-escaped (\u00XX); other text needs the exact check.
                if not lo <= len(value) <= hi or not value.isascii():
                    return False
                size += 6 * len(value)
            elif name == "impression":
                lo, hi = limits.impression_item
                if not isinstance(value, list) or len(value) > limits.impression_items:
                    return False
                for item in value:
                    if not isinstance(item, str) or not lo <= len(item) <= hi or not item.isascii():
                        return False
                    size += 6 * len(item) + 3
            elif name == "metricAttribution":
                source = value["eventAttributionSource"]
                if not isinstance(source, str) or len(source) > limits.attribution_max:
                    return False
                if not limits.attribution_pattern.search(source):
                    return False
                size += 6 * len(source) + 30
        if size > api_model.MAX_EVENT_BYTES:
            return False
        return not any(k.lower() in api_model.RESERVED_PROPERTY_KEYS for k in properties)

    def _validate(self, key: SessionKey, body: dict[str, Any]) -> None:
        problems = [_without_prefix(str(v)) for v in api_model.check_event(body, path="event")]
        for name, value in (("trackingId", key.tracking_id), ("sessionId", key.session_id),
                            ("userId", key.user_id)):
            lo, hi = self._limits.session[name]
            if value is None:
                continue
            if value == "" and name != "userId":
                problems.append(f"{name}: is required")
            elif len(value) < lo:
                problems.append(f"{name}: has {len(value)} characters; the minimum is {lo}")
            elif len(value) > hi:
                problems.append(f"{name}: has {len(value)} characters; the maximum is {hi}")
        if problems:
            raise InvalidEvent("; ".join(problems))


def _event_value(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidEvent(f"eventValue: expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond a double's range
        raise InvalidEvent(f"eventValue: {value} is beyond the range of a number") from None
    if not math.isfinite(number):
        # botocore would send the string "NaN"; a recommender cannot weigh an event by it.
        raise InvalidEvent(f"eventValue: must be a finite number, got {number!r}")
    return number


def _without_prefix(message: str) -> str:
    # check_event names fields "event.properties"; the dead letter should say "properties".
    return message.removeprefix("event.")


def build(route: EventsRoute) -> EventMapper:
    """The destination of an `events` route."""
    assert route.tracking_id is not None  # checked by Settings
    return EventMapper(route.mapping, route.tracking_id, route=route.name,
                       allowed_tracking_ids=route.allowed_tracking_ids)
