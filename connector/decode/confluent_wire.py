"""Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body.

This is the hot path of the connector. Each writer schema is fetched and parsed once per schema id,
and compared with the reader schema once, so a record costs a dict lookup plus fastavro's read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka.schema_registry.error import SchemaRegistryError

from connector.decode.base import (
    MAX_NESTING_DEPTH,
    UNKNOWN_SCHEMA_RETRY_S,
    RegistryUnavailable,
    Schema,
    WriterSchema,
    prepare_reader,
    prepare_writer,
)
from connector.decode.registry_cache import RegistrySchemas
from connector.records import DecodeError

MAGIC_BYTE = 0
HEADER_SIZE = 5


class SchemaNotFound(LookupError):
    """Raised by a fetch function when the registry does not know the id (HTTP 404)."""


class ConfluentWireDecoder:
    """Decodes Confluent-framed Avro into dicts shaped by `reader_schema`.

    `fetch_schema(schema_id)` returns the writer schema's JSON text. It raises a LookupError
    (SchemaNotFound, KeyError) for an unknown id, RegistryUnavailable when the registry cannot
    answer, or DecodeError for a schema that can never be used; any other exception is treated
    as RegistryUnavailable.

    An unknown id raises SchemaNotYetKnown (retryable) until it has been unknown for
    `unknown_schema_retry_s`, then a DecodeError UnknownSchemaId; the registry is asked about it at
    most once a second meanwhile. Values nesting deeper than `max_nesting_depth` are NestingTooDeep.
    """

    def __init__(
        self,
        fetch_schema: Callable[[int], str],
        reader_schema: Schema,
        *,
        unknown_schema_retry_s: float = UNKNOWN_SCHEMA_RETRY_S,
        max_nesting_depth: int = MAX_NESTING_DEPTH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = prepare_reader(reader_schema)
        self._max_depth = max_nesting_depth
        self._writers = RegistrySchemas(fetch_schema, self._parse_writer,
                                        unknown_schema_retry_s=unknown_schema_retry_s, clock=clock)

    @classmethod
    def from_registry(cls, client: Any, reader_schema: Schema, **options: Any) -> ConfluentWireDecoder:
        """A decoder over confluent_kafka.schema_registry.SchemaRegistryClient (which caches too)."""
        return cls(registry_fetcher(client), reader_schema, **options)

    def decode(self, value: bytes | None) -> dict[str, Any]:
        schema_id = framed_schema_id(value)
        assert value is not None  # framed_schema_id rejects None
        return self._writers.get(schema_id).read(value, HEADER_SIZE)  # writer_for, one call less on the hot path

    def writer_for(self, schema_id: int) -> WriterSchema:
        """How records of `schema_id` are read (fetched and decided once per id)."""
        return self._writers.get(schema_id)

    def _parse_writer(self, schema_id: int, text: str) -> WriterSchema:
        try:
            return prepare_writer(json.loads(text), self._reader, self._max_depth)
        except Exception as exc:
            # Not cached: a registry never changes a schema id, but a broken fetch might be fixed.
            raise DecodeError(f"writer schema {schema_id} is not a valid Avro schema: {exc}",
                              error_class="IncompatibleSchema") from None


def framed_schema_id(value: bytes | None) -> int:
    """The schema id of a Confluent-framed value; DecodeError when it is not framed."""
    if not value:
        raise DecodeError("record value is empty (a tombstone?)", error_class="EmptyValue")
    if value[0] != MAGIC_BYTE:
        raise DecodeError(f"first byte is 0x{value[0]:02x}, expected the Confluent magic byte 0x00",
                          error_class="WrongMagicByte")
    if len(value) < HEADER_SIZE:
        raise DecodeError(f"value has {len(value)} bytes; the Confluent header alone has {HEADER_SIZE}",
                          error_class="Truncated")
    return int.from_bytes(value[1:HEADER_SIZE], "big")


def read_header(value: bytes | None) -> tuple[bytes, int]:
    """The value and its schema id when it is Confluent-framed; DecodeError when it is not."""
    schema_id = framed_schema_id(value)
    assert value is not None  # framed_schema_id rejects None
    return value, schema_id


def registry_fetcher(client: Any, schema_type: str = "AVRO") -> Callable[[int], str]:
    """Adapt SchemaRegistryClient.get_schema to the fetch contract (404 -> SchemaNotFound).

    `schema_type` is the registry's name of the one kind of schema the decoder reads ("AVRO", "JSON").
    """
    kind = {"AVRO": "Avro", "JSON": "JSON Schema"}.get(schema_type, schema_type)

    def fetch(schema_id: int) -> str:
        try:
            schema = client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise SchemaNotFound(schema_id) from None
            raise RegistryUnavailable(f"schema id {schema_id}: {exc}") from exc
        except Exception as exc:  # httpx connection errors, timeouts, ...
            raise RegistryUnavailable(f"schema id {schema_id}: {type(exc).__name__}: {exc}") from exc
        # These are facts about the record's schema, not outages: dead-letter, don't retry.
        if (schema.schema_type or "AVRO") != schema_type:
            raise DecodeError(f"schema id {schema_id} is a {schema.schema_type} schema, not {kind}",
                              error_class="IncompatibleSchema")
        if schema.references:
            # Named types from other subjects would need resolving first; not supported yet.
            raise DecodeError(f"schema id {schema_id} uses schema references, which are not supported",
                              error_class="IncompatibleSchema")
        text: str = schema.schema_str
        return text

    return fetch
