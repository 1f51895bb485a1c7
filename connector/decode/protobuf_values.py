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
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from connector.records import DecodeError

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TIMESTAMP = "google.protobuf.Timestamp"
WRAPPERS = frozenset(f"google.protobuf.{name}Value" for name in
                     ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"))

# Descriptors are typed Any: the stubs split them into python and upb classes the runtime mixes.
# (field name, how to read it from a message at a depth)
FieldReader = tuple[str, Callable[[Any, int], Any]]
ValueReader = Callable[[Any, int], Any]


class MessageReader:
    """`read(message)`: the dict of a message, by a plan made once per message type.

    The plan (which field reads how) is what costs: descriptor options, presence, map entries.
    Made per type on first use, a record then costs one getattr per field. Recursive types work:
    a nested type's plan is looked up when a value of it is read, by then it exists.
    """

    def __init__(self, max_depth: int) -> None:
        self._max_depth = max_depth
        # Keyed by descriptor, not name: two schema ids may hold two versions of one message name.
        self._plans: dict[Any, list[FieldReader]] = {}

    def read(self, message: Message) -> dict[str, Any]:
        return self._fields(message.DESCRIPTOR, message, 1)

    def _fields(self, descriptor: Any, message: Any, depth: int) -> dict[str, Any]:
        if depth > self._max_depth:
            raise DecodeError(f"message nests deeper than decode.max_nesting_depth = {self._max_depth}",
                              error_class="NestingTooDeep")
        plan = self._plans.get(descriptor)
        if plan is None:
            plan = self._plans[descriptor] = [(fd.name, self._field_reader(fd)) for fd in descriptor.fields]
        return {name: read(message, depth) for name, read in plan}

    def _field_reader(self, fd: Any) -> ValueReader:
        name = fd.name
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            entry = self._value_reader(fd.message_type.fields_by_name["value"])

            def read_map(m: Any, d: int) -> dict[Any, Any]:
                raw = getattr(m, name)
                # Protobuf maps have no order; sorted keys make the same message the same dict every time.
                return {key: entry(raw[key], d) for key in sorted(raw)}

            return read_map
        value = self._value_reader(fd)
        if fd.is_repeated:
            return lambda m, d: [value(item, d) for item in getattr(m, name)]
        if fd.has_presence:
            return lambda m, d: value(getattr(m, name), d) if m.HasField(name) else None
        return lambda m, d: value(getattr(m, name), d)

    def _value_reader(self, fd: Any) -> ValueReader:
        if fd.type == FieldDescriptor.TYPE_ENUM:
            names = {v.number: v.name for v in fd.enum_type.values}
            return lambda raw, _d: names.get(raw, raw)  # an open enum's unknown number stays a number
        if fd.message_type is None:
            return lambda raw, _d: raw
        return self._message_reader(fd.message_type)

    def _message_reader(self, descriptor: Any) -> ValueReader:
        name = descriptor.full_name
        if name == TIMESTAMP:
            return lambda raw, _d: _timestamp(raw.seconds, raw.nanos)
        if name in WRAPPERS:
            return lambda raw, _d: raw.value
        if _is_union(descriptor):
            oneof = descriptor.oneofs[0].name
            members = {fd.name: self._value_reader(fd) for fd in descriptor.fields}

            def member(raw: Any, depth: int) -> Any:
                which = raw.WhichOneof(oneof)
                return None if which is None else members[which](getattr(raw, which), depth + 1)

            return member
        return lambda raw, d: self._fields(descriptor, raw, d + 1)


def _timestamp(seconds: int, nanos: int) -> dt.datetime:
    try:
        return EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError:
        raise DecodeError(f"Timestamp of {seconds} s is outside years 1..9999",
                          error_class="InvalidLogicalValue") from None


def _is_union(descriptor: Any) -> bool:
    # Two members at least: a proto3 `optional` field is a (synthetic) oneof of one, not a union.
    oneofs = descriptor.oneofs
    return len(oneofs) == 1 and len(oneofs[0].fields) == len(descriptor.fields) >= 2
