"""Confluent's Protobuf wire format: magic byte 0, 4-byte schema id, message indexes, payload.

The message indexes say which message of the registered .proto the payload is: a zig-zag varint
count, then that many zig-zag varints, each an index among the messages declared at that level
(the first among the file's top-level messages, the next among that one's nested messages ...).
The common case [0] (the first top-level message) is written as the single byte 0.
Schemas are fetched and compiled once per schema id (connector.decode.registry_cache), message
classes built once per index path, so a record costs a parse plus the walk into a dict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka.schema_registry.error import SchemaRegistryError
from google.protobuf.message import DecodeError as ProtobufParseError

from connector.decode.base import MAX_NESTING_DEPTH, UNKNOWN_SCHEMA_RETRY_S, RegistryUnavailable
from connector.decode.confluent_wire import HEADER_SIZE, MAGIC_BYTE, SchemaNotFound, read_header
from connector.decode.protobuf_schema import MAX_INDEX_DEPTH, CompiledSchema, compile_schema
from connector.decode.protobuf_values import MessageReader
from connector.decode.registry_cache import RegistrySchemas
from connector.records import DecodeError

# A registered schema with its imports: (.proto text, {import path: .proto text}).
ProtoSource = tuple[str, dict[str, str]]
# Referenced schemas fetched for one schema id, at most (each costs a registry request).
MAX_REFERENCES = 64


class ProtobufWireDecoder:
    """Decodes Confluent-framed Protobuf into dicts (shape: connector.decode.protobuf_values).

    `fetch_schema(schema_id)` returns the schema's .proto text and its imports; its contract is
    connector.decode.registry_cache's. A schema that does not compile is remembered as such: protoc
    is run once per schema id, whatever the records.
    """

    def __init__(self, fetch_schema: Callable[[int], ProtoSource], *,
                 unknown_schema_retry_s: float = UNKNOWN_SCHEMA_RETRY_S,
                 max_nesting_depth: int = MAX_NESTING_DEPTH,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._reader = MessageReader(max_nesting_depth)
        self._schemas = RegistrySchemas(fetch_schema, _compile,
                                        unknown_schema_retry_s=unknown_schema_retry_s, clock=clock)

    @classmethod
    def from_registry(cls, client: Any, **options: Any) -> ProtobufWireDecoder:
        """A decoder over confluent_kafka.schema_registry.SchemaRegistryClient."""
        return cls(protobuf_fetcher(client), **options)

    def decode(self, value: bytes | None) -> dict[str, Any]:
        framed, schema_id = read_header(value)
        indexes, start = read_message_indexes(framed, HEADER_SIZE)
        compiled = self._schemas.get(schema_id)
        if isinstance(compiled, DecodeError):
            raise DecodeError(str(compiled), error_class=compiled.error_class)
        message = compiled.message_class(indexes)()
        try:
            message.ParseFromString(framed[start:])
        except ProtobufParseError as exc:
            if "MaxDepth" in str(exc):  # upb refuses nesting past its own bound (100) before we see it
                raise DecodeError(f"Protobuf payload nests deeper than the parser's limit: {exc}",
                                  error_class="NestingTooDeep") from None
            raise DecodeError(f"Protobuf payload is not a valid {message.DESCRIPTOR.full_name}: {exc}",
                              error_class="CorruptBody") from None
        return self._reader.read(message)


def _compile(schema_id: int, source: ProtoSource) -> CompiledSchema | DecodeError:
    try:
        return compile_schema(schema_id, *source)
    except DecodeError as exc:
        return exc  # cached: a schema id's text never changes, and protoc costs a process


def read_message_indexes(value: bytes, start: int) -> tuple[tuple[int, ...], int]:
    """The message index path at value[start:] and where the payload begins."""
    count, pos = _zigzag_varint(value, start)
    if count == 0:
        return (0,), pos
    if not 0 < count <= MAX_INDEX_DEPTH:
        raise DecodeError(f"message index count {count} is outside 1..{MAX_INDEX_DEPTH}",
                          error_class="UnknownMessageIndex")
    indexes = []
    for _ in range(count):
        index, pos = _zigzag_varint(value, pos)
        indexes.append(index)
    return tuple(indexes), pos


def _zigzag_varint(value: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(value):
            raise DecodeError("message indexes end early (truncated varint)", error_class="Truncated")
        byte = value[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift >= 64:
            raise DecodeError("message index varint is longer than 10 bytes", error_class="CorruptBody")


def protobuf_fetcher(client: Any) -> Callable[[int], ProtoSource]:
    """Adapt SchemaRegistryClient to the fetch contract, fetching referenced schemas (imports) too.

    Well-known imports (google/protobuf/*.proto) need no reference: protoc ships them.
    """

    def fetch(schema_id: int) -> ProtoSource:
        schema = _registry_call(schema_id, client.get_schema, schema_id)
        if schema.schema_type != "PROTOBUF":
            raise DecodeError(f"schema id {schema_id} is a {schema.schema_type or 'AVRO'} schema, not Protobuf",
                              error_class="IncompatibleSchema")
        imports: dict[str, str] = {}
        pending = list(schema.references or [])
        while pending:
            ref = pending.pop()
            if ref.name in imports:
                continue
            if len(imports) >= MAX_REFERENCES:
                raise DecodeError(f"schema id {schema_id} references more than {MAX_REFERENCES} schemas",
                                  error_class="InvalidProtobufSchema")
            registered = _registry_call(schema_id, client.get_version, ref.subject, ref.version)
            imports[ref.name] = registered.schema.schema_str
            pending.extend(registered.schema.references or [])
        text: str = schema.schema_str
        return text, imports

    return fetch


def _registry_call(schema_id: int, call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            raise SchemaNotFound(schema_id) from None
        raise RegistryUnavailable(f"schema id {schema_id}: {exc}") from exc
    except Exception as exc:  # httpx connection errors, timeouts, ...
        raise RegistryUnavailable(f"schema id {schema_id}: {type(exc).__name__}: {exc}") from exc


def frame(schema_id: int, payload: bytes, indexes: tuple[int, ...] = (0,)) -> bytes:
    """The Confluent Protobuf framing of `payload` (what producers write; [0] as the single byte 0)."""
    path = [0] if indexes == (0,) else [len(indexes), *indexes]
    return bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big") + _zigzag_varints(path) + payload


def _zigzag_varints(values: list[int]) -> bytes:
    out = bytearray()
    for value in values:
        encoded = (value << 1) ^ (value >> 63)
        while True:
            byte = encoded & 0x7F
            encoded >>= 7
            if encoded:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                break
    return bytes(out)
