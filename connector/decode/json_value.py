"""JSON values: bytes -> the dict the Avro decoders would give the mapper for the same event.

Parsed with orjson, chosen by measurement (bench/decode_cost.py): 1.0 us for a typical
320-byte event against 4.1 us for the standard library's json, 8.9 against 18.2 us for a 9 KB one.
msgspec is within 15% of orjson (0.9 / 8.7 us), not enough to matter next to the mapper's ~9 us;
orjson's errors give line, column and character, and its nesting bound is explicit. It also rejects what
Personalize could not take anyway: NaN / Infinity literals and numbers that overflow a double
(1e999) are malformed JSON, and integers beyond 64 bits are read as the nearest float. Duplicate
keys keep the last value, as JavaScript's JSON.parse and Python's json do, so a producer and the
connector agree on what a record says.

Shaping by the reader schema (the Avro schema of the route's destination, the packaged one by
default) makes a JSON record look like its Avro twin: absent fields get the schema's default (null,
{} or []), and an integer in a `timestamp-millis` / `timestamp-micros` field becomes the aware UTC
datetime fastavro would return. Anything else is left to the mapper, which checks every field it
sends; field names are whatever the producer wrote, mapped through `mapping` as for Avro.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import orjson

from connector.decode.base import MAX_NESTING_DEPTH, Schema
from connector.records import DecodeError

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TIMESTAMP_UNITS = {"timestamp-millis": "milliseconds", "timestamp-micros": "microseconds"}


class JsonShape:
    """How a parsed JSON object is completed to the reader schema's shape (decided once per schema)."""

    def __init__(self, reader_schema: Schema) -> None:
        fields = reader_schema.get("fields", [])
        self._defaults = [(f["name"], f["default"]) for f in fields if "default" in f]
        self._timestamps = [(f["name"], unit) for f in fields if (unit := _timestamp_unit(f["type"]))]

    def complete(self, record: dict[str, Any]) -> dict[str, Any]:
        for name, default in self._defaults:
            if name not in record:
                # A fresh copy: records must not share one mutable {} or [].
                record[name] = copy.copy(default) if isinstance(default, list | dict) else default
        for name, unit in self._timestamps:
            value = record.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                try:
                    record[name] = EPOCH + dt.timedelta(**{unit: value})
                except OverflowError:
                    raise DecodeError(f"{name}: {value} {unit} since 1970 is outside years 1..9999",
                                      error_class="InvalidLogicalValue") from None
        return record


def _timestamp_unit(avro_type: Any) -> str | None:
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    for branch in branches:
        if isinstance(branch, dict) and branch.get("type") == "long" and branch.get("logicalType") in _TIMESTAMP_UNITS:
            return _TIMESTAMP_UNITS[branch["logicalType"]]
    return None


def parse_object(body: bytes, max_depth: int = MAX_NESTING_DEPTH) -> dict[str, Any]:
    """The JSON object in `body`; DecodeError NotUtf8, MalformedJson, NestingTooDeep or NotAnObject."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _parse_error(exc) from None
    if not isinstance(value, dict):
        raise DecodeError(f"expected a JSON object, got {_json_kind(value)}", error_class="NotAnObject")
    # orjson bounds nesting at 1024 (no stack overflow); ours is tighter, for the mapper's recursion.
    # Fewer brackets than the bound cannot nest deeper: the usual record costs two counts in C.
    if body.count(b"{") + body.count(b"[") > max_depth:
        check_depth(value, max_depth)
    return value


def check_depth(value: Any, limit: int) -> None:
    """NestingTooDeep when objects and arrays in `value` nest deeper than `limit` (iterative walk)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise DecodeError(f"the JSON value nests deeper than {limit} levels (decode.max_nesting_depth)",
                              error_class="NestingTooDeep")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _parse_error(exc: orjson.JSONDecodeError) -> DecodeError:
    message = str(exc)
    if "depth limit exceeded" in message:
        return DecodeError(f"the JSON value nests deeper than orjson's 1024 levels: {message}",
                           error_class="NestingTooDeep")
    if "UTF-8" in message or "surrogate" in message:
        return DecodeError(f"value is not UTF-8 text: {message}", error_class="NotUtf8")
    return DecodeError(f"malformed JSON: {message}", error_class="MalformedJson")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return f"a {type(value).__name__} ({value!r:.40})"


class PlainJsonDecoder:
    """decode.format json: each value is one UTF-8 JSON object, no registry, no framing."""

    def __init__(self, reader_schema: Schema, *, max_nesting_depth: int = MAX_NESTING_DEPTH) -> None:
        self._shape = JsonShape(reader_schema)
        self._max_depth = max_nesting_depth

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value:
            raise DecodeError("record value is empty (a tombstone?)", error_class="EmptyValue")
        return self._shape.complete(parse_object(value, self._max_depth))
