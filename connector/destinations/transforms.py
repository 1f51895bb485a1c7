"""The declarative transforms of an interaction mapping, compiled once per route.

A route's `mapping` may say how its time field is written (epoch seconds, milliseconds,
microseconds, ISO-8601, or the Kafka record's own timestamp) and within which window it must lie,
how `properties` keys and lists are shaped, and which records are left out. Each is compiled here
into one callable, so the hot path does no configuration lookups; with the defaults the callables
are the mapper's old conversions (`as_timestamp`) or absent (None), and a record maps exactly as
before. Imports only connector.config, connector.records and connector.destinations.fields.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from connector.config.models import FilterValue
from connector.destinations.fields import EPOCH, Getter, as_timestamp, compile_path
from connector.records import InvalidEvent, SourceRecord

TimeReader = Callable[[Any, SourceRecord], dt.datetime]
PropertyShaper = Callable[[dict[str, Any]], dict[str, Any]]
RecordFilter = Callable[[Mapping[str, Any]], bool]

LIST_SEPARATOR = "|"  # Personalize's separator of the values of a categorical field
_WORD_BREAK = re.compile(r"[_\-\s.]+")
_KEY_CACHE_MAX = 4096  # records bring their own keys: remember the usual ones, not every one


def compile_time(time_format: str, not_before: dt.datetime | None, max_ahead_s: float | None,
                 name: str) -> TimeReader:
    """The reader of a route's time field (`name`: sentAt or timestamp) from its value and record."""
    read = _time_converter(time_format, name)
    if not_before is None and max_ahead_s is None:
        return read
    floor = not_before

    def read_in_window(value: Any, source: SourceRecord) -> dt.datetime:
        when = read(value, source)
        if floor is not None and when < floor:
            raise InvalidEvent(
                f"{name}: {when.isoformat()} is before mapping.time_not_before ({floor.isoformat()}); "
                f"is mapping.time_format ({time_format}) the producer's unit?"
            )
        if max_ahead_s is not None and when.timestamp() > time.time() + max_ahead_s:
            raise InvalidEvent(
                f"{name}: {when.isoformat()} is more than mapping.time_max_ahead_s ({max_ahead_s:g} s) "
                f"in the future; is mapping.time_format ({time_format}) the producer's unit?"
            )
        return when

    return read_in_window


def _time_converter(time_format: str, name: str) -> TimeReader:
    if time_format == "epoch_millis":  # the historical rule, as_timestamp's
        return lambda value, source: as_timestamp(value, name)
    if time_format == "record_timestamp":
        return lambda value, source: _record_time(source, name)
    if time_format == "iso8601":
        return lambda value, source: _iso_time(value, name)
    scale = {"epoch_seconds": 1_000_000, "epoch_micros": 1}[time_format]
    return lambda value, source: _epoch_time(value, scale, time_format, name)


def _epoch_time(value: Any, micros_per_unit: int, unit: str, name: str) -> dt.datetime:
    """Epoch seconds (integer or fractional) or microseconds; a datetime (an Avro timestamp) as it is."""
    if isinstance(value, dt.datetime) or value is None:
        return as_timestamp(value, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(f"{name}: expected {unit.replace('_', ' ')} or a timestamp, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEvent(f"{name}: {value!r} is not a time")
        micros = round(value * micros_per_unit / 1000) * 1000  # to the millisecond, not below float noise
    else:
        micros = value * micros_per_unit
    try:
        return as_timestamp(EPOCH + dt.timedelta(microseconds=micros), name)
    except OverflowError:
        raise InvalidEvent(f"{name}: {value} ({unit}) is outside the representable dates") from None


def _iso_time(value: Any, name: str) -> dt.datetime:
    """An ISO-8601 string with a zone (Z or an offset); one without is rejected, never taken as UTC."""
    if isinstance(value, dt.datetime) or value is None:
        return as_timestamp(value, name)
    if not isinstance(value, str):
        raise InvalidEvent(f"{name}: expected an ISO-8601 string, got {type(value).__name__}")
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"{name}: {value[:64]!r} is not an ISO-8601 date and time") from None
    if when.tzinfo is None:
        raise InvalidEvent(f"{name}: {value[:64]!r} has no time zone (add Z or an offset such as +02:00)")
    return as_timestamp(when.astimezone(dt.UTC), name)


def _record_time(source: SourceRecord, name: str) -> dt.datetime:
    if source.timestamp_ms is None or source.timestamp_ms < 0:  # librdkafka's "not available" is -1
        raise InvalidEvent(f"{name}: the Kafka record has no timestamp (mapping.time_format is record_timestamp)")
    return as_timestamp(source.timestamp_ms, name)


def camel_case(key: str) -> str:
    """NUMBER_OF_RATINGS, number_of_ratings, Number-Of-Ratings -> numberOfRatings; numberOfRatings stays.

    Words are split at `_`, `-`, `.` and spaces. A word in one case is lower-cased (and capitalised
    after the first); a word in mixed case keeps its inner case (itemID -> itemID), so a key already
    in camelCase is unchanged. A key with no word at all ("__") stays as it is.
    """
    words = [w for w in _WORD_BREAK.split(key) if w]
    if not words:
        return key
    out = []
    for i, word in enumerate(words):
        if word.isupper() or word.islower():
            word = word.lower()
        out.append(word[0].upper() + word[1:] if i else word[0].lower() + word[1:])
    return "".join(out)


def compile_properties(property_keys: str, join_lists: bool) -> PropertyShaper | None:
    """The shaper of collected `properties`, or None when the mapping leaves them as they are."""
    if property_keys == "as_is" and not join_lists:
        return None
    camel = property_keys == "camelCase"
    cache: dict[str, str] = {}

    def shape(properties: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for key, value in properties.items():
            if camel:
                new_key = cache.get(key)
                if new_key is None:
                    new_key = camel_case(key)
                    if len(cache) < _KEY_CACHE_MAX:
                        cache[key] = new_key
                if new_key in origin:
                    raise InvalidEvent(
                        f"properties: {origin[new_key]!r} and {key!r} both become {new_key!r} in camelCase"
                    )
                origin[new_key] = key
                key = new_key
            if join_lists and isinstance(value, list | tuple):
                if not value:
                    continue  # no value: the field is absent, as Personalize reads an empty categorical
                value = _joined(value, key)
            out[key] = value
        return out

    return shape


def _joined(values: list[Any] | tuple[Any, ...], key: str) -> str:
    parts = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidEvent(f"properties.{key}: a list to join may hold only strings and integers, "
                               f"not {type(value).__name__}")
        part = str(value)
        if LIST_SEPARATOR in part:
            # Personalize has no escape for it: the value would silently become two categories.
            raise InvalidEvent(f"properties.{key}: {part[:64]!r} contains {LIST_SEPARATOR!r}, "
                               "the separator of categorical values")
        parts.append(part)
    return LIST_SEPARATOR.join(parts)


def compile_filter(include: Mapping[str, list[FilterValue]],
                   exclude: Mapping[str, list[FilterValue]]) -> RecordFilter | None:
    """Whether a decoded record is kept, or None when the mapping keeps every record."""
    if not include and not exclude:
        return None
    keep_if = [(compile_path(path), _value_set(values)) for path, values in include.items()]
    drop_if = [(compile_path(path), _value_set(values)) for path, values in exclude.items()]

    def keeps(record: Mapping[str, Any]) -> bool:
        return all(_matches(get, values, record) for get, values in keep_if) and not any(
            _matches(get, values, record) for get, values in drop_if
        )

    return keeps


def _value_set(values: list[FilterValue]) -> frozenset[tuple[type, FilterValue]]:
    # Typed pairs: 1, 1.0 and true are equal in Python, not in a filter (a flag is not a count).
    return frozenset((_kind(v), v) for v in values)


def _kind(value: Any) -> type:
    return float if type(value) is int else type(value)  # 3 and 3.0 are one number


def _matches(get: Getter, values: frozenset[tuple[type, FilterValue]], record: Mapping[str, Any]) -> bool:
    value = get(record)
    if not isinstance(value, bool | int | float | str):
        return False  # absent, null, a map or a list: equal to no configured value
    return (_kind(value), value) in values
