"""A decoded Protobuf message as the dict the mapper takes, shaped like the Avro decoder's.

The walk follows the message's descriptor, not MessageToDict: that one renders int64 as strings,
Timestamps as RFC 3339 text and field names in lowerCamelCase, none of which the mapper wants.

| Protobuf | value handed to the mapper (as from Avro) |
|---|---|
| scalar with presence (`optional`, proto2), not set | None, like a null union branch |
| proto3 scalar without presence, not set | its default (0, "", false), as Protobuf defines it |
| enum | the value's name |
| message not set | None |
| google.protobuf.Timestamp | an aware UTC datetime (what timestamp-millis gives) |
| google.protobuf.*Value wrappers | the wrapped value |
| a message that is one `oneof` of 2+ fields (a union: PropertyValue) | its set member's value or None |
| other messages | dicts, nested at most `max_depth` deep (NestingTooDeep beyond) |
| repeated / map | list / dict |
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from connector.records import DecodeError

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TIMESTAMP = "google.protobuf.Timestamp"
WRAPPERS = frozenset(f"google.protobuf.{name}Value" for name in
                     ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"))


def message_dict(message: Message, max_depth: int) -> dict[str, Any]:
    return _fields(message, 1, max_depth)


def _fields(message: Message, depth: int, max_depth: int) -> dict[str, Any]:
    if depth > max_depth:
        raise DecodeError(f"message nests deeper than decode.max_nesting_depth = {max_depth}",
                          error_class="NestingTooDeep")
    out: dict[str, Any] = {}
    for fd in message.DESCRIPTOR.fields:
        raw = getattr(message, fd.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            # Protobuf maps have no order; sorted keys make the same message the same dict every time.
            out[fd.name] = {key: _value(value_fd, raw[key], depth, max_depth) for key in sorted(raw)}
        elif fd.is_repeated:
            out[fd.name] = [_value(fd, item, depth, max_depth) for item in raw]
        elif fd.has_presence and not message.HasField(fd.name):
            out[fd.name] = None
        else:
            out[fd.name] = _value(fd, raw, depth, max_depth)
    return out


# Descriptors are typed Any: the stubs split them into python and upb classes the runtime mixes.
def _value(fd: Any, raw: Any, depth: int, max_depth: int) -> Any:
    if fd.type == FieldDescriptor.TYPE_ENUM:
        enum_value = fd.enum_type.values_by_number.get(raw)
        return enum_value.name if enum_value is not None else raw  # an open enum's unknown number
    if fd.message_type is None:
        return raw
    return _message_value(fd.message_type, raw, depth, max_depth)


def _message_value(descriptor: Descriptor, message: Message, depth: int, max_depth: int) -> Any:
    name = descriptor.full_name
    if name == TIMESTAMP:
        seconds, nanos = message.seconds, message.nanos  # type: ignore[attr-defined]
        try:
            return EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)
        except OverflowError:
            raise DecodeError(f"Timestamp of {seconds} s is outside years 1..9999",
                              error_class="InvalidLogicalValue") from None
    if name in WRAPPERS:
        return message.value  # type: ignore[attr-defined]
    if _is_union(descriptor):
        member = message.WhichOneof(descriptor.oneofs[0].name)
        if member is None:
            return None
        return _value(descriptor.fields_by_name[member], getattr(message, member), depth + 1, max_depth)
    return _fields(message, depth + 1, max_depth)


def _is_union(descriptor: Descriptor) -> bool:
    # Two members at least: a proto3 `optional` field is a (synthetic) oneof of one, not a union.
    oneofs = descriptor.oneofs
    return len(oneofs) == 1 and len(oneofs[0].fields) == len(descriptor.fields) >= 2
