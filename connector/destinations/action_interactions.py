"""The action_interactions destination: records -> PutActionInteractions entries, batched by session.

PutActionInteractions takes a trackingId (the action interaction event tracker) and 1-10
interactions, each with its own actionId, sessionId, userId and timestamp. Entries are batched by
tracker and session, like events, so one session's interactions arrive in order, one call at a
time. A record without an eventId gets the one derived from its position (the events
destination's `derived_event_id`), so a replayed record is the same interaction, not a new one.
Every entry is checked with api_model (model limits, properties a JSON object without the
reserved keys) before a call is spent on it. There are no deletes: a record without a value goes
to the decoder like any other (which says why it cannot be an interaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connector.config import ActionInteractionMappingConfig, ActionInteractionsRoute
from connector.destinations.events import derived_event_id
from connector.destinations.fields import as_id, collect_properties, compile_path, properties_json
from connector.destinations.trackers import RecordTrackers
from connector.destinations.transforms import compile_filter, compile_properties, compile_time
from connector.personalize import api_model
from connector.records import Event, Filtered, InvalidEvent, NotAnUpsert, Request, SourceRecord

OPERATION = "PutActionInteractions"
READER_SCHEMA = "action_interaction.avsc"  # packaged in avro_schemas, used when the route names none
_ENTRY = "actionInteraction"  # the entry's name in api_model paths, stripped from messages


@dataclass(frozen=True, slots=True)
class TrackerSessionKey:
    """One tracker's session: its interactions share calls and are sent in order."""

    route: str
    tracking_id: str
    session_id: str

    def request(self, entries: list[dict[str, Any]]) -> Request:
        return Request(OPERATION, {"trackingId": self.tracking_id, "actionInteractions": entries})


class ActionInteractionMapper:
    """Maps decoded records to PutActionInteractions entries (the action_interactions destination)."""

    counts_events = False  # pkc_events_delivered_total counts PutEvents events only
    skips_deletes = False

    def __init__(self, mapping: ActionInteractionMappingConfig, tracking_id: str, route: str,
                 allowed_tracking_ids: Iterable[str] | None = None) -> None:
        self._trackers = RecordTrackers(tracking_id, allowed_tracking_ids, route)
        self._route = route
        self._event_type_default = mapping.event_type_default
        self._event_id = compile_path(mapping.event_id)
        self._tracking_id = compile_path(mapping.tracking_id)
        self._action_id = compile_path(mapping.action_id)
        self._session_id = compile_path(mapping.session_id)
        self._user_id = compile_path(mapping.user_id)
        self._event_type = compile_path(mapping.event_type)
        self._timestamp = compile_path(mapping.timestamp)
        self._recommendation_id = compile_path(mapping.recommendation_id)
        self._impression = compile_path(mapping.impression)
        self._properties = compile_path(mapping.properties)
        self._property_fields = [(p.rsplit(".", 1)[-1], compile_path(p)) for p in mapping.property_fields]
        self._read_timestamp = compile_time(mapping.time_format, mapping.time_not_before, mapping.time_max_ahead_s,
                                            "timestamp")
        self._shape_properties = compile_properties(mapping.property_keys, mapping.join_lists)
        self._keeps = compile_filter(mapping.include, mapping.exclude)
        self._tracking_id_limits = (api_model.limit(OPERATION, "trackingId", key="min"),
                                    api_model.limit(OPERATION, "trackingId"))

    def to_event(self, record: Mapping[str, Any], source: SourceRecord) -> Event:
        if self._keeps is not None and not self._keeps(record):
            raise Filtered
        tracking_id = self._trackers.tracker(as_id(self._tracking_id(record), "trackingId"))
        body: dict[str, Any] = {
            "actionId": as_id(self._action_id(record), "actionId"),
            "sessionId": as_id(self._session_id(record), "sessionId"),
            "timestamp": self._read_timestamp(self._timestamp(record), source),
            "eventType": as_id(self._event_type(record), "eventType") or self._event_type_default,
            "eventId": as_id(self._event_id(record), "eventId") or derived_event_id(source),
        }
        user_id = as_id(self._user_id(record), "userId")
        if user_id:  # None or "": an anonymous interaction, sent without userId
            body["userId"] = user_id
        recommendation_id = as_id(self._recommendation_id(record), "recommendationId")
        if recommendation_id is not None:
            body["recommendationId"] = recommendation_id
        impression = self._impression(record)
        if impression:  # an empty list means "not sent" (the API's minimum is 1 id)
            body["impression"] = list(impression) if isinstance(impression, list | tuple) else impression
        properties = collect_properties(record, self._properties, self._property_fields)
        if self._shape_properties is not None:
            properties = self._shape_properties(properties)
        if properties:
            body["properties"] = properties_json(properties)
        self._validate(tracking_id, body)
        return Event(key=TrackerSessionKey(self._route, tracking_id, body["sessionId"] or ""), body=body,
                     record=source)

    def tombstone(self, record: SourceRecord) -> NotAnUpsert | None:
        """None: a record without a value goes to the decoder like any other."""
        return None

    def _validate(self, tracking_id: str, body: dict[str, Any]) -> None:
        problems = [str(v).removeprefix(f"{_ENTRY}.") for v in api_model.check_entry(OPERATION, body, path=_ENTRY)]
        lo, hi = self._tracking_id_limits
        if not lo <= len(tracking_id) <= hi:
            problems.append(f"trackingId: has {len(tracking_id)} characters; the minimum is {lo} and the maximum {hi}")
        if problems:
            raise InvalidEvent("; ".join(problems))


def build(route: ActionInteractionsRoute) -> ActionInteractionMapper:
    """The destination of an `action_interactions` route."""
    return ActionInteractionMapper(route.mapping, route.tracking_id, route.name, route.allowed_tracking_ids)
