"""Hostile Avro that the decoders must survive: recursive schemas nested deep, and logical types.

Nesting: fastavro's C reader recurses once per nested record without a bound; a recursive writer
schema and a value a few thousand levels deep kill the process with SIGSEGV (the worker-level
regression test is tests/integration/test_hostile_avro.py, with a subprocess worker). Logical
types: fastavro hands over UUID, Decimal, date, time and datetime objects, which neither the id
fields nor JSON `properties` accept.
Every logical type of the Avro 1.11 spec (and 1.12's nanos and fixed uuid) goes through the
decoder and the EventMapper here, in properties, as ids and as sentAt.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import io
import json
import uuid
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config import EntityMappingConfig, MappingConfig
from connector.decode import ConfluentWireDecoder, PlainAvroDecoder, SchemaNotYetKnown, load_schema
from connector.decode.base import canonical_schema_text, parse
from connector.decode.nesting import check_nesting, static_depth
from connector.destinations.entities import EntityMapper
from connector.destinations.events import EventMapper
from connector.destinations.items import ITEMS
from connector.records import DecodeError, InvalidEvent, SourceRecord

CANONICAL: dict[str, Any] = json.loads(canonical_schema_text())
SOURCE = SourceRecord("interactions", 0, 7, None, None)
SENT_AT_MS = 1_714_566_615_123  # 2024-05-01T12:30:15.123Z

# A linked list: a record type that contains itself.
NODE = {"type": "record", "name": "Node", "fields": [
    {"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"]}]}


def _framed(body: bytes, schema_id: int = 1) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + body


def _avro(schema: Any, value: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(json.dumps(schema))), value)
    return buf.getvalue()


def _chain(levels: int) -> bytes:
    """A Node list `levels` records long, encoded by hand: fastavro's writer would overflow too."""
    return b"\x02\x02" * (levels - 1) + b"\x02\x00"  # value 1, union branch 1 (Node) ... last: null


def _canonical_event(**changes: Any) -> dict[str, Any]:
    return {"eventId": "e-1", "trackingId": None, "sessionId": "s-1", "userId": "u-1", "eventType": "click",
            "eventValue": None, "itemId": "i-1", "properties": {}, "sentAt": SENT_AT_MS,
            "recommendationId": None, "impression": [], "eventAttributionSource": None, **changes}


def _with_chain() -> dict[str, Any]:
    """The canonical schema plus a recursive field at the end, as an evolved producer might have it."""
    return {**CANONICAL, "fields": [*CANONICAL["fields"],
                                    {"name": "chain", "type": ["null", NODE], "default": None}]}


def _event_with_chain(levels: int) -> bytes:
    """A canonical event followed by a chain of `levels` nodes (fields are encoded in order)."""
    canonical_part = _avro(CANONICAL, _canonical_event())
    return canonical_part + (b"\x02" + _chain(levels) if levels else b"\x00")


# ----------------------------------------------------------------------------- nesting


def test_a_recursive_schema_has_no_static_bound_and_ordinary_ones_do() -> None:
    assert static_depth(parse(NODE)) == float("inf")
    assert static_depth(parse(_with_chain())) == float("inf")
    assert static_depth(load_schema(None)) == 2  # the record, and its map or array fields


def test_a_deep_value_of_a_recursive_writer_is_nesting_too_deep_in_this_process() -> None:
    dec = ConfluentWireDecoder(lambda _id: json.dumps(_with_chain()), load_schema(None))
    with pytest.raises(DecodeError) as caught:
        dec.decode(_framed(_event_with_chain(20_000)))
    assert caught.value.error_class == "NestingTooDeep"
    assert "64 levels" in caught.value.message and "decode.max_nesting_depth" in caught.value.message
    # Shallow values of the same schema are decoded (and resolved to the reader: the chain is dropped).
    for levels in (0, 1, 10, 62):
        assert dec.decode(_framed(_event_with_chain(levels)))["sessionId"] == "s-1"


def test_the_bound_is_exact_and_configurable() -> None:
    # The Node record at the top is depth 1; each further node is one level deeper.
    dec = PlainAvroDecoder(parse(NODE), parse(NODE), max_nesting_depth=5)
    assert dec.decode(_chain(5))["value"] == 1
    with pytest.raises(DecodeError, match="more than 5 levels"):
        dec.decode(_chain(6))


def test_a_value_at_the_bound_goes_through_the_mapper_and_json() -> None:
    """The decoded dict must not crash later stages: json.dumps of properties, the mapper's checks."""
    head = [{"name": "sessionId", "type": "string"}, {"name": "eventType", "type": "string"},
            {"name": "sentAt", "type": "long"}]
    schema = {"type": "record", "name": "Event", "fields": [*head, {"name": "chain", "type": ["null", NODE]}]}
    dec = PlainAvroDecoder(parse(schema), parse(schema), max_nesting_depth=64)
    prefix = _avro({"type": "record", "name": "Event", "fields": head},
                   {"sessionId": "s-1", "eventType": "view", "sentAt": SENT_AT_MS})
    record = dec.decode(prefix + b"\x02" + _chain(63))  # the event is depth 1, its 63 nodes 2..64
    with pytest.raises(DecodeError, match="more than 64 levels"):
        dec.decode(prefix + b"\x02" + _chain(64))
    mapper = EventMapper(MappingConfig(property_fields=["chain"], properties=None), "tracker")
    try:
        event = mapper.to_event(record, SOURCE)
    except InvalidEvent as exc:  # too long for properties is a fine answer; a crash is not
        assert "properties" in exc.message
    else:
        assert json.loads(event.body["properties"])["chain"]["value"] == 1


def test_the_largest_allowed_bound_fits_python_s_stack_in_a_thread() -> None:
    """decode.max_nesting_depth allows 200: the walk, fastavro and json.dumps must all manage that
    on a worker thread (the in-process test workers run on threads; so could a caller's)."""
    import threading

    head = [{"name": "sessionId", "type": "string"}, {"name": "eventType", "type": "string"},
            {"name": "sentAt", "type": "long"}]
    schema = {"type": "record", "name": "Event", "fields": [*head, {"name": "chain", "type": ["null", NODE]}]}
    prefix = _avro({"type": "record", "name": "Event", "fields": head},
                   {"sessionId": "s-1", "eventType": "view", "sentAt": SENT_AT_MS})
    dec = PlainAvroDecoder(parse(schema), parse(schema), max_nesting_depth=200)
    outcome: list[object] = []

    def run() -> None:
        record = dec.decode(prefix + b"\x02" + _chain(199))
        outcome.append(len(json.dumps(record["chain"])))
        try:
            dec.decode(prefix + b"\x02" + _chain(5_000))
        except DecodeError as exc:
            outcome.append(exc.error_class)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert len(outcome) == 2 and outcome[1] == "NestingTooDeep", outcome


def test_the_walk_does_not_spin_through_a_huge_count_of_zero_byte_items() -> None:
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "nulls", "type": {"type": "array", "items": "null"}}, {"name": "next", "type": ["null", "R"]}]}
    # One block claiming 2**60 nulls (zero bytes each), the end of the array, then no next record.
    check_nesting(_avro("long", 2**60) + b"\x00\x00", 0, parse(schema), 64)


TREE = {"type": "record", "name": "T", "fields": [
    {"name": "label", "type": "string"},
    {"name": "kids", "type": {"type": "array", "items": "T"}},
    {"name": "attrs", "type": {"type": "map", "values": ["null", "T", "double", "long", "boolean", "bytes"]}},
    {"name": "tag", "type": {"type": "enum", "name": "Tag", "symbols": ["A", "B"]}},
    {"name": "raw", "type": {"type": "fixed", "name": "Raw", "size": 2}},
    {"name": "n", "type": ["int", "float", "null"]},
]}
_leaf = st.fixed_dictionaries({
    "label": st.text(max_size=5), "kids": st.just([]), "attrs": st.dictionaries(
        st.text(max_size=3), st.one_of(st.none(), st.floats(allow_nan=False), st.integers(-(2**63), 2**63 - 1),
                                       st.booleans(), st.binary(max_size=4)), max_size=3),
    "tag": st.sampled_from(["A", "B"]), "raw": st.binary(min_size=2, max_size=2),
    "n": st.one_of(st.integers(-(2**31), 2**31 - 1), st.none())})
TREES = st.recursive(_leaf, lambda inner: st.tuples(_leaf, st.lists(inner, max_size=3),
                                                    st.dictionaries(st.text(max_size=2), inner, max_size=2)).map(
    lambda t: {**t[0], "kids": t[1], "attrs": {**t[0]["attrs"], **t[2]}}), max_leaves=20)


def _depth(tree: dict[str, Any]) -> int:
    """Containers from this record down: itself, its kids array and attrs map, then its children."""
    children = [*tree["kids"], *(v for v in tree["attrs"].values() if isinstance(v, dict))]
    return 2 + max((_depth(c) for c in children), default=0)


@settings(max_examples=200, deadline=None)
@given(TREES, st.data())
def test_the_walk_reads_exactly_what_fastavro_reads(tree: dict[str, Any], data: st.DataObject) -> None:
    """The pre-read walk may never refuse what fastavro reads, nor measure another shape: on valid
    values it ends where the value ends; on any prefix of one it reports Truncated, like fastavro."""
    from connector.decode.nesting import _Scanner

    schema = parse(TREE)
    body = _avro(TREE, tree)
    scanner = _Scanner(body, 0, schema["__named_schemas"], 200)
    scanner.skip(schema, 0)
    assert scanner.pos == len(body)
    assert fastavro.schemaless_reader(io.BytesIO(body), schema, None) is not None
    depth = _depth(tree)
    check_nesting(body, 0, schema, depth)  # exactly at the bound: accepted
    with pytest.raises(DecodeError, match=f"more than {depth - 1} levels"):
        check_nesting(body, 0, schema, depth - 1)
    cut = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    with pytest.raises(DecodeError) as caught:
        check_nesting(body[:cut], 0, schema, 200)
    assert caught.value.error_class == "Truncated"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_of_a_recursive_schema_only_ever_raise_decode_error(body: bytes) -> None:
    dec = PlainAvroDecoder(parse(TREE), parse(TREE), max_nesting_depth=8)
    with contextlib.suppress(DecodeError):
        dec.decode(body)


# ----------------------------------------------------------------------------- logical types

def _field(name: str, avro_type: Any) -> dict[str, Any]:
    return {"name": name, "type": avro_type}


LOGICAL: list[tuple[str, Any, Any, Any]] = [
    # (field, Avro type, value given to fastavro's writer, value in the properties JSON)
    ("ref", {"type": "string", "logicalType": "uuid"}, uuid.UUID(int=0xABC), str(uuid.UUID(int=0xABC))),
    ("price", {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
     decimal.Decimal("12.34"), 12.34),
    ("whole", {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 2},
     decimal.Decimal("123456789012345678901234567.00"), 123456789012345678901234567),
    ("fixedDecimal", {"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 12,
                      "scale": 3}, decimal.Decimal("-1.500"), -1.5),
    ("day", {"type": "int", "logicalType": "date"}, dt.date(2024, 5, 1), "2024-05-01"),
    ("atMillis", {"type": "int", "logicalType": "time-millis"}, dt.time(13, 45, 30, 123000), "13:45:30.123"),
    ("atMicros", {"type": "long", "logicalType": "time-micros"}, dt.time(13, 45, 30, 123456), "13:45:30.123456"),
    ("tsMillis", {"type": "long", "logicalType": "timestamp-millis"},
     dt.datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=dt.UTC), SENT_AT_MS),
    ("tsMicros", {"type": "long", "logicalType": "timestamp-micros"},
     dt.datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=dt.UTC), SENT_AT_MS),
    ("localMillis", {"type": "long", "logicalType": "local-timestamp-millis"},
     dt.datetime(2024, 5, 1, 12, 30, 15, 123000), SENT_AT_MS),
    ("localMicros", {"type": "long", "logicalType": "local-timestamp-micros"},
     dt.datetime(2024, 5, 1, 12, 30, 15, 123999), SENT_AT_MS),
    ("tsNanos", {"type": "long", "logicalType": "timestamp-nanos"}, SENT_AT_MS * 1_000_000 + 456_789, SENT_AT_MS),
    ("localNanos", {"type": "long", "logicalType": "local-timestamp-nanos"}, SENT_AT_MS * 1_000_000 + 1, SENT_AT_MS),
    ("fixedUuid", {"type": "fixed", "name": "Id16", "size": 16, "logicalType": "uuid"},
     uuid.UUID(int=0xDEF).bytes, str(uuid.UUID(int=0xDEF))),
    ("wait", {"type": "fixed", "name": "Wait", "size": 12, "logicalType": "duration"},
     (1).to_bytes(4, "little") + (2).to_bytes(4, "little") + (3004).to_bytes(4, "little"), "P1M2DT3.004S"),
]
LOGICAL_SCHEMA = {"type": "record", "name": "Typed", "fields": [
    _field("sessionId", "string"), _field("eventType", "string"),
    _field("sentAt", {"type": "long", "logicalType": "timestamp-millis"}),
    *(_field(name, avro_type) for name, avro_type, _, _ in LOGICAL)]}


def _typed_value(**changes: Any) -> dict[str, Any]:
    return {"sessionId": "s-1", "eventType": "view",
            "sentAt": dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
            **{name: value for name, _, value, _ in LOGICAL}, **changes}


def _typed_decoder() -> ConfluentWireDecoder:
    # The reader is the writer here: with the canonical reader these fields would be dropped.
    return ConfluentWireDecoder(lambda _id: json.dumps(LOGICAL_SCHEMA), parse(LOGICAL_SCHEMA))


def test_every_logical_type_reaches_properties_as_an_api_value() -> None:
    mapper = EventMapper(MappingConfig(properties=None, property_fields=[name for name, *_ in LOGICAL]), "tracker")
    event = mapper.to_event(_typed_decoder().decode(_framed(_avro(LOGICAL_SCHEMA, _typed_value()))), SOURCE)
    assert json.loads(event.body["properties"]) == {name: expected for name, _, _, expected in LOGICAL}


@pytest.mark.parametrize("field", ["tsMillis", "tsMicros", "localMillis", "localMicros", "tsNanos", "localNanos"])
def test_every_timestamp_type_is_a_sent_at_in_utc_to_the_millisecond(field: str) -> None:
    mapper = EventMapper(MappingConfig(sent_at=field, properties=None), "tracker")
    event = mapper.to_event(_typed_decoder().decode(_framed(_avro(LOGICAL_SCHEMA, _typed_value()))), SOURCE)
    assert event.body["sentAt"] == dt.datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=dt.UTC)


@pytest.mark.parametrize(("field", "expected"), [
    ("ref", str(uuid.UUID(int=0xABC))), ("fixedUuid", str(uuid.UUID(int=0xDEF))),
    ("whole", "123456789012345678901234567"), ("tsMillis", str(SENT_AT_MS)), ("day", "2024-05-01")])
def test_logical_types_as_ids(field: str, expected: str) -> None:
    mapper = EventMapper(MappingConfig(event_id=field, item_id=field, user_id=field, properties=None), "tracker")
    event = mapper.to_event(_typed_decoder().decode(_framed(_avro(LOGICAL_SCHEMA, _typed_value()))), SOURCE)
    assert event.body["eventId"] == event.body["itemId"] == event.key.user_id == expected


def test_a_uuid_item_id_and_decimal_properties_go_to_put_items() -> None:
    schema = {"type": "record", "name": "Item", "fields": [
        _field("itemId", {"type": "string", "logicalType": "uuid"}),
        _field("price", {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2})]}
    dec = PlainAvroDecoder(parse(schema), parse(schema))
    mapper = EntityMapper(ITEMS, EntityMappingConfig(properties=None, property_fields=["price"], deleted=None),
                          "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS", "items")
    item = mapper.to_event(dec.decode(_avro(schema, {"itemId": uuid.UUID(int=5), "price": decimal.Decimal("9.90")})),
                           SOURCE)
    assert item.body == {"itemId": str(uuid.UUID(int=5)), "properties": '{"price":9.9}'}


def test_a_decimal_event_value_is_a_number() -> None:
    schema = {**LOGICAL_SCHEMA, "fields": [*LOGICAL_SCHEMA["fields"], _field("score", LOGICAL[1][1])]}
    dec = ConfluentWireDecoder(lambda _id: json.dumps(schema), parse(schema))
    mapper = EventMapper(MappingConfig(event_value="score", properties=None), "tracker")
    event = mapper.to_event(dec.decode(_framed(_avro(schema, _typed_value(score=decimal.Decimal("4.25"))))), SOURCE)
    assert event.body["eventValue"] == 4.25


@given(st.integers(min_value=-(10**40), max_value=10**40), st.integers(min_value=0, max_value=20))
def test_decimals_are_exact_ints_or_correctly_rounded_floats(unscaled: int, scale: int) -> None:
    schema = {"type": "record", "name": "D", "fields": [
        _field("d", {"type": "bytes", "logicalType": "decimal", "precision": 60, "scale": scale})]}
    dec = PlainAvroDecoder(parse(schema), parse(schema))
    exact = decimal.Decimal(unscaled).scaleb(-scale)
    got = dec.decode(_avro(schema, {"d": exact}))["d"]
    if exact == exact.to_integral_value():
        assert type(got) is int and got == exact
    else:
        assert type(got) is float and got == float(exact)  # Decimal -> float is correctly rounded


def test_the_canonical_schema_is_decoded_as_before() -> None:
    """No rewriting where nothing needs it: sentAt stays fastavro's datetime, resolution is skipped."""
    dec = ConfluentWireDecoder(lambda _id: canonical_schema_text(), load_schema(None))
    out = dec.decode(_framed(_avro(CANONICAL, _canonical_event())))
    assert out["sentAt"] == dt.datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=dt.UTC)
    writer = dec.writer_for(1)
    assert writer.reader is None and writer.scan_limit is None


@pytest.mark.parametrize(("avro_type", "raw"), [
    ({"type": "int", "logicalType": "date"}, 3_000_000),
    ({"type": "int", "logicalType": "time-millis"}, 90_000_000),
    ({"type": "long", "logicalType": "time-micros"}, -1)])
def test_a_logical_value_out_of_its_range_is_a_specific_decode_error(avro_type: Any, raw: int) -> None:
    schema = {"type": "record", "name": "R", "fields": [_field("v", avro_type)]}
    plain = {"type": "record", "name": "R", "fields": [_field("v", avro_type["type"])]}
    dec = PlainAvroDecoder(parse(schema), parse(schema))
    with pytest.raises(DecodeError) as caught:
        dec.decode(_avro(plain, {"v": raw}))
    assert caught.value.error_class == "InvalidLogicalValue"


def test_an_annotation_that_cannot_be_converted_is_left_to_fastavro() -> None:
    # A "duration" that is not fixed(12), a uuid on an int: fastavro ignores them; so do we.
    schema = {"type": "record", "name": "R", "fields": [
        _field("d", {"type": "fixed", "name": "F", "size": 4, "logicalType": "duration"}),
        _field("u", {"type": "int", "logicalType": "uuid"})]}
    dec = PlainAvroDecoder(parse(schema), parse(schema))
    assert dec.decode(_avro(schema, {"d": b"abcd", "u": 7})) == {"d": b"abcd", "u": 7}


def test_an_unknown_id_still_waits_with_a_logical_reader_schema() -> None:
    def unknown(schema_id: int) -> str:
        raise KeyError(schema_id)

    dec = ConfluentWireDecoder(unknown, parse(LOGICAL_SCHEMA))
    with pytest.raises(SchemaNotYetKnown):
        dec.decode(_framed(b"\x00"))
