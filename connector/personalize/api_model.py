"""Amazon Personalize Events API shapes and limits, read from botocore's own service model.

botocore validates `required`, types and `min` before it sends, but not `max`, `pattern` or the
service's documented rules that are not in the model (the JSON content of `properties`, its
reserved keys, the 10 KB per-event cap). Both sides of this project need those rules: the
connector checks an event before spending a call on it, and the emulator rejects what the real
service rejects. One validator, driven by the model, serves both so they cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.model import ListShape, OperationModel, ServiceModel, Shape, StructureShape

SERVICE = "personalize-events"

# Documented by the service but absent from the model (PutEvents API reference, "Event" data type;
# PutActionInteractions' "ActionInteraction" lists the same keys for its properties).
RESERVED_PROPERTY_KEYS = frozenset(
    k.lower() for k in ("userId", "sessionId", "eventType", "timestamp", "recommendationId", "impression")
)
MAX_EVENT_BYTES = 10 * 1024  # "the maximum size of an event is 10 KB"
# What botocore's serializer (and the AWS CLI) put on the wire for a float NaN / ±Infinity.
NON_FINITE_WIRE_VALUES = frozenset({"NaN", "Infinity", "-Infinity"})


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model(SERVICE)


@functools.cache
def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


def _input_shape(operation_name: str) -> StructureShape:
    shape = operation(operation_name).input_shape
    assert shape is not None, f"{operation_name} has no input"
    return shape


def _member(shape: Shape, *path: str) -> Shape:
    """Walk member names; lists are stepped through, and "member" names a list's element itself."""
    for name in path:
        if isinstance(shape, ListShape):
            shape = shape.member
            if name == "member":
                continue
        assert isinstance(shape, StructureShape), f"{shape.name} has no member {name}"
        shape = shape.members[name]
    return shape


def limit(operation_name: str, *path: str, key: str = "max") -> int:
    """A numeric limit of a request member, e.g. limit("PutEvents", "eventList") == 10.

    limit("PutEvents", "eventList", "impression", "member") is the limit of each impression id.
    """
    shape = _member(_input_shape(operation_name), *path)
    value = shape.metadata.get(key)
    if not isinstance(value, int):
        raise KeyError(f"{operation_name}.{'.'.join(path)} has no {key!r} limit in the service model")
    return value


@dataclass(frozen=True, slots=True)
class Violation:
    """One reason a request is invalid; `field` is a path such as eventList.3.properties."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_non_finite(value: Any) -> bool:
    if isinstance(value, str):
        return value in NON_FINITE_WIRE_VALUES
    return isinstance(value, float) and not math.isfinite(value)


def _check_shape(shape: Shape, value: Any, path: str) -> Iterator[Violation]:
    """Type, required, unknown-member, length and pattern checks for one value against its shape."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if not isinstance(value, Mapping):
            yield Violation(path, f"expected an object, got {type(value).__name__}")
            return
        for name in shape.required_members:
            if value.get(name) is None:
                yield Violation(_join(path, name), "is required")
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is None:
                yield Violation(_join(path, name), "is not a known field")
            elif member_value is not None:
                yield from _check_shape(member, member_value, _join(path, name))
    elif kind == "list":
        assert isinstance(shape, ListShape)
        if not isinstance(value, list):
            yield Violation(path, f"expected a list, got {type(value).__name__}")
            return
        yield from _check_length(len(value), meta, path, "items")
        for i, item in enumerate(value):
            yield from _check_shape(shape.member, item, f"{path}.{i}")
    elif kind == "string":
        if not isinstance(value, str):
            yield Violation(path, f"expected a string, got {type(value).__name__}")
            return
        yield from _check_length(len(value), meta, path, "characters")
        pattern = meta.get("pattern")
        if pattern and not model_pattern(pattern).search(value):
            yield Violation(path, f"does not match the pattern {pattern}")
    elif kind in ("float", "double", "integer", "long"):
        if _is_non_finite(value):
            # botocore's rest-json serializer turns a float NaN/Infinity into these strings; JSON
            # has no such numbers, and an eventValue of NaN means nothing to a recommender.
            yield Violation(path, f"must be a finite number, got {value!r}")
        elif not _is_number(value):
            yield Violation(path, f"expected a number, got {type(value).__name__}")
    elif kind == "timestamp":
        # On the wire rest-json sends epoch seconds (integer or fractional); before serialisation
        # a caller may hold a datetime.
        if not (_is_number(value) or isinstance(value, dt.datetime)):
            yield Violation(path, f"expected epoch seconds, got {type(value).__name__}")
    elif kind == "boolean" and not isinstance(value, bool):
        yield Violation(path, f"expected a boolean, got {type(value).__name__}")


@functools.cache
def model_pattern(pattern: str) -> re.Pattern[str]:
    # Model patterns are ECMA-262 regexes, where `$` matches only at the very end; Python's `$`
    # also matches before a trailing newline, which would let "abc\n" through.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + "\\Z"
    return re.compile(pattern)


def _check_length(n: int, meta: Mapping[str, Any], path: str, unit: str) -> Iterator[Violation]:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and n < lo:
        yield Violation(path, f"has {n} {unit}; the minimum is {lo}")
    if hi is not None and n > hi:
        yield Violation(path, f"has {n} {unit}; the maximum is {hi}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def check_properties_json(text: str, path: str, reserved: frozenset[str] = frozenset()) -> Iterator[Violation]:
    """`properties` is a string holding a flat JSON object (the service parses it)."""
    try:
        # Strict JSON (RFC 8259): Python's json accepts the NaN/Infinity/-Infinity tokens, the
        # service's parser does not.
        parsed = json.loads(text, parse_constant=_reject_non_finite)
    except json.JSONDecodeError as exc:
        yield Violation(path, f"is not valid JSON ({exc.msg})")
        return
    except ValueError as exc:
        yield Violation(path, f"is not valid JSON ({exc})")
        return
    if not isinstance(parsed, dict):
        yield Violation(path, "must be a JSON object")
        return
    for key in parsed:
        if key.lower() in reserved:
            yield Violation(path, f"must not contain the reserved key {key!r}")


def _reject_non_finite(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def _event_service_rules(event: Mapping[str, Any], path: str) -> Iterator[Violation]:
    """The documented PutEvents rules the model cannot express."""
    props = event.get("properties")
    if isinstance(props, str):
        yield from check_properties_json(props, _join(path, "properties"), RESERVED_PROPERTY_KEYS)
    # UTF-8 bytes of the compact JSON: with json's default ensure_ascii a non-ASCII character would
    # count as a 6-byte \uXXXX escape and valid events with non-Latin text would be rejected.
    size = len(json.dumps(event, default=str, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_EVENT_BYTES:
        yield Violation(path, f"is {size} bytes; the maximum event size is {MAX_EVENT_BYTES}")


# Which list member of each write operation carries its entries (events, items, users, actions,
# action interactions).
_ENTRY_LISTS = {
    "PutEvents": "eventList",
    "PutItems": "items",
    "PutUsers": "users",
    "PutActions": "actions",
    "PutActionInteractions": "actionInteractions",
}


def check_entry(operation_name: str, entry: Mapping[str, Any], path: str = "entry") -> list[Violation]:
    """All rules for one entry of a write call (an Event, Item, User, Action or ActionInteraction):
    model limits plus the documented service rules."""
    shape = _member(_input_shape(operation_name), _ENTRY_LISTS[operation_name])
    assert isinstance(shape, ListShape)
    return [*_check_shape(shape.member, entry, path), *_service_rules(operation_name, entry, path)]


def _service_rules(operation_name: str, entry: Mapping[str, Any], path: str) -> Iterator[Violation]:
    if operation_name == "PutEvents":
        yield from _event_service_rules(entry, path)
    elif isinstance(entry.get("properties"), str):
        # An action interaction's properties may not use the reserved keys of an event's (the
        # ActionInteraction data type lists the same six); items', users' and actions' have none.
        reserved = RESERVED_PROPERTY_KEYS if operation_name == "PutActionInteractions" else frozenset()
        yield from check_properties_json(entry["properties"], _join(path, "properties"), reserved)


def check_event(event: Mapping[str, Any], path: str = "event") -> list[Violation]:
    """All rules for one PutEvents `Event`."""
    return check_entry("PutEvents", event, path)


def check_request(operation_name: str, request: Mapping[str, Any]) -> list[Violation]:
    """Every violation of a whole request body (as JSON-decoded from the wire, or as boto3 params)."""
    violations = list(_check_shape(_input_shape(operation_name), request, ""))
    list_name = _ENTRY_LISTS.get(operation_name)
    entries = request.get(list_name) if list_name else None
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, Mapping):
            continue
        violations.extend(_service_rules(operation_name, entry, f"{list_name}.{i}"))
    return violations
