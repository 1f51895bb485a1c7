"""Schemaless Avro: the value is just the Avro binary body, written with one fixed writer schema."""

from __future__ import annotations

from typing import Any

from connector.decode.base import Schema, parse, read_body
from connector.records import DecodeError


class PlainAvroDecoder:
    def __init__(self, writer_schema: Schema, reader_schema: Schema) -> None:
        self._writer = parse(writer_schema)
        reader = parse(reader_schema)
        # Decided once: fastavro would otherwise compare the two schemas on every record.
        self._reader: Schema | None = None if reader == self._writer else reader

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value:
            raise DecodeError("record value is empty (a tombstone?)", error_class="EmptyValue")
        return read_body(value, 0, self._writer, self._reader)
