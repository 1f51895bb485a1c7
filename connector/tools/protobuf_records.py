"""Sample records (dicts shaped like the Avro decoder's) as messages of the packaged .proto files.

For `produce --format protobuf`, bench/decode_cost and tests; the inverse of connector.decode.protobuf_values
for the avro_schemas/*.proto twins of the .avsc schemas (one top-level message each, message index [0]).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import avro_schemas
from connector.decode.protobuf_schema import compile_schema
from connector.decode.protobuf_values import TIMESTAMP

# PropertyValue's member for each Python type of an Avro `properties` value (bool before int: a bool is an int).
_PROPERTY_MEMBERS: tuple[tuple[type, str], ...] = (
    (bool, "boolean_value"), (int, "long_value"), (float, "double_value"), (str, "string_value"))
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# How one field of a record is written into a message: (message, the record's value) -> None.
FieldWriter = Callable[[Any, Any], None]


def packaged_proto(schema: str = avro_schemas.INTERACTION_EVENT) -> str:
    """The packaged .proto text of the Avro schema `schema`'s twin (what produce registers)."""
    return avro_schemas.read(avro_schemas.PROTOS[schema])


def interaction_event_proto() -> str:
    """The packaged InteractionEvent .proto text."""
    return packaged_proto(avro_schemas.INTERACTION_EVENT)


class MessageEncoder:
    """`encode(record)`: the Protobuf payload (unframed) of one record of the packaged Avro schema `schema`.

    The writers are planned once from the message's descriptor: proto3 scalars and `optional`
    fields are set unless the record's value is None, maps of PropertyValue take the member of
    each value's type, Timestamps take a datetime or epoch milliseconds (as Avro's timestamp-millis).
    """

    def __init__(self, schema: str = avro_schemas.INTERACTION_EVENT) -> None:
        self.message_class = compile_schema(0, packaged_proto(schema), {}).message_class((0,))
        self._writers = [(fd.name, _writer(fd)) for fd in self.message_class.DESCRIPTOR.fields]

    def encode(self, record: Mapping[str, Any]) -> bytes:
        message: Any = self.message_class()
        for name, write in self._writers:
            value = record.get(name)
            if value is not None:
                write(message, value)
        payload: bytes = message.SerializeToString()
        return payload


def _writer(fd: Any) -> FieldWriter:
    name = fd.name
    message_type = fd.message_type
    if message_type is not None and message_type.GetOptions().map_entry:
        def write_properties(message: Any, values: Mapping[str, Any]) -> None:
            for key, value in values.items():
                member = next(m for t, m in _PROPERTY_MEMBERS if isinstance(value, t))
                setattr(getattr(message, name)[key], member, value)

        return write_properties
    if fd.is_repeated:
        return lambda message, values: getattr(message, name).extend(values)
    if message_type is not None and message_type.full_name == TIMESTAMP:
        def write_timestamp(message: Any, value: dt.datetime | int) -> None:
            instant = EPOCH + dt.timedelta(milliseconds=value) if isinstance(value, int) else value
            getattr(message, name).FromDatetime(instant)

        return write_timestamp
    return lambda message, value: setattr(message, name, value)
