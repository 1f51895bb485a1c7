"""JSON values decode to the dict the Avro decoder gives for the same event, or to a precise DecodeError."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_decode import CANONICAL, Registry, avro, framed  # tests/unit is on sys.path (pytest prepend)

import avro_schemas
from connector.app import build_worker
from connector.config import ConfigError, MappingConfig, Settings, load_settings
from connector.decode import (
    ConfluentWireDecoder,
    JsonSchemaWireDecoder,
    PlainJsonDecoder,
    RegistryUnavailable,
    SchemaNotYetKnown,
    build_decoder,
    load_schema,
)
from connector.decode.base import canonical_schema_text
from connector.destinations.events import EventMapper
from connector.records import DecodeError, SourceRecord

SOURCE = SourceRecord("interactions", 0, 7, b"k", b"v")
JSON_SCHEMA: dict[str, Any] = json.loads(avro_schemas.read(avro_schemas.INTERACTION_EVENT_JSON_SCHEMA))
SENT_AT_MS = 1_714_566_615_123
SENT_AT = dt.datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=dt.UTC)


def event(**overrides: Any) -> dict[str, Any]:
    """One event as a JSON producer writes it (sentAt in epoch milliseconds)."""
    base: dict[str, Any] = {
        "eventId": "e-1", "trackingId": None, "sessionId": "s-1", "userId": "u-1", "eventType": "click",
        "eventValue": 4.5, "itemId": "i-1", "properties": {"color": "red", "n": 3, "price": 9.25, "ok": True},
        "sentAt": SENT_AT_MS, "recommendationId": "r-1", "impression": ["a", "b"], "eventAttributionSource": "src",
    }
    return base | overrides


def plain() -> PlainJsonDecoder:
    return PlainJsonDecoder(load_schema(None))


def schema_decoder(schemas: dict[int, Any] | None = None, **options: Any) -> tuple[JsonSchemaWireDecoder, Registry]:
    registry = Registry(schemas if schemas is not None else {1: JSON_SCHEMA})
    return JsonSchemaWireDecoder(registry, load_schema(None), **options), registry


def decode_error(decode: Any, value: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode(value)
    assert caught.value.stage == "decode"
    return caught.value


# ------------------------------------------------------------------ the same event in every format


def test_json_json_schema_and_avro_give_the_mapper_the_identical_event() -> None:
    """eventValue 4.5 and price 9.25 are exact in Avro's 32-bit float too (a float like 0.1 is not:
    Avro rounds it to 32 bits, JSON keeps the double)."""
    avro_dec = ConfluentWireDecoder(lambda _id: canonical_schema_text(), load_schema(None))
    avro_record = avro_dec.decode(framed(1, avro(CANONICAL, event(sentAt=SENT_AT))))
    json_record = plain().decode(orjson.dumps(event()))
    schema_record = schema_decoder()[0].decode(framed(1, orjson.dumps(event())))
    assert json_record == avro_record == schema_record
    mapper = EventMapper(MappingConfig(), "tracker-default")
    from_avro = mapper.to_event(avro_record, SOURCE)
    assert mapper.to_event(json_record, SOURCE) == from_avro == mapper.to_event(schema_record, SOURCE)
    assert from_avro.body["sentAt"] == SENT_AT


def test_absent_fields_get_the_avro_defaults_as_fresh_objects() -> None:
    dec = plain()
    first = dec.decode(b'{"sessionId": "s", "eventType": "view", "sentAt": 0}')
    assert first == {"sessionId": "s", "eventType": "view", "sentAt": dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
                     "eventId": None, "trackingId": None, "userId": None, "eventValue": None, "itemId": None,
                     "properties": {}, "recommendationId": None, "impression": [], "eventAttributionSource": None}
    first["impression"].append("x")
    assert dec.decode(b'{"sessionId": "s", "eventType": "view", "sentAt": 0}')["impression"] == []


def test_fields_of_other_names_are_kept_for_the_mapping() -> None:
    out = plain().decode(b'{"ts": 5, "user": {"id": "u"}}')
    assert out["ts"] == 5 and out["user"] == {"id": "u"}


def test_a_sent_at_that_is_not_an_integer_is_left_to_the_mapper() -> None:
    assert plain().decode(b'{"sentAt": "2024-05-01T00:00:00Z"}')["sentAt"] == "2024-05-01T00:00:00Z"


def test_a_sent_at_outside_the_representable_dates_is_invalid() -> None:
    err = decode_error(plain().decode, b'{"sentAt": 99999999999999999}')
    assert err.error_class == "InvalidLogicalValue" and "sentAt" in err.message


# ------------------------------------------------------------------ bad input, precise messages


@pytest.mark.parametrize(("value", "error_class", "says"), [
    (b"", "EmptyValue", "empty"),
    (b'{"a": 1,}', "MalformedJson", "char 7"),
    (b'{"a": NaN}', "MalformedJson", "char 6"),
    (b'{"a": Infinity}', "MalformedJson", "char 6"),
    (b'{"a": -Infinity}', "MalformedJson", "char 7"),
    (b'{"a": 1e999}', "MalformedJson", "infinity"),
    (b'{"a": 1} x', "MalformedJson", "after document"),
    (b'\xff{"a": 1}', "NotUtf8", "UTF-8"),
    (b'{"a": "\xed\xa0\x80"}', "NotUtf8", "UTF-8"),
    (b'[1, 2]', "NotAnObject", "an array"),
    (b'"text"', "NotAnObject", "a string"),
    (b'null', "NotAnObject", "null"),
    (b'42', "NotAnObject", "int"),
])
def test_bad_json_is_a_specific_decode_error(value: bytes, error_class: str, says: str) -> None:
    err = decode_error(plain().decode, value)
    assert err.error_class == error_class and says in err.message


@pytest.mark.parametrize("depth", [65, 500, 1023, 1025, 100_000])
def test_nesting_deeper_than_the_bound_is_rejected(depth: int) -> None:
    value = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    assert decode_error(plain().decode, value).error_class == "NestingTooDeep"


def test_nesting_up_to_the_bound_is_accepted_and_many_flat_brackets_cost_no_false_alarm() -> None:
    assert plain().decode(b'{"a": ' + b"[" * 63 + b"]" * 63 + b"}")["a"]
    flat = {"impression": [f"[{i}]" for i in range(200)], "p": [[1]] * 100}
    assert plain().decode(orjson.dumps(flat))["p"] == [[1]] * 100


def test_max_nesting_depth_is_configurable() -> None:
    dec = PlainJsonDecoder(load_schema(None), max_nesting_depth=3)
    assert dec.decode(b'{"a": [[1]]}')["a"] == [[1]]
    assert decode_error(dec.decode, b'{"a": [[[1]]]}').error_class == "NestingTooDeep"


def test_duplicate_keys_keep_the_last_value_as_json_parse_does() -> None:
    assert plain().decode(b'{"eventType": "view", "eventType": "buy"}')["eventType"] == "buy"


def test_huge_integers_are_read_as_floats_not_an_error() -> None:
    assert plain().decode(b'{"n": 123456789012345678901234567890}')["n"] == pytest.approx(1.2345678901234568e29)


# ------------------------------------------------------------------ JSON Schema wire format


def test_json_schema_value_is_validated_against_its_registered_schema() -> None:
    dec, _ = schema_decoder()
    err = decode_error(dec.decode, framed(1, orjson.dumps(event(sentAt="yesterday"))))
    assert err.error_class == "SchemaMismatch" and "schema id 1" in err.message and "sentAt" in err.message
    err = decode_error(dec.decode, framed(1, orjson.dumps({"sessionId": "s", "sentAt": 1})))
    assert err.error_class == "SchemaMismatch" and "eventType" in err.message


def test_validation_can_be_turned_off() -> None:
    dec, _ = schema_decoder(validate=False)
    assert dec.decode(framed(1, orjson.dumps(event(sentAt="yesterday"))))["sentAt"] == "yesterday"


def test_json_schema_framing_errors() -> None:
    dec, _ = schema_decoder()
    assert decode_error(dec.decode, orjson.dumps(event())).error_class == "WrongMagicByte"
    assert decode_error(dec.decode, b"\x00\x00\x01").error_class == "Truncated"
    assert decode_error(dec.decode, framed(1, b"{oops")).error_class == "MalformedJson"
    assert decode_error(dec.decode, framed(1, b"[]")).error_class == "NotAnObject"


def test_the_schema_is_fetched_and_compiled_once_per_id() -> None:
    dec, registry = schema_decoder({1: JSON_SCHEMA, 2: JSON_SCHEMA})
    for schema_id in (1, 2, 1, 2, 1):
        dec.decode(framed(schema_id, orjson.dumps(event())))
    assert registry.calls == [1, 2]


def test_an_unknown_id_waits_then_is_dead_lettered() -> None:
    now = [0.0]
    dec, registry = schema_decoder(unknown_schema_retry_s=10, clock=lambda: now[0])
    with pytest.raises(SchemaNotYetKnown):
        dec.decode(framed(9, b"{}"))
    now[0] = 11.0
    assert decode_error(dec.decode, framed(9, b"{}")).error_class == "UnknownSchemaId"
    assert registry.calls == [9, 9]


def test_a_registry_outage_is_not_a_record_error() -> None:
    def down(_schema_id: int) -> str:
        raise ConnectionError("refused")

    dec = JsonSchemaWireDecoder(down, load_schema(None))
    with pytest.raises(RegistryUnavailable):
        dec.decode(framed(1, b"{}"))


@pytest.mark.parametrize(("schema", "says"), [
    ({"$ref": "https://example.com/event.json"}, "outside itself"),
    ({"properties": {"a": {"$ref": "file:///etc/passwd"}}}, "outside itself"),
    ({"type": 12}, "not a usable JSON Schema"),
])
def test_an_unusable_schema_is_incompatible(schema: Any, says: str) -> None:
    dec, _ = schema_decoder({1: schema})
    err = decode_error(dec.decode, framed(1, b"{}"))
    assert err.error_class == "IncompatibleSchema" and says in err.message


def test_local_references_are_followed() -> None:
    schema = {"definitions": {"id": {"type": "string"}}, "properties": {"sessionId": {"$ref": "#/definitions/id"}}}
    dec, _ = schema_decoder({1: schema})
    assert decode_error(dec.decode, framed(1, b'{"sessionId": 5}')).error_class == "SchemaMismatch"


# ------------------------------------------------------------------ the packaged JSON Schema


def _json_types(avro_type: Any) -> set[str]:
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    names = {"null": "null", "string": "string", "long": "integer", "int": "integer", "float": "number",
             "double": "number", "boolean": "boolean", "map": "object", "array": "array"}
    return {names[b["type"] if isinstance(b, dict) else b] for b in branches}


def test_the_packaged_json_schema_is_equivalent_to_the_avro_schema() -> None:
    fields = {f["name"]: f for f in CANONICAL["fields"]}
    assert set(JSON_SCHEMA["properties"]) == set(fields)
    assert set(JSON_SCHEMA["required"]) == {name for name, f in fields.items() if "default" not in f}
    for name, field in fields.items():
        declared = JSON_SCHEMA["properties"][name]["type"]
        assert set(declared if isinstance(declared, list) else [declared]) == _json_types(field["type"]), name
    values = CANONICAL["fields"][7]["type"]["values"]
    assert set(JSON_SCHEMA["properties"]["properties"]["additionalProperties"]["type"]) == _json_types(values)
    assert JSON_SCHEMA["properties"]["impression"]["items"] == {"type": "string"}


# ------------------------------------------------------------------ hostile input, property-based

# orjson.dumps takes 64-bit integers only; longer ones are in the byte fragments below.
_json_leaf = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
              | st.text(max_size=8))
_json_values = st.recursive(_json_leaf, lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | _json_values.map(orjson.dumps) | st.lists(st.sampled_from(
    [b"{", b"}", b"[", b"]", b'"', b":", b",", b"1e999", b"NaN", b"-", b"\\u", b"\xed\xa0\x80", b"0",
     b"123456789012345678901234567890", b'"sentAt"', b"-99999999999999999"]), max_size=80).map(b"".join))
def test_plain_json_never_raises_anything_but_a_decode_error(value: bytes) -> None:
    try:
        out = plain().decode(value)
    except DecodeError:
        return
    assert isinstance(out, dict)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3), st.binary(max_size=120) | _json_values.map(orjson.dumps))
def test_json_schema_never_raises_anything_but_decode_error_or_registry_unavailable(schema_id: int,
                                                                                    body: bytes) -> None:
    dec, _ = schema_decoder({1: JSON_SCHEMA, 2: {"type": "object", "maxProperties": 1}}, unknown_schema_retry_s=0)
    for value in (framed(schema_id, body), body):
        with contextlib.suppress(DecodeError, RegistryUnavailable):
            dec.decode(value)


# ------------------------------------------------------------------ configuration and the factory

_MINIMAL = "kafka: {bootstrap_servers: 'k:9092', group_id: g, topics: [t]}\npersonalize: {tracking_id: tr}\n"


def _settings(tmp_path: Path, decode: str) -> Settings:
    path = tmp_path / "c.yaml"
    path.write_text(_MINIMAL + f"decode: {decode}\n")
    return load_settings(path, env={})


def test_build_decoder_builds_the_json_decoders(tmp_path: Path) -> None:
    assert isinstance(build_decoder(_settings(tmp_path, "{format: json}")), PlainJsonDecoder)
    settings = _settings(tmp_path, "{format: json_schema, validate_json_schema: false}")
    assert settings.decode.validate_json_schema is False
    assert isinstance(build_decoder(settings, registry_client=object()), JsonSchemaWireDecoder)
    with pytest.raises(ValueError, match="'json_schema' needs a schema registry client"):
        build_decoder(settings)


def test_json_schema_without_a_registry_url_is_a_config_error(tmp_path: Path) -> None:
    expected = "schema_registry.url: is required when decode.format is 'json_schema'"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        build_worker(_settings(tmp_path, "{format: json_schema}"))
