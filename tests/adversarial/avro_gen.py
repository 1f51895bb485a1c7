"""Hypothesis strategies for Avro writer schemas and values: nesting, recursion, every logical type
of the Avro 1.11 specification, unions, and values at and beyond the API's size limits.

Every generated schema is a variant of the canonical InteractionEvent: its fields keep their names
(so the default mapping finds them) with the canonical type, a type the reader can promote from,
or (when the generated schema is also the reader schema) an API-plausible logical type, followed by
extra fields of generated types that a canonical reader must skip. Recursive named types are
records whose last field is ["null", <itself>]; deep values of them are encoded by hand
(`deep_chain`) because fastavro's writer recurses too and would crash the test process.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from hypothesis import strategies as st

CANONICAL: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "avro_schemas" / "interaction_event.avsc").read_text())

PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
# (logicalType, underlying type) of the Avro 1.11 specification ("decimal" and "duration" separately).
LOGICAL = (("uuid", "string"), ("date", "int"), ("time-millis", "int"), ("time-micros", "long"),
           ("timestamp-millis", "long"), ("timestamp-micros", "long"),
           ("local-timestamp-millis", "long"), ("local-timestamp-micros", "long"))

# API limits the values are drawn at and just beyond (PutEvents; botocore's model and the docs).
ID_LIMIT = 256
RECOMMENDATION_ID_LIMIT = 40
PROPERTIES_LIMIT = 1024
IMPRESSION_LIMIT = 25
EVENT_LIMIT = 10 * 1024


class Names:
    """Unique names for the named types of one schema."""

    def __init__(self) -> None:
        self.n = 0

    def next(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"


@st.composite
def avro_type(draw: st.DrawFn, names: Names, depth: int = 0) -> Any:
    """Any Avro type: primitives, logical types, records (possibly recursive), enums, fixed, arrays,
    maps and unions, nested up to a few levels."""
    kinds = ["primitive", "logical", "decimal"] + (["record", "recursive", "array", "map", "union", "enum",
                                                     "fixed"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "primitive":
        return draw(st.sampled_from(PRIMITIVES))
    if kind == "logical":
        logical, base = draw(st.sampled_from(LOGICAL))
        return {"type": base, "logicalType": logical}
    if kind == "decimal":
        precision = draw(st.integers(1, 20))
        scale = draw(st.integers(0, precision))
        if draw(st.booleans()):
            return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}
        return {"type": "fixed", "name": names.next("Dec"), "size": 16, "logicalType": "decimal",
                "precision": precision, "scale": scale}
    if kind == "enum":
        return {"type": "enum", "name": names.next("E"), "symbols": ["A", "B", "C"][: draw(st.integers(1, 3))]}
    if kind == "fixed":
        if draw(st.booleans()):
            return {"type": "fixed", "name": names.next("Dur"), "size": 12, "logicalType": "duration"}
        return {"type": "fixed", "name": names.next("F"), "size": draw(st.integers(0, 8))}
    if kind == "array":
        return {"type": "array", "items": draw(avro_type(names, depth + 1))}
    if kind == "map":
        return {"type": "map", "values": draw(avro_type(names, depth + 1))}
    if kind == "union":
        # Unions may not hold two types of one kind nor other unions: null plus a non-union type.
        branch = draw(avro_type(names, depth + 1).filter(lambda t: not isinstance(t, list) and t != "null"))
        return ["null", branch] if draw(st.booleans()) else [branch, "null"]
    return draw(record_type(names, depth + 1, recursive=kind == "recursive"))


@st.composite
def record_type(draw: st.DrawFn, names: Names, depth: int, recursive: bool = False) -> dict[str, Any]:
    name = names.next("Node" if recursive else "R")
    fields = [{"name": f"f{i}", "type": draw(avro_type(names, depth))} for i in range(draw(st.integers(0, 3)))]
    if recursive:
        fields.append({"name": "next", "type": ["null", name]})
    return {"type": "record", "name": name, "fields": fields}


@dataclass
class Case:
    """One generated record: its writer schema, whether it is also the reader schema (else the
    canonical schema is), its Avro binary body and what kind of case it is. `value` and `tail`
    (the hand-encoded recursive last field, if any) allow re-encoding with other identifiers."""

    writer: dict[str, Any]
    body: bytes
    reader_is_writer: bool
    label: str
    value: dict[str, Any] | None = None
    tail: bytes = b""

    def with_identity(self, event_id: str, tracking_id: str) -> Case:
        """The same case with eventId and trackingId set where their writer types hold a string, so
        a delivery can be traced back to its record (a test's own tracker); else unchanged."""
        if self.value is None:
            return self
        value = dict(self.value)
        for name, wanted in (("eventId", event_id), ("trackingId", tracking_id)):
            kind = next(f["type"] for f in self.writer["fields"] if f["name"] == name)
            if kind in ("string", ["null", "string"], ["string", "null"]):
                value[name] = wanted
            elif kind in ("bytes", ["null", "bytes"], ["bytes", "null"]):
                value[name] = wanted.encode()
        fields = [f for f in self.writer["fields"] if f["name"] != "tail"]
        body = encode({**self.writer, "fields": fields}, value) + self.tail
        return Case(self.writer, body, self.reader_is_writer, self.label, value, self.tail)


def _named(schema: Any, out: dict[str, Any]) -> dict[str, Any]:
    """Named types of a schema by name (for values of recursive references)."""
    if isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed"):
            out[schema["name"]] = schema
        for f in schema.get("fields", []):
            _named(f["type"], out)
        for key in ("items", "values"):
            if key in schema:
                _named(schema[key], out)
    elif isinstance(schema, list):
        for branch in schema:
            _named(branch, out)
    return out


def value_of(draw: st.DrawFn, schema: Any, named: dict[str, Any], depth: int = 0) -> Any:
    """A value that fastavro can write with `schema` (recursion bounded by `depth`)."""
    if isinstance(schema, str) and schema in named:
        return value_of(draw, named[schema], named, depth)
    if isinstance(schema, list):
        if depth > 4 and "null" in schema:
            return None  # bounds recursive values: the null branch ends the chain
        return value_of(draw, draw(st.sampled_from(schema)), named, depth + 1)
    if isinstance(schema, str):
        return _primitive(draw, schema)
    logical = schema.get("logicalType")
    kind = schema["type"]
    if logical == "decimal":
        digits = draw(st.integers(-(10 ** schema["precision"]) + 1, 10 ** schema["precision"] - 1))
        return decimal.Decimal(digits).scaleb(-schema["scale"])
    if logical == "uuid":
        return uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))
    if logical == "date":
        return draw(st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)))
    if logical in ("time-millis", "time-micros"):
        t = draw(st.times())
        return t.replace(microsecond=t.microsecond - t.microsecond % 1000) if logical == "time-millis" else t
    if logical in ("timestamp-millis", "timestamp-micros"):
        return draw(st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)))
    if logical in ("local-timestamp-millis", "local-timestamp-micros"):
        return draw(st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2200, 1, 1)))
    if kind == "record":
        return {f["name"]: value_of(draw, f["type"], named, depth + 1) for f in schema["fields"]}
    if kind == "enum":
        return draw(st.sampled_from(schema["symbols"]))
    if kind == "fixed":
        return draw(st.binary(min_size=schema["size"], max_size=schema["size"]))
    if kind == "array":
        return [value_of(draw, schema["items"], named, depth + 1) for _ in range(draw(st.integers(0, 2)))]
    if kind == "map":
        return {draw(st.text(max_size=5)): value_of(draw, schema["values"], named, depth + 1)
                for _ in range(draw(st.integers(0, 2)))}
    return _primitive(draw, kind)


_PRIMITIVE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(), "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1), "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32), "double": st.floats(), "bytes": st.binary(max_size=20),
    "string": st.text(max_size=20),
}


def _primitive(draw: st.DrawFn, kind: str) -> Any:
    return draw(_PRIMITIVE_VALUES[kind])


def encode(schema: dict[str, Any], value: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(json.dumps(schema))), value)
    return buf.getvalue()


def deep_chain(node: dict[str, Any], level: bytes, depth: int) -> bytes:
    """The Avro binary of a chain of `depth` nodes of the recursive record `node` (last field
    ["null", node]), each level's other fields encoded as `level`: built without recursion."""
    assert node["fields"][-1]["type"] == ["null", node["name"]]
    return (level + b"\x02") * depth + level + b"\x00"


def sized_text(draw: st.DrawFn, limit: int) -> str:
    """Text whose length is at, just below or just beyond `limit`, or ordinary."""
    n = draw(st.sampled_from([1, limit - 1, limit, limit + 1, 2 * limit]))
    char = draw(st.sampled_from(["a", "é", "😀", "\x00", '"']))
    return char * n


# --- whole records -------------------------------------------------------------------------------

ID_FIELDS = {"eventId": ID_LIMIT, "trackingId": ID_LIMIT, "sessionId": ID_LIMIT, "userId": ID_LIMIT,
             "eventType": ID_LIMIT, "itemId": ID_LIMIT, "recommendationId": RECOMMENDATION_ID_LIMIT,
             "eventAttributionSource": 1024}
UUID = {"type": "string", "logicalType": "uuid"}
PROPERTY_VALUE_TYPES = ["string", "long", "double", "boolean"]


def _canonical_type(name: str) -> Any:
    return next(f["type"] for f in CANONICAL["fields"] if f["name"] == name)


def _field_type(draw: st.DrawFn, name: str, own_reader: bool, names: Names) -> Any:
    """The writer type of a canonical field: canonical, promotable to it, API-plausible (own reader)
    or, rarely, anything at all (a canonical reader then cannot resolve it: a decode error)."""
    canonical = _canonical_type(name)
    if draw(st.integers(0, 59)) == 0:
        return draw(avro_type(names))
    if name in ID_FIELDS:
        options = [canonical, "string", "bytes"] if not own_reader else [canonical, "string", UUID, "long",
                                                                         ["null", UUID]]
    elif name == "eventValue":
        options = [canonical, "float", "int", "long"] + (
            ["double", {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2}] if own_reader else [])
    elif name == "sentAt":
        options = [canonical, "long"] + ([{"type": "long", "logicalType": lt} for lt in (
            "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros")] if own_reader else [])
    elif name == "properties":
        extra = [UUID, {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 3},
                 {"type": "int", "logicalType": "date"}] if own_reader else []
        options = [canonical, {"type": "map", "values": PROPERTY_VALUE_TYPES + extra}]
        if own_reader:
            options.append({"type": "map", "values": {"type": "map", "values": "string"}})
    elif name == "impression":
        options = [canonical] + ([{"type": "array", "items": UUID}] if own_reader else [])
    else:
        options = [canonical]
    return draw(st.sampled_from(options))


def _field_value(draw: st.DrawFn, name: str, schema: Any, named: dict[str, Any]) -> Any:
    """Mostly plausible values (so cases reach the mapping and its limits), sometimes anything."""
    base = schema[1] if isinstance(schema, list) and schema[0] == "null" else schema
    if name == "trackingId" and isinstance(schema, list) and "null" in schema and draw(st.integers(0, 7)):
        return None  # the configured tracker, as almost every producer does
    if name in ID_FIELDS and base in ("string", "bytes") and draw(st.integers(0, 15)):
        text = draw(st.from_regex(r"\A[a-z0-9-]{1,12}\Z") if draw(st.integers(0, 19)) else st.builds(
            lambda n, c: c * n, st.sampled_from([ID_FIELDS[name] - 1, ID_FIELDS[name], ID_FIELDS[name] + 1]),
            st.sampled_from(["a", "é", "😀", "\x00", '"'])))
        return text.encode() if base == "bytes" else text
    if name == "sentAt" and base == "long" and draw(st.integers(0, 7)):
        return draw(st.integers(1_600_000_000_000, 1_900_000_000_000))
    if name == "eventValue" and base in ("float", "double") and draw(st.booleans()):
        return draw(st.sampled_from([float("nan"), float("inf"), float("-inf"), 4.5, 0.0, -1e38]))
    if name == "properties" and isinstance(base, dict) and base.get("type") == "map" and draw(st.integers(0, 2)):
        n = draw(st.sampled_from([0, 1, 3, 100]))
        values = base["values"]
        # Now and then a reserved key (userId, timestamp: refused by the service, in any case).
        first = draw(st.sampled_from(["k", "score", "device", "userId", "Timestamp"]))
        return {(first if i == 0 else f"k{i}"): value_of(draw, values, named) for i in range(n)}
    if name == "impression" and isinstance(base, dict) and base.get("type") == "array" and draw(st.booleans()):
        n = draw(st.sampled_from([0, 1, IMPRESSION_LIMIT, IMPRESSION_LIMIT + 1]))
        return [value_of(draw, base["items"], named) for _ in range(n)]
    return value_of(draw, schema, named)


@st.composite
def record_cases(draw: st.DrawFn, own_reader: bool, deep_tail: bool = False,
                 depths: tuple[int, ...] = (50, 5_000, 50_000)) -> Case:
    """A canonical-like record with generated field types and extras; with `deep_tail`, a recursive
    last field nested one of `depths` levels deep."""
    names = Names()
    fields: list[dict[str, Any]] = []
    value: dict[str, Any] = {}
    for f in CANONICAL["fields"]:
        ftype = _field_type(draw, f["name"], own_reader, names)
        fields.append({"name": f["name"], "type": ftype})
    for i in range(draw(st.integers(0, 3))):
        fields.append({"name": f"extra{i}", "type": draw(avro_type(names))})
    writer = {"type": "record", "name": "InteractionEvent", "namespace": "com.personalize.connector",
              "fields": fields}
    named = _named(writer, {})
    for f in fields:
        value[f["name"]] = _field_value(draw, f["name"], f["type"], named)
    label = "own-reader" if own_reader else "canonical-reader"
    deep = draw(st.sampled_from(depths)) if deep_tail else 0
    if deep:
        # A recursive tail nested `deep` levels: what overflows a recursive C decoder's stack.
        node = draw(record_type(names, 2, recursive=True))
        named = _named(node, named)
        level = value_of(draw, {"type": "record", "name": "Level", "fields": node["fields"][:-1]}, named)
        tail = deep_chain(node, encode({"type": "record", "name": "Level", "fields": node["fields"][:-1]}, level),
                          deep)
        writer["fields"].append({"name": "tail", "type": node})
        body = encode({**writer, "fields": fields[:-1]}, value) + tail
        return Case(writer, body, own_reader, f"recursive-depth-{deep}", value, tail)
    return Case(writer, encode(writer, value), own_reader, label, value)


def valid_canonical_value(n: int = 0) -> dict[str, Any]:
    return {"eventId": f"e-{n}", "trackingId": None, "sessionId": "s-1", "userId": "u-1", "eventType": "view",
            "eventValue": 1.5, "itemId": "i-1", "properties": {"k": "v"}, "sentAt": 1_748_736_000_000,
            "recommendationId": None, "impression": [], "eventAttributionSource": None}


@st.composite
def limit_cases(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid canonical record with one field at, just below or beyond one of the API's limits, or
    holding a value JSON cannot carry (NaN, Infinity); (label, value)."""
    value = valid_canonical_value()
    target = draw(st.sampled_from(["id", "eventValue", "property-number", "properties-size", "impression",
                                   "event-size", "recommendationId"]))
    if target == "id":
        name = draw(st.sampled_from(["eventId", "sessionId", "userId", "eventType", "itemId", "trackingId"]))
        delta = draw(st.sampled_from([-1, 0, 1]))
        char = draw(st.sampled_from(["a", "é", "😀", "\x00", '"']))
        value[name] = char * (ID_LIMIT + delta)
        return f"{name}-len-limit{delta:+d}", value
    if target == "recommendationId":
        delta = draw(st.sampled_from([-1, 0, 1]))
        value["recommendationId"] = "r" * (RECOMMENDATION_ID_LIMIT + delta)
        return f"recommendationId-len-limit{delta:+d}", value
    if target == "eventValue":
        value["eventValue"] = draw(st.sampled_from([float("nan"), float("inf"), float("-inf"), 3.4e38]))
        return f"eventValue-{value['eventValue']}", value
    if target == "property-number":
        number = draw(st.sampled_from([float("nan"), float("inf"), float("-inf"), 2**63 - 1, 1e308]))
        value["properties"] = {"score": number}
        return f"property-{number}", value
    if target == "properties-size":
        delta = draw(st.sampled_from([-1, 0, 1]))
        # {"k":"<fill>"} is 8 characters of JSON around the fill.
        value["properties"] = {"k": "x" * (PROPERTIES_LIMIT - 8 + delta)}
        return f"properties-json-len-limit{delta:+d}", value
    if target == "impression":
        delta = draw(st.sampled_from([-1, 0, 1]))
        value["impression"] = [f"i{k}" for k in range(IMPRESSION_LIMIT + delta)]
        return f"impression-count-limit{delta:+d}", value
    value["impression"] = ["i" * ID_LIMIT] * draw(st.sampled_from([20, 24, 25]))
    value["eventAttributionSource"] = "a" * draw(st.sampled_from([500, 1000, 1024]))
    return "event-size-near-10KB", value
