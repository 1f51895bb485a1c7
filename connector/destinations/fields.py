"""Field access and value conversion that every destination's mapper shares.

Dotted field paths are compiled once per mapper; identifiers, `properties` and Avro timestamps are
converted the same way whatever the API operation, so an item's properties read like an event's.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from connector.records import InvalidEvent

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Getter = Callable[[Mapping[str, Any]], Any]


def compile_path(path: str | None) -> Getter:
    """A getter for a dotted path; a missing key or a non-record on the way yields None."""
    if path is None:
        return lambda record: None
    parts = path.split(".")
    if len(parts) == 1:
        key = parts[0]
        return lambda record: record.get(key)

    def get(record: Mapping[str, Any]) -> Any:
        value: Any = record
        for part in parts:
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    return get


def collect_properties(
    record: Mapping[str, Any], from_map: Getter, fields: list[tuple[str, Getter]]
) -> dict[str, Any]:
    """`properties` from a map field and/or single fields named by their last path component."""
    found = from_map(record)
    if found is not None and not isinstance(found, Mapping):
        raise InvalidEvent(f"properties: expected a map, got {type(found).__name__}")
    properties = dict(found) if found else {}
    for name, get in fields:
        value = get(record)
        if value is not None:
            properties[name] = value
    return properties


def properties_json(properties: Mapping[str, Any]) -> str:
    """The `properties` JSON string: strict JSON, which has no NaN or Infinity."""
    try:
        return json.dumps(properties, separators=(",", ":"), allow_nan=False, default=api_json_value)
    except (TypeError, ValueError) as exc:
        # Only now look for the culprit (the hot path pays for one dumps, nothing more).
        where = _non_finite_path(properties, "properties")
        if where is not None:
            path, number = where
            raise InvalidEvent(
                f"{path}: {number!r} is not a JSON number (properties must be valid JSON; "
                "NaN and Infinity are not)"
            ) from None
        raise InvalidEvent(f"properties: cannot be written as JSON ({exc})") from None


def _non_finite_path(value: Any, path: str) -> tuple[str, float] | None:
    """Where in a properties value the first NaN/±Infinity sits (nested maps and lists too)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    if isinstance(value, Mapping):
        children: Iterable[tuple[str, Any]] = ((f"{path}.{k}", v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        children = ((f"{path}.{i}", v) for i, v in enumerate(value))
    else:
        return None
    for child_path, child in children:
        found = _non_finite_path(child, child_path)
        if found is not None:
            return found
    return None


def epoch_millis(when: dt.datetime) -> int:
    """A datetime as epoch milliseconds (floored); a naive one (Avro local-timestamp-*) is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when - EPOCH) // dt.timedelta(milliseconds=1)


def api_json_value(value: Any) -> Any:
    """json.dumps' `default` for properties: what the decoders hand over that JSON has no type for.

    Only Avro timestamps remain datetimes after decoding (connector.decode.logical converts the other
    logical types); in properties they are epoch milliseconds, like an integer sentAt. json calls this
    only for values it cannot write itself, so ordinary properties cost nothing more.
    """
    if isinstance(value, dt.datetime):
        return epoch_millis(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def as_id(value: Any, name: str) -> str | None:
    """Identifier-like fields: strings as they are, integers as decimal strings (schemas with long ids),
    timestamps as epoch milliseconds."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dt.datetime):  # an Avro timestamp: its epoch milliseconds, as in properties
        return str(epoch_millis(value))
    raise InvalidEvent(f"{name}: expected a string, got {type(value).__name__}")


def as_timestamp(value: Any, name: str) -> dt.datetime:
    """An aware UTC datetime with exactly millisecond precision (what PutEvents keeps), for `sentAt`
    and an action interaction's `timestamp`.

    An integer is epoch milliseconds, the Avro timestamp-millis convention (fastavro hands over a
    datetime when the schema declares the logical type, a plain long when it does not). Seconds are
    deliberately not guessed at: a long that is really seconds would land in January 1970.
    """
    if isinstance(value, dt.datetime):
        when: dt.datetime = value
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        if when.microsecond % 1000:
            when = when.replace(microsecond=when.microsecond - when.microsecond % 1000)
        return when
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return EPOCH + dt.timedelta(milliseconds=value)  # integer arithmetic: no float rounding
        except OverflowError:
            raise InvalidEvent(f"{name}: {value} ms is outside the representable dates") from None
    if value is None:
        raise InvalidEvent(f"{name}: is required")
    raise InvalidEvent(f"{name}: expected epoch milliseconds or a timestamp, got {type(value).__name__}")
