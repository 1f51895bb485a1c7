"""Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body.

This is the hot path of the connector. Each writer schema is fetched and parsed once per schema id,
and compared with the reader schema once, so a record costs a dict lookup plus fastavro's read.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry.error import SchemaRegistryError

from connector.decode.base import RegistryUnavailable, Schema, parse, read_body
from connector.records import DecodeError

MAGIC_BYTE = 0
HEADER_SIZE = 5
# A 404 may be a schema registered a moment after the record was produced (or a registry that is
# still replicating); ask again after this long instead of failing that id forever.
UNKNOWN_ID_TTL_S = 30.0
# After the registry failed to answer, fail fast for this long instead of asking again for every
# partition's next record: each attempt can block the poll loop for seconds.
OUTAGE_BACKOFF_S = 5.0


class SchemaNotFound(LookupError):
    """Raised by a fetch function when the registry does not know the id (HTTP 404)."""


@dataclass(frozen=True, slots=True)
class _Writer:
    schema: Schema
    reader: Schema | None  # None: identical to the writer, no resolution needed


class ConfluentWireDecoder:
    """Decodes Confluent-framed Avro into dicts shaped by `reader_schema`.

    `fetch_schema(schema_id)` returns the writer schema's JSON text. It raises a LookupError
    (SchemaNotFound, KeyError) for an unknown id, RegistryUnavailable when the registry cannot
    answer, or DecodeError for a schema that can never be used; any other exception is treated
    as RegistryUnavailable.
    """

    def __init__(self, fetch_schema: Callable[[int], str], reader_schema: Schema) -> None:
        self._fetch = fetch_schema
        self._reader = parse(reader_schema)
        self._writers: dict[int, _Writer] = {}
        self._unknown: dict[int, float] = {}  # schema id -> monotonic time of the 404
        self._outage_until = 0.0  # monotonic time until which the registry is taken as down
        self._outage: RegistryUnavailable | None = None
        self._lock = threading.Lock()  # decoders may be shared by threads; fetch each id once

    @classmethod
    def from_registry(cls, client: Any, reader_schema: Schema) -> ConfluentWireDecoder:
        """A decoder over confluent_kafka.schema_registry.SchemaRegistryClient (which caches too)."""
        return cls(registry_fetcher(client), reader_schema)

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value:
            raise DecodeError("record value is empty (a tombstone?)", error_class="EmptyValue")
        if value[0] != MAGIC_BYTE:
            raise DecodeError(f"first byte is 0x{value[0]:02x}, expected the Confluent magic byte 0x00",
                              error_class="WrongMagicByte")
        if len(value) < HEADER_SIZE:
            raise DecodeError(f"value has {len(value)} bytes; the Confluent header alone has {HEADER_SIZE}",
                              error_class="Truncated")
        schema_id = int.from_bytes(value[1:HEADER_SIZE], "big")
        writer = self._writers.get(schema_id) or self._load(schema_id)
        return read_body(value, HEADER_SIZE, writer.schema, writer.reader)

    def _load(self, schema_id: int) -> _Writer:
        with self._lock:
            cached = self._writers.get(schema_id)
            if cached is not None:
                return cached
            failed_at = self._unknown.get(schema_id)
            if failed_at is not None and time.monotonic() - failed_at < UNKNOWN_ID_TTL_S:
                raise _unknown_id(schema_id)
            if self._outage is not None and time.monotonic() < self._outage_until:
                raise RegistryUnavailable(f"schema id {schema_id}: the registry was unavailable moments ago "
                                          f"({self._outage})")
            try:
                text = self._fetch(schema_id)
            except LookupError:
                self._unknown[schema_id] = time.monotonic()
                raise _unknown_id(schema_id) from None
            except DecodeError:
                raise
            except Exception as exc:
                outage = exc if isinstance(exc, RegistryUnavailable) else RegistryUnavailable(
                    f"schema id {schema_id}: {type(exc).__name__}: {exc}")
                self._outage, self._outage_until = outage, time.monotonic() + OUTAGE_BACKOFF_S
                raise outage from exc
            self._outage = None
            self._unknown.pop(schema_id, None)
            writer = self._parse_writer(schema_id, text)
            self._writers[schema_id] = writer
            return writer

    def _parse_writer(self, schema_id: int, text: str) -> _Writer:
        try:
            schema = parse(json.loads(text))
        except Exception as exc:
            # Not cached: a registry never changes a schema id, but a broken fetch might be fixed.
            raise DecodeError(f"writer schema {schema_id} is not a valid Avro schema: {exc}",
                              error_class="IncompatibleSchema") from None
        # fastavro compares writer and reader on every call; decide it once here instead.
        if schema == self._reader:
            return _Writer(self._reader, None)
        return _Writer(schema, self._reader)


def _unknown_id(schema_id: int) -> DecodeError:
    return DecodeError(f"schema id {schema_id} is not registered", error_class="UnknownSchemaId")


def registry_fetcher(client: Any) -> Callable[[int], str]:
    """Adapt SchemaRegistryClient.get_schema to the fetch contract (404 -> SchemaNotFound)."""

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
        if (schema.schema_type or "AVRO") != "AVRO":
            raise DecodeError(f"schema id {schema_id} is a {schema.schema_type} schema, not Avro",
                              error_class="IncompatibleSchema")
        if schema.references:
            # Named types from other subjects would need resolving first; not supported yet.
            raise DecodeError(f"schema id {schema_id} uses schema references, which are not supported",
                              error_class="IncompatibleSchema")
        text: str = schema.schema_str
        return text

    return fetch
