"""Schemaless Avro: the value is just the Avro binary body, written with one fixed writer schema."""

from __future__ import annotations

from typing import Any

from connector.decode.base import MAX_NESTING_DEPTH, Schema, prepare_reader, prepare_writer
from connector.records import DecodeError


class PlainAvroDecoder:
    def __init__(self, writer_schema: Schema, reader_schema: Schema, *,
                 max_nesting_depth: int = MAX_NESTING_DEPTH) -> None:
        # Decided once: logical types, the nesting bound, and whether the schemas differ at all.
        self._writer = prepare_writer(writer_schema, prepare_reader(reader_schema), max_nesting_depth)

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value:
            raise DecodeError("record value is empty (a tombstone?)", error_class="EmptyValue")
        return self._writer.read(value, 0)
