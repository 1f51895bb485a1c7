"""What every decoder promises: bytes in, a dict out, or a DecodeError that says what was wrong."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Protocol

import fastavro
from fastavro.read import SchemaResolutionError

import avro_schemas
from connector.records import DecodeError

Schema = dict[str, Any]
CANONICAL_SCHEMA = "interaction_event.avsc"


class Decoder(Protocol):
    def decode(self, value: bytes | None) -> dict[str, Any]:
        """The record as a dict; raises DecodeError (per record) and nothing else per record.

        A decoder that needs a remote service may also raise RegistryUnavailable, which is not
        about the record.
        """
        ...


class RegistryUnavailable(Exception):
    """The schema registry could not answer (network, 5xx, auth).

    Deliberately NOT a RecordError: the record is probably fine, the registry is not. Dead-lettering
    it would drain the whole topic into the DLQ during a registry outage, so the worker must back
    off and retry the same record instead.
    """


def load_schema(path: str | Path | None) -> Schema:
    """An .avsc file as a parsed fastavro schema; None means the packaged canonical schema."""
    text = Path(path).read_text("utf-8") if path is not None else canonical_schema_text()
    return parse(json.loads(text))


def canonical_schema_text() -> str:
    return avro_schemas.read(CANONICAL_SCHEMA)


def parse(schema: Any) -> Schema:
    parsed = fastavro.parse_schema(schema)
    if not isinstance(parsed, dict):
        raise ValueError(f"expected an Avro record schema, got {parsed!r:.80}")
    return parsed


def read_body(value: bytes, start: int, writer: Schema, reader: Schema | None) -> dict[str, Any]:
    """Decode the Avro binary body value[start:]; every failure becomes a specific DecodeError.

    `reader` is None when it equals the writer (fastavro then skips resolution entirely).
    """
    buf = io.BytesIO(value)
    buf.seek(start)
    try:
        record = fastavro.schemaless_reader(buf, writer, reader)
    except SchemaResolutionError as exc:
        raise DecodeError(f"writer schema cannot be read as the reader schema: {exc}",
                          error_class="IncompatibleSchema") from None
    except EOFError:
        raise DecodeError(f"Avro body ends early ({len(value) - start} bytes)",
                          error_class="Truncated") from None
    except Exception as exc:  # fastavro raises ValueError, IndexError, UnicodeDecodeError, ... on garbage
        raise DecodeError(f"Avro body cannot be decoded: {type(exc).__name__}: {exc}",
                          error_class="CorruptBody") from None
    # A valid prefix followed by junk usually means the wrong schema; don't accept it silently.
    trailing = len(value) - buf.tell()
    if trailing:
        raise DecodeError(f"{trailing} trailing byte(s) after the Avro record", error_class="CorruptBody")
    if not isinstance(record, dict):
        raise DecodeError(f"expected an Avro record, got {type(record).__name__}", error_class="CorruptBody")
    return record
