"""decode.format protobuf: Confluent-framed Protobuf into the dict the Avro decoder gives, or a DecodeError."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config.models import MappingConfig
from connector.decode import ConfluentWireDecoder, Decoder, ProtobufWireDecoder, RegistryUnavailable, load_schema
from connector.decode.base import canonical_schema_text
from connector.decode.protobuf_wire import ProtoSource, frame, read_message_indexes
from connector.destinations.events import EventMapper
from connector.records import DecodeError, RecordError, SourceRecord
from connector.tools.protobuf_records import MessageEncoder, interaction_event_proto

SENT_AT = dt.datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=dt.UTC)
SOURCE = SourceRecord("interactions", 0, 7, b"k", b"v")
ENCODER = MessageEncoder()


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventId": "e-1", "trackingId": None, "sessionId": "s-1", "userId": "u-1", "eventType": "click",
        "eventValue": 4.5, "itemId": "i-1", "properties": {"color": "red", "n": 3, "ok": True, "x": 2.5},
        "sentAt": SENT_AT, "recommendationId": "r-1", "impression": ["a", "b"], "eventAttributionSource": "src",
    }
    return base | overrides


class Registry:
    """A dict-backed fetch function (schema id -> .proto text, imports) that counts calls."""

    def __init__(self, schemas: dict[int, str | ProtoSource]) -> None:
        self.schemas = {k: v if isinstance(v, tuple) else (v, {}) for k, v in schemas.items()}
        self.calls: list[int] = []

    def __call__(self, schema_id: int) -> ProtoSource:
        self.calls.append(schema_id)
        return self.schemas[schema_id]  # KeyError: unknown id


CANONICAL = Registry({1: interaction_event_proto()})
DECODER = ProtobufWireDecoder(CANONICAL, unknown_schema_retry_s=0)


def decode_error(decoder: Decoder, value: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decoder.decode(value)
    return caught.value


def test_the_packaged_event_decodes_to_the_avro_decoders_dict() -> None:
    event = record()
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, load_schema(None), event)
    avro = ConfluentWireDecoder(lambda _id: canonical_schema_text(), load_schema(None)).decode(
        b"\x00\x00\x00\x00\x01" + buf.getvalue())
    proto = DECODER.decode(frame(1, ENCODER.encode(event)))
    assert proto == avro
    mapper = EventMapper(MappingConfig(), "tracker")
    assert mapper.to_event(proto, SOURCE) == mapper.to_event(avro, SOURCE)


def test_absent_optional_fields_are_none_and_empty_collections_empty() -> None:
    out = DECODER.decode(frame(1, ENCODER.encode({"sessionId": "s", "eventType": "view", "sentAt": SENT_AT})))
    assert out == {"eventId": None, "trackingId": None, "sessionId": "s", "userId": None, "eventType": "view",
                   "eventValue": None, "itemId": None, "properties": {}, "sentAt": SENT_AT,
                   "recommendationId": None, "impression": [], "eventAttributionSource": None}


def test_the_proto_has_the_avro_schemas_fields() -> None:
    avro_fields = [f["name"] for f in json.loads(canonical_schema_text())["fields"]]
    assert list(DECODER.decode(frame(1, ENCODER.encode(record())))) == avro_fields


INT64_SENT_AT = """syntax = "proto3";
message Click { string sessionId = 1; string eventType = 2; int64 sentAt = 3; }"""


def test_an_int64_sent_at_is_epoch_millis_for_the_mapper() -> None:
    dec = ProtobufWireDecoder(Registry({5: INT64_SENT_AT}))
    payload = bytes([0x0A, 1]) + b"s" + bytes([0x12, 1]) + b"c" + bytes([0x18]) + _varint(1_714_566_615_123)
    out = dec.decode(frame(5, payload))
    assert out == {"sessionId": "s", "eventType": "c", "sentAt": 1_714_566_615_123}
    assert EventMapper(MappingConfig(), "t").to_event(out, SOURCE).body["sentAt"] == SENT_AT


NESTED = """syntax = "proto3";
package shop;
message Other { string a = 1; }
message Envelope {
  message Inner { string b = 1; }
  enum Kind { UNKNOWN = 0; CLICK = 1; }
  Inner inner = 1;
  Kind kind = 2;
}"""


def test_message_indexes_select_nested_messages_and_enums_are_names() -> None:
    dec = ProtobufWireDecoder(Registry({2: NESTED}))
    assert dec.decode(frame(2, bytes([0x0A, 1]) + b"x")) == {"a": "x"}  # [0]: Other
    assert dec.decode(frame(2, bytes([0x0A, 1]) + b"y", (1, 0))) == {"b": "y"}  # Envelope.Inner
    assert dec.decode(frame(2, bytes([0x0A, 3, 0x0A, 1]) + b"z" + bytes([0x10, 1]), (1,))) == {
        "inner": {"b": "z"}, "kind": "CLICK"}


@pytest.mark.parametrize("indexes", [(2,), (0, 0), (1, 1), (1, 0, 0)])
def test_a_message_index_that_names_no_message_is_dead_lettered(indexes: tuple[int, ...]) -> None:
    err = decode_error(ProtobufWireDecoder(Registry({2: NESTED})), frame(2, b"", indexes))
    assert err.error_class == "UnknownMessageIndex" and "names no message" in err.message


def test_message_index_varints_zigzag_and_single_zero_means_first() -> None:
    assert read_message_indexes(b"\x00", 0) == ((0,), 1)
    assert read_message_indexes(b"\x04\x02\x06", 0) == ((1, 3), 3)
    assert read_message_indexes(frame(1, b"p", (3, 200, 0)), 5) == ((3, 200, 0), 5 + 1 + 1 + 2 + 1)


@pytest.mark.parametrize(("value", "error_class", "words"), [
    (b"", "EmptyValue", "empty"),
    (b"\x01\x00\x00\x00\x01\x00", "WrongMagicByte", "magic"),
    (b"\x00\x00\x00", "Truncated", "header"),
    (b"\x00\x00\x00\x00\x01", "Truncated", "message indexes end early"),
    (b"\x00\x00\x00\x00\x01\x04\x82", "Truncated", "truncated varint"),
    (b"\x00\x00\x00\x00\x01" + b"\xff" * 11, "CorruptBody", "longer than 10 bytes"),
    (b"\x00\x00\x00\x00\x01\x01", "UnknownMessageIndex", "count -1"),
    (b"\x00\x00\x00\x00\x01\x7e", "UnknownMessageIndex", "count 63"),
    (b"\x00\x00\x00\x00\x01\x00\x0a\x05ab", "CorruptBody", "not a valid com.personalize.connector.InteractionEvent"),
    (b"\x00\x00\x00\x00\x01\x00\x0d\x00", "CorruptBody", "InteractionEvent"),  # field 1 as fixed32: wrong wire type
])
def test_corrupt_frames_are_specific_decode_errors(value: bytes, error_class: str, words: str) -> None:
    err = decode_error(DECODER, value)
    assert err.error_class == error_class and words in err.message
    assert err.stage == "decode"


def test_an_unknown_schema_id_is_dead_lettered_after_the_wait() -> None:
    err = decode_error(DECODER, frame(99, b""))
    assert err.error_class == "UnknownSchemaId" and "schema id 99" in err.message


def test_a_schema_that_does_not_compile_is_dead_lettered_and_compiled_once() -> None:
    registry = Registry({3: 'syntax = "proto3"; message A { strng x = 1; }'})
    dec = ProtobufWireDecoder(registry)
    for _ in range(3):
        err = decode_error(dec, frame(3, b""))
        assert err.error_class == "InvalidProtobufSchema"
        assert '"strng" is not defined' in err.message
    assert registry.calls == [3]


def test_imports_come_from_references_and_well_known_types_from_protoc() -> None:
    main = """syntax = "proto3";
import "shared/money.proto";
import "google/protobuf/wrappers.proto";
message Buy { shared.Money price = 1; google.protobuf.StringValue note = 2; }"""
    money = 'syntax = "proto3"; package shared; message Money { int64 cents = 1; }'
    dec = ProtobufWireDecoder(Registry({4: (main, {"shared/money.proto": money})}))
    assert dec.decode(frame(4, bytes([0x0A, 2, 0x08, 7, 0x12, 2, 0x0A, 0]))) == {"price": {"cents": 7}, "note": ""}
    assert dec.decode(frame(4, b""))["note"] is None


@pytest.mark.parametrize("name", ["/etc/x.proto", "../x.proto", "a/../../x.proto", "x.txt"])
def test_a_reference_name_outside_the_schema_directory_is_refused(name: str) -> None:
    dec = ProtobufWireDecoder(Registry({4: ('syntax = "proto3";', {name: 'syntax = "proto3";'})}))
    assert decode_error(dec, frame(4, b"")).error_class == "InvalidProtobufSchema"


RECURSIVE = 'syntax = "proto3"; message Node { Node child = 1; string name = 2; }'


def _nested(depth: int) -> bytes:
    payload = b"\x12\x01x"
    for _ in range(depth - 1):
        payload = b"\x0a" + _varint(len(payload)) + payload
    return payload


def test_nesting_within_the_bound_decodes_and_deeper_is_nesting_too_deep() -> None:
    dec = ProtobufWireDecoder(Registry({6: RECURSIVE}), max_nesting_depth=10)
    out = dec.decode(frame(6, _nested(10)))
    for _ in range(9):
        out = out["child"]
    assert out == {"child": None, "name": "x"}
    assert decode_error(dec, frame(6, _nested(11))).error_class == "NestingTooDeep"


def test_a_nesting_bomb_past_the_parsers_own_limit_is_a_decode_error() -> None:
    dec = ProtobufWireDecoder(Registry({6: RECURSIVE}), max_nesting_depth=200)
    for depth in (150, 100_000):
        err = decode_error(dec, frame(6, _nested(depth)))
        assert err.error_class == "NestingTooDeep" and "parser's limit" in err.message


def test_a_registry_outage_is_not_a_decode_error() -> None:
    def down(_schema_id: int) -> ProtoSource:
        raise ConnectionError("refused")

    with pytest.raises(RegistryUnavailable):
        ProtobufWireDecoder(down).decode(frame(1, b""))


# One decoder for all examples: schemas compile once (ids 1 and 6), unknown ids are final at once.
HOSTILE = ProtobufWireDecoder(Registry({1: interaction_event_proto(), 6: RECURSIVE}), unknown_schema_retry_s=0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.binary(max_size=64).map(lambda tail: b"\x00\x00\x00\x00\x01" + tail)
       | st.binary(max_size=64).map(lambda tail: b"\x00\x00\x00\x00\x06" + tail))
def test_arbitrary_bytes_raise_only_decode_errors(value: bytes) -> None:
    with contextlib.suppress(DecodeError):
        HOSTILE.decode(value)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def test_two_versions_of_one_message_name_under_two_ids_each_read_by_their_own_fields() -> None:
    v1 = 'syntax = "proto3"; message Click { string a = 1; }'
    v2 = 'syntax = "proto3"; message Click { string b = 1; int64 n = 2; }'
    dec = ProtobufWireDecoder(Registry({1: v1, 2: v2}))
    assert dec.decode(frame(1, b"\x0a\x01x")) == {"a": "x"}
    assert dec.decode(frame(2, b"\x0a\x01y\x10\x05")) == {"b": "y", "n": 5}
    assert dec.decode(frame(1, b"\x0a\x01z")) == {"a": "z"}


def test_wrappers_unions_repeated_messages_and_unknown_enum_numbers() -> None:
    schema = """syntax = "proto3";
import "google/protobuf/wrappers.proto";
message Line { string sku = 1; }
message Order {
  enum State { NEW = 0; }
  repeated Line lines = 1;
  google.protobuf.Int64Value qty = 2;
  State state = 3;
  map<string, Line> by_sku = 4;
}"""
    dec = ProtobufWireDecoder(Registry({3: schema}))
    payload = (b"\x0a\x03\x0a\x01a" + b"\x0a\x03\x0a\x01b" + b"\x12\x02\x08\x09" + b"\x18\x07"
               + b"\x22\x08\x0a\x01k\x12\x03\x0a\x01c")
    assert dec.decode(frame(3, payload, (1,))) == {
        "lines": [{"sku": "a"}, {"sku": "b"}], "qty": 9, "state": 7, "by_sku": {"k": {"sku": "c"}}}


def test_build_decoder_makes_a_protobuf_decoder_over_the_registry_client() -> None:
    from types import SimpleNamespace

    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    from connector.decode import build_decoder

    client = SchemaRegistryClient.new_client({"url": "mock://protobuf-build-decoder"})
    proto_id = client.register_schema("t-value", Schema(interaction_event_proto(), "PROTOBUF"))
    avro_id = client.register_schema("a-value", Schema(canonical_schema_text(), "AVRO"))
    settings = SimpleNamespace(decode=SimpleNamespace(format="protobuf", reader_schema=None,
                                                      unknown_schema_retry_s=0, max_nesting_depth=64))
    dec = build_decoder(settings, client)
    assert dec.decode(frame(proto_id, ENCODER.encode(record())))["sessionId"] == "s-1"
    err = decode_error(dec, frame(avro_id, b""))
    assert err.error_class == "IncompatibleSchema" and "not Protobuf" in err.message
    assert decode_error(dec, frame(4242, b"")).error_class == "UnknownSchemaId"
    with pytest.raises(ValueError, match="needs a schema registry client"):
        build_decoder(settings)


MAPPER = EventMapper(MappingConfig(), "tracker")


def _field(number: int, wire_type: int, body: bytes) -> bytes:
    return _varint(number << 3 | wire_type) + body


# Well-formed fields of the packaged message's numbers with values of any wire type: every
# combination must decode and map to an event, or be a RecordError (dead-lettered), never escape.
_fields = st.one_of(
    st.tuples(st.integers(1, 13), st.binary(max_size=12)).map(lambda f: _field(f[0], 2, _varint(len(f[1])) + f[1])),
    st.tuples(st.integers(1, 13), st.integers(0, 2**64 - 1)).map(lambda f: _field(f[0], 0, _varint(f[1]))),
    st.tuples(st.integers(1, 13), st.binary(min_size=4, max_size=4)).map(lambda f: _field(f[0], 5, f[1])),
    st.tuples(st.integers(1, 13), st.binary(min_size=8, max_size=8)).map(lambda f: _field(f[0], 1, f[1])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_fields, max_size=12).map(b"".join))
def test_any_well_formed_payload_maps_to_an_event_or_a_record_error(payload: bytes) -> None:
    with contextlib.suppress(RecordError):
        MAPPER.to_event(HOSTILE.decode(frame(1, payload)), SOURCE)
