"""Decoders turn bytes into dicts, or raise a DecodeError that says exactly what was wrong."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import io
import json
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.decode import (
    ConfluentWireDecoder,
    PlainAvroDecoder,
    RegistryUnavailable,
    SchemaNotFound,
    SchemaNotYetKnown,
    load_schema,
)
from connector.decode.base import UNKNOWN_RECHECK_S, canonical_schema_text
from connector.records import DecodeError, RecordError

CANONICAL: dict[str, Any] = json.loads(canonical_schema_text())
SENT_AT = dt.datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=dt.UTC)


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventId": "e-1", "trackingId": None, "sessionId": "s-1", "userId": "u-1", "eventType": "click",
        "eventValue": 4.5, "itemId": "i-1", "properties": {"color": "red", "n": 3.0, "ok": True},
        "sentAt": SENT_AT, "recommendationId": "r-1", "impression": ["a", "b"], "eventAttributionSource": "src",
    }
    return base | overrides


def avro(schema: dict[str, Any], value: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(copy.deepcopy(schema)), value)
    return buf.getvalue()


def framed(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + body


class Registry:
    """A dict-backed fetch function that counts calls."""

    def __init__(self, schemas: dict[int, dict[str, Any]]) -> None:
        self.schemas = {k: json.dumps(v) for k, v in schemas.items()}
        self.calls: list[int] = []

    def __call__(self, schema_id: int) -> str:
        self.calls.append(schema_id)
        return self.schemas[schema_id]  # KeyError: unknown id


def decoder(schemas: dict[int, dict[str, Any]] | None = None, **options: Any) -> tuple[ConfluentWireDecoder, Registry]:
    registry = Registry(schemas if schemas is not None else {1: CANONICAL})
    return ConfluentWireDecoder(registry, load_schema(None), **options), registry


def test_round_trip_of_the_canonical_record() -> None:
    dec, _ = decoder()
    assert dec.decode(framed(1, avro(CANONICAL, record()))) == record()


def test_defaults_of_the_canonical_schema_are_filled_in() -> None:
    dec, _ = decoder()
    minimal = {"sessionId": "s", "eventType": "view", "sentAt": SENT_AT}
    out = dec.decode(framed(1, avro(CANONICAL, minimal)))
    assert out["properties"] == {} and out["impression"] == [] and out["userId"] is None


@given(st.integers(min_value=-(2**40), max_value=2**45))
def test_timestamp_millis_round_trips_exactly(millis: int) -> None:
    dec, _ = decoder()
    sent_at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=millis)
    out = dec.decode(framed(1, avro(CANONICAL, record(sentAt=sent_at))))
    assert out["sentAt"] == sent_at


def test_writer_schema_is_fetched_and_parsed_once_per_id() -> None:
    dec, registry = decoder({1: CANONICAL, 2: CANONICAL})
    for _ in range(5):
        dec.decode(framed(1, avro(CANONICAL, record())))
        dec.decode(framed(2, avro(CANONICAL, record())))
    assert registry.calls == [1, 2]


def test_evolution_writer_with_an_extra_field() -> None:
    writer = copy.deepcopy(CANONICAL)
    writer["fields"].append({"name": "channel", "type": "string", "default": "web"})
    dec, _ = decoder({7: writer})
    out = dec.decode(framed(7, avro(writer, record(channel="app"))))
    assert "channel" not in out and out["sessionId"] == "s-1"


def test_evolution_writer_without_an_optional_field() -> None:
    writer = copy.deepcopy(CANONICAL)
    writer["fields"] = [f for f in writer["fields"] if f["name"] not in ("itemId", "impression")]
    dec, _ = decoder({8: writer})
    value = {k: v for k, v in record().items() if k not in ("itemId", "impression")}
    out = dec.decode(framed(8, avro(writer, value)))
    assert out["itemId"] is None and out["impression"] == []


def error_of(dec: ConfluentWireDecoder | PlainAvroDecoder, value: bytes | None) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        dec.decode(value)
    return caught.value


@pytest.mark.parametrize("value", [None, b""])
def test_empty_value(value: bytes | None) -> None:
    assert error_of(decoder()[0], value).error_class == "EmptyValue"


def test_wrong_magic_byte_says_which_byte() -> None:
    err = error_of(decoder()[0], b"\x7b\"json\": true}")
    assert err.error_class == "WrongMagicByte" and "0x7b" in err.message


@pytest.mark.parametrize("value", [b"\x00", b"\x00\x00\x00\x01"])
def test_truncated_header(value: bytes) -> None:
    assert error_of(decoder()[0], value).error_class == "Truncated"


def test_truncated_body() -> None:
    full = framed(1, avro(CANONICAL, record()))
    err = error_of(decoder()[0], full[:-3])
    assert err.error_class == "Truncated"


def test_unknown_schema_id_names_the_id() -> None:
    err = error_of(decoder(unknown_schema_retry_s=0)[0], framed(4242, avro(CANONICAL, record())))
    assert err.error_class == "UnknownSchemaId" and "4242" in err.message


def test_an_unknown_schema_id_is_retryable_and_found_once_registered() -> None:
    # Registries replicate asynchronously; a producer registers just before it produces. A 404 is
    # "not yet", not a bad record: retryable (the worker rewinds and backs off), never dead-lettered.
    clock = [1000.0]
    dec, registry = decoder({}, unknown_schema_retry_s=60, clock=lambda: clock[0])
    value = framed(9, avro(CANONICAL, record()))
    for _ in range(3):
        with pytest.raises(SchemaNotYetKnown, match="schema id 9 is not registered yet") as caught:
            dec.decode(value)
        assert isinstance(caught.value, RegistryUnavailable) and not isinstance(caught.value, RecordError)
    assert registry.calls == [9]  # the miss is cached, briefly
    registry.schemas[9] = json.dumps(CANONICAL)
    clock[0] += UNKNOWN_RECHECK_S
    assert dec.decode(value)["sessionId"] == "s-1"
    assert registry.calls == [9, 9]


def test_an_id_unknown_for_longer_than_the_bound_is_dead_lettered_and_asked_once_a_second() -> None:
    clock = [1000.0]
    dec, registry = decoder({}, unknown_schema_retry_s=30, clock=lambda: clock[0])
    value = framed(9, avro(CANONICAL, record()))
    for _ in range(29):
        with pytest.raises(SchemaNotYetKnown):
            dec.decode(value)
        clock[0] += 1
    assert len(registry.calls) == 29
    clock[0] += 1  # unknown for 30 s now
    err = error_of(dec, value)
    assert err.error_class == "UnknownSchemaId"
    assert "unknown for 30 s" in err.message and "decode.unknown_schema_retry_s" in err.message
    for _ in range(100):  # a backlog of records with that id: dead-lettered without a request each
        assert error_of(dec, value).error_class == "UnknownSchemaId"
    assert len(registry.calls) == 30
    # Registered after all: the next record after the recheck interval is decoded.
    registry.schemas[9] = json.dumps(CANONICAL)
    clock[0] += UNKNOWN_RECHECK_S
    assert dec.decode(value)["sessionId"] == "s-1"


def test_ids_waiting_together_have_their_own_bounds() -> None:
    clock = [1000.0]
    dec, _ = decoder({}, unknown_schema_retry_s=10, clock=lambda: clock[0])
    with pytest.raises(SchemaNotYetKnown):
        dec.decode(framed(1, b"\x00"))
    clock[0] += 5
    with pytest.raises(SchemaNotYetKnown):
        dec.decode(framed(2, b"\x00"))
    clock[0] += 5
    assert error_of(dec, framed(1, b"\x00")).error_class == "UnknownSchemaId"
    with pytest.raises(SchemaNotYetKnown):  # already waiting when id 1 was given up on: keeps its wait
        dec.decode(framed(2, b"\x00"))
    clock[0] += 5
    assert error_of(dec, framed(2, b"\x00")).error_class == "UnknownSchemaId"


def test_a_burst_of_distinct_unknown_ids_costs_one_wait_not_one_per_id() -> None:
    """Garbage that only looks framed (plain Avro starting with a null union branch is 0x00 too)
    carries a different "id" in every record; waiting the bound for each would block the partition."""
    clock = [1000.0]
    dec, registry = decoder({}, unknown_schema_retry_s=60, clock=lambda: clock[0])
    with pytest.raises(SchemaNotYetKnown):
        dec.decode(framed(1, b"\x00"))
    clock[0] += 60
    assert error_of(dec, framed(1, b"\x00")).error_class == "UnknownSchemaId"
    for schema_id in range(2, 200):  # each a new id, one registry request each, none waited for
        clock[0] += 0.5
        err = error_of(dec, framed(schema_id, b"\x00"))
        assert err.error_class == "UnknownSchemaId" and "not waited for" in err.message
        assert error_of(dec, framed(schema_id, b"\x00")).error_class == "UnknownSchemaId"  # and it stays so
    assert len(registry.calls) == 1 + 1 + 198
    # A quiet minute later, a new unknown id is waited for again (a schema registered late).
    clock[0] += 61
    with pytest.raises(SchemaNotYetKnown):
        dec.decode(framed(500, b"\x00"))


def test_registry_outage_is_not_a_record_error() -> None:
    def down(schema_id: int) -> str:
        raise ConnectionError("registry:8081 refused")

    dec = ConfluentWireDecoder(down, load_schema(None))
    with pytest.raises(RegistryUnavailable) as caught:
        dec.decode(framed(1, avro(CANONICAL, record())))
    assert not isinstance(caught.value, RecordError)
    assert "refused" in str(caught.value)


def test_schema_not_found_from_a_fetcher_is_an_unknown_id() -> None:
    def fetch(schema_id: int) -> str:
        raise SchemaNotFound(schema_id)

    dec = ConfluentWireDecoder(fetch, load_schema(None))
    with pytest.raises(SchemaNotYetKnown):
        dec.decode(framed(3, b""))


def test_corrupt_body() -> None:
    # A string length far beyond the buffer, or a negative length.
    for body in (b"\x02\xff\xff\xff\xff\x0f", b"\x00\x01"):
        err = error_of(decoder()[0], framed(1, body))
        assert err.error_class in {"CorruptBody", "Truncated"}, err


def test_trailing_garbage_is_corrupt() -> None:
    err = error_of(decoder()[0], framed(1, avro(CANONICAL, record()) + b"\x00\x00"))
    assert err.error_class == "CorruptBody" and "2 trailing" in err.message


def test_invalid_utf8_is_corrupt() -> None:
    body = bytearray(avro(CANONICAL, record(eventId="AAAA")))
    body[body.index(b"AAAA")] = 0xFF
    assert error_of(decoder()[0], framed(1, bytes(body))).error_class == "CorruptBody"


def test_incompatible_writer_schema() -> None:
    # The writer has no sessionId and the reader's sessionId has no default.
    writer = copy.deepcopy(CANONICAL)
    writer["fields"] = [f for f in writer["fields"] if f["name"] != "sessionId"]
    dec, _ = decoder({5: writer})
    value = {k: v for k, v in record().items() if k != "sessionId"}
    err = error_of(dec, framed(5, avro(writer, value)))
    assert err.error_class == "IncompatibleSchema"


def test_writer_schema_that_is_not_avro() -> None:
    dec = ConfluentWireDecoder(lambda i: '{"type": "nonsense"}', load_schema(None))
    assert error_of(dec, framed(1, b"\x00")).error_class == "IncompatibleSchema"


def test_registry_client_adapter() -> None:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    client = SchemaRegistryClient.new_client({"url": "mock://decode-test"})
    schema_id = client.register_schema("interactions-value", Schema(json.dumps(CANONICAL), "AVRO"))
    dec = ConfluentWireDecoder.from_registry(client, load_schema(None))
    assert dec.decode(framed(schema_id, avro(CANONICAL, record())))["eventId"] == "e-1"
    with pytest.raises(SchemaNotYetKnown):
        dec.decode(framed(schema_id + 1000, b""))


def test_plain_decoder_round_trip_and_evolution() -> None:
    writer = copy.deepcopy(CANONICAL)
    writer["fields"].append({"name": "channel", "type": "string", "default": "web"})
    dec = PlainAvroDecoder(writer, load_schema(None))
    out = dec.decode(avro(writer, record(channel="app")))
    assert out == record()
    same = PlainAvroDecoder(CANONICAL, load_schema(None))
    assert same.decode(avro(CANONICAL, record())) == record()


def test_plain_decoder_errors() -> None:
    dec = PlainAvroDecoder(CANONICAL, load_schema(None))
    assert error_of(dec, b"").error_class == "EmptyValue"
    assert error_of(dec, avro(CANONICAL, record())[:-2]).error_class == "Truncated"
    assert error_of(dec, avro(CANONICAL, record()) + b"\x01").error_class == "CorruptBody"


def test_packaged_reader_schema_is_the_canonical_one() -> None:
    assert load_schema(None)["name"] == "com.personalize.connector.InteractionEvent"


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_ever_raise_decode_error(body: bytes) -> None:
    dec, _ = decoder()
    plain = PlainAvroDecoder(CANONICAL, load_schema(None))
    for d, value in ((dec, framed(1, body)), (dec, body), (plain, body)):
        # An id the registry does not know is retryable for a while, never an exception of another kind.
        with contextlib.suppress(DecodeError, SchemaNotYetKnown):
            d.decode(value)
