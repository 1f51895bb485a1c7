"""Interaction events (dicts shaped like the Avro decoder's) as packaged InteractionEvent Protobuf messages.

For `produce --format protobuf`, bench/decode_cost and tests; the inverse of connector.decode.protobuf_values
for avro_schemas/interaction_event.proto.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import avro_schemas
from connector.decode.protobuf_schema import compile_schema

# PropertyValue's member for each Python type of an Avro `properties` value (bool before int: a bool is an int).
_PROPERTY_MEMBERS: tuple[tuple[type, str], ...] = (
    (bool, "boolean_value"), (int, "long_value"), (float, "double_value"), (str, "string_value"))
_SCALARS = ("eventId", "trackingId", "sessionId", "userId", "eventType", "eventValue", "itemId",
            "recommendationId", "eventAttributionSource")


def interaction_event_proto() -> str:
    """The packaged .proto text (what produce registers)."""
    return avro_schemas.read(avro_schemas.INTERACTION_EVENT_PROTO)


class InteractionEventEncoder:
    """`encode(record)`: the Protobuf payload (unframed) of one interaction event."""

    def __init__(self) -> None:
        self.message_class = compile_schema(0, interaction_event_proto(), {}).message_class((0,))

    def encode(self, record: Mapping[str, Any]) -> bytes:
        message: Any = self.message_class()
        for name in _SCALARS:
            if record.get(name) is not None:
                setattr(message, name, record[name])
        for key, value in (record.get("properties") or {}).items():
            member = next(m for t, m in _PROPERTY_MEMBERS if isinstance(value, t))
            setattr(message.properties[key], member, value)
        sent_at = record["sentAt"]
        if isinstance(sent_at, int):
            sent_at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=sent_at)
        message.sentAt.FromDatetime(sent_at)
        message.impression.extend(record.get("impression") or [])
        payload: bytes = message.SerializeToString()
        return payload
