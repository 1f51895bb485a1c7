"""The AWS Glue Schema Registry framing, with records framed exactly as the AWS serde library does:
header version 3, compression byte (0 none, 5 zlib), the schema version UUID's 16 bytes (most
significant long first, big-endian: Python's uuid.bytes), then the Avro body (deflated with zlib
when the compression byte is 5)."""

from __future__ import annotations

import io
import json
import uuid
import zlib
from types import SimpleNamespace
from typing import Any

import fastavro
import pytest
from botocore.stub import Stubber

from connector.decode import GlueWireDecoder, build_decoder, load_schema
from connector.decode.base import UNKNOWN_RECHECK_S, RegistryUnavailable, SchemaNotYetKnown
from connector.decode.glue_wire import (
    GlueSchemaVersion,
    SchemaVersionNotFound,
    glue_client,
    glue_fetcher,
)
from connector.records import DecodeError

READER = load_schema(None)
V1 = uuid.UUID("6f3c2b8e-2a4d-4f0e-9a55-0123456789ab")
V2 = uuid.UUID("0b9e1c77-5d3a-4c1b-8e2f-fedcba987654")


def _schema_text() -> str:
    from connector.decode.base import canonical_schema_text

    return canonical_schema_text()


V2_SCHEMA = json.loads(_schema_text())
V2_SCHEMA["fields"] = [f for f in V2_SCHEMA["fields"] if f["name"] != "recommendationId"] + [
    {"name": "deviceType", "type": "string", "default": "unknown"}]


def event(i: int = 1, **extra: Any) -> dict[str, Any]:
    return {"eventId": f"e{i}", "trackingId": None, "sessionId": "s1", "userId": "u1", "eventType": "view",
            "eventValue": None, "itemId": f"i{i}", "properties": {"k": "v"}, "sentAt": 1_700_000_000_000 + i,
            "recommendationId": None, "impression": [], "eventAttributionSource": None, **extra}


def avro(schema: dict[str, Any], value: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), value)
    return buf.getvalue()


def as_read(value: dict[str, Any]) -> dict[str, Any]:
    """`value` as the reader schema reads it back (timestamp-millis become datetimes)."""
    return dict(fastavro.schemaless_reader(io.BytesIO(avro(json.loads(_schema_text()), value)), READER, READER))


def glue_frame(version: uuid.UUID, body: bytes, *, compress: bool = False) -> bytes:
    """What GlueSchemaRegistrySerializer writes (java.util.zip.Deflater's default = a zlib stream)."""
    return bytes([3, 5 if compress else 0]) + version.bytes + (zlib.compress(body) if compress else body)


class Registry:
    """A dict-backed fetch that counts its calls."""

    def __init__(self, versions: dict[uuid.UUID, GlueSchemaVersion]) -> None:
        self.versions = versions
        self.calls: list[uuid.UUID] = []
        self.fail: Exception | None = None

    def __call__(self, version_id: uuid.UUID) -> GlueSchemaVersion:
        self.calls.append(version_id)
        if self.fail is not None:
            raise self.fail
        try:
            return self.versions[version_id]
        except KeyError:
            raise SchemaVersionNotFound(str(version_id)) from None


@pytest.fixture
def registry() -> Registry:
    return Registry({V1: GlueSchemaVersion("AVRO", _schema_text()),
                     V2: GlueSchemaVersion("AVRO", json.dumps(V2_SCHEMA))})


def decoder(registry: Registry, clock: Any = None, **kw: Any) -> GlueWireDecoder:
    return GlueWireDecoder(registry, READER, **({"clock": clock} if clock else {}), **kw)


def error_class(dec: GlueWireDecoder, value: bytes | None) -> str:
    with pytest.raises(DecodeError) as info:
        dec.decode(value)
    return info.value.error_class


def test_the_header_layout_is_the_aws_serializers() -> None:
    framed = glue_frame(V1, b"body")
    assert framed[0] == 3 and framed[1] == 0 and len(framed) == 18 + 4
    # java.util.UUID's getMostSignificantBits()/getLeastSignificantBits() written big-endian.
    msb, lsb = int.from_bytes(framed[2:10], "big"), int.from_bytes(framed[10:18], "big")
    assert (msb << 64) | lsb == V1.int


def test_uncompressed_and_zlib_records_decode_and_the_schema_is_fetched_once(registry: Registry) -> None:
    dec = decoder(registry)
    body = avro(json.loads(_schema_text()), event(1))
    assert dec.decode(glue_frame(V1, body)) == as_read(event(1))
    assert dec.decode(glue_frame(V1, body, compress=True)) == as_read(event(1))
    for i in range(2, 50):
        assert dec.decode(glue_frame(V1, avro(json.loads(_schema_text()), event(i)), compress=i % 2 == 0))["eventId"] \
            == f"e{i}"
    assert registry.calls == [V1]


def test_an_evolved_writer_schema_is_resolved_to_the_reader_schema(registry: Registry) -> None:
    dec = decoder(registry)
    v2 = {k: v for k, v in event(7).items() if k != "recommendationId"} | {"deviceType": "mobile"}
    got = dec.decode(glue_frame(V2, avro(V2_SCHEMA, v2), compress=True))
    assert got == as_read(event(7))  # deviceType dropped, recommendationId back as its default (null)


def test_framing_errors_have_distinct_classes(registry: Registry) -> None:
    dec = decoder(registry)
    body = avro(json.loads(_schema_text()), event(1))
    assert error_class(dec, b"") == "EmptyValue"
    assert error_class(dec, None) == "EmptyValue"
    assert error_class(dec, b"\x00\x00\x00\x00\x01" + body) == "WrongHeaderVersion"  # Confluent-framed
    assert error_class(dec, bytes([3, 0]) + V1.bytes[:7]) == "Truncated"
    assert error_class(dec, bytes([3, 1]) + V1.bytes + body) == "UnknownCompression"
    assert error_class(dec, glue_frame(V1, body)[:-3]) == "Truncated"
    assert error_class(dec, glue_frame(V1, body, compress=True)[:-3]) == "Truncated"
    assert error_class(dec, bytes([3, 5]) + V1.bytes + b"not zlib at all") == "CorruptBody"
    assert error_class(dec, glue_frame(V1, b"\xff" * 12)) == "CorruptBody"
    assert error_class(dec, glue_frame(V1, body + b"junk")) == "CorruptBody"
    assert error_class(dec, glue_frame(V1, body, compress=True) + b"junk") == "CorruptBody"


def test_a_zlib_body_that_inflates_past_the_bound_is_corrupt(registry: Registry, monkeypatch: Any) -> None:
    import connector.decode.glue_wire as glue_wire

    monkeypatch.setattr(glue_wire, "MAX_INFLATED_BYTES", 1024)
    framed = bytes([3, 5]) + V1.bytes + zlib.compress(b"\x00" * 10_000)
    assert error_class(decoder(registry), framed) == "CorruptBody"


def test_an_unknown_version_waits_briefly_cached_and_is_found_once_created(registry: Registry) -> None:
    now = [1000.0]
    dec = decoder(registry, clock=lambda: now[0], unknown_schema_retry_s=60)
    unknown = uuid.UUID(int=42)
    framed = glue_frame(unknown, b"\x00")
    for _ in range(3):  # retryable, not a dead letter; Glue asked once per recheck interval
        with pytest.raises(SchemaNotYetKnown, match=str(unknown)):
            dec.decode(framed)
    assert registry.calls == [unknown]
    # Created a moment later (a producer racing its own registration): found at the next recheck.
    registry.versions[unknown] = GlueSchemaVersion("AVRO", _schema_text())
    now[0] += UNKNOWN_RECHECK_S
    assert dec.decode(glue_frame(unknown, avro(json.loads(_schema_text()), event(3)))) == as_read(event(3))
    assert registry.calls == [unknown, unknown]


def test_a_version_unknown_for_longer_than_the_bound_is_dead_lettered(registry: Registry) -> None:
    now = [1000.0]
    dec = decoder(registry, clock=lambda: now[0], unknown_schema_retry_s=60)
    framed = glue_frame(uuid.UUID(int=43), b"\x00")
    with pytest.raises(SchemaNotYetKnown):
        dec.decode(framed)
    now[0] += 59.5
    with pytest.raises(SchemaNotYetKnown):
        dec.decode(framed)
    now[0] += 0.5
    assert error_class(dec, framed) == "UnknownSchemaVersion"
    assert len(registry.calls) == 2  # the last answer was 0.5 s old: not asked again


def test_registry_outages_are_retryable_and_not_cached(registry: Registry) -> None:
    dec = decoder(registry)
    framed = glue_frame(V1, avro(json.loads(_schema_text()), event(1)))
    registry.fail = ConnectionError("connection refused")
    with pytest.raises(RegistryUnavailable):
        dec.decode(framed)
    registry.fail = RegistryUnavailable("ThrottlingException")
    with pytest.raises(RegistryUnavailable):
        dec.decode(framed)
    registry.fail = None
    assert dec.decode(framed) == as_read(event(1))
    assert registry.calls == [V1, V1, V1]


def test_a_version_that_is_not_avro_or_not_valid_is_a_remembered_decode_error(registry: Registry) -> None:
    json_version, broken = uuid.UUID(int=7), uuid.UUID(int=8)
    registry.versions[json_version] = GlueSchemaVersion("JSON", '{"type": "object"}')
    registry.versions[broken] = GlueSchemaVersion("AVRO", '{"type": "record", "name": "X", "fields": [{"name"')
    alien = uuid.UUID(int=9)
    registry.versions[alien] = GlueSchemaVersion("AVRO", json.dumps(
        {"type": "record", "name": "Alien", "fields": [{"name": "color", "type": "string"}]}))
    dec = decoder(registry)
    for _ in range(3):
        assert error_class(dec, glue_frame(json_version, b"{}")) == "NotAvro"
        assert error_class(dec, glue_frame(broken, b"\x00")) == "IncompatibleSchema"
    assert registry.calls == [json_version, broken]
    assert error_class(dec, glue_frame(alien, avro(json.loads(registry.versions[alien].definition),
                                                   {"color": "red"}))) == "IncompatibleSchema"


def test_registry_name_restricts_which_registry_versions_may_come_from(registry: Registry) -> None:
    registry.versions[V1] = GlueSchemaVersion("AVRO", _schema_text(), "other-registry")
    dec = decoder(registry, registry_name="shop")
    assert error_class(dec, glue_frame(V1, avro(json.loads(_schema_text()), event(1)))) == "UnknownSchemaVersion"
    registry.versions[V2] = GlueSchemaVersion("AVRO", _schema_text(), "shop")
    assert dec.decode(glue_frame(V2, avro(json.loads(_schema_text()), event(2))))["eventId"] == "e2"


# ------------------------------------------------------------------ boto3 glue, stubbed offline


@pytest.fixture
def glue(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    return glue_client("eu-west-1")


def test_glue_fetcher_reads_get_schema_version(glue: Any) -> None:
    arn = "arn:aws:glue:eu-west-1:123456789012:schema/shop/interactions"
    with Stubber(glue) as stub:
        stub.add_response("get_schema_version",
                          {"SchemaVersionId": str(V1), "SchemaDefinition": _schema_text(), "DataFormat": "AVRO",
                           "SchemaArn": arn, "VersionNumber": 1, "Status": "AVAILABLE"},
                          {"SchemaVersionId": str(V1)})
        assert glue_fetcher(glue)(V1) == GlueSchemaVersion("AVRO", _schema_text(), "shop")


@pytest.mark.parametrize(("code", "expected"), [
    ("EntityNotFoundException", SchemaVersionNotFound),
    ("ThrottlingException", RegistryUnavailable),
    ("AccessDeniedException", RegistryUnavailable),
    ("InternalServiceException", RegistryUnavailable),
    ("InvalidInputException", RegistryUnavailable),
])
def test_glue_errors_map_to_not_found_or_unavailable(glue: Any, code: str, expected: type[Exception]) -> None:
    with Stubber(glue) as stub:
        stub.add_client_error("get_schema_version", service_error_code=code, service_message="nope")
        with pytest.raises(expected):
            glue_fetcher(glue)(V1)


def test_build_decoder_makes_a_glue_decoder_from_settings(glue: Any) -> None:
    settings = SimpleNamespace(
        decode=SimpleNamespace(format="glue", reader_schema=None, writer_schema=None),
        glue=SimpleNamespace(region="eu-west-1", registry_name="shop", endpoint_url=None),
        personalize=SimpleNamespace(region="us-east-1"),
    )
    dec = build_decoder(settings, glue=glue)
    assert isinstance(dec, GlueWireDecoder)
    with Stubber(glue) as stub:
        stub.add_response("get_schema_version",
                          {"SchemaVersionId": str(V1), "SchemaDefinition": _schema_text(), "DataFormat": "AVRO",
                           "SchemaArn": "arn:aws:glue:eu-west-1:1:schema/shop/s"},
                          {"SchemaVersionId": str(V1)})
        assert dec.decode(glue_frame(V1, avro(json.loads(_schema_text()), event(1)))) == as_read(event(1))
    # Without a client, one is built from the section (region falls back to personalize.region).
    settings.glue = SimpleNamespace(region=None, registry_name=None, endpoint_url="http://localhost:1")
    assert isinstance(build_decoder(settings), GlueWireDecoder)
