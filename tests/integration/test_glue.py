"""The Glue decoder through boto3 against moto's Glue in server mode (a real HTTP endpoint), with
schemas registered the way a producer registers them (create_registry, create_schema,
register_schema_version) and records framed as the AWS serde library frames them."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import fastavro
import pytest

from connector.decode import GlueWireDecoder, load_schema
from connector.decode.base import RegistryUnavailable, SchemaNotYetKnown, canonical_schema_text
from connector.decode.glue_wire import glue_client
from connector.records import DecodeError

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
READER = load_schema(None)
WRITER = json.loads(canonical_schema_text())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_glue() -> Iterator[str]:
    """moto_server on a free loopback port; yields its URL."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        pytest.skip("moto_server is not installed (pip install -e '.[dev]')")
    port = _free_port()
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None, "moto_server exited"
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def glue(moto_glue: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    return glue_client(REGION, moto_glue)


@pytest.fixture
def registry(glue: Any) -> str:
    name = f"registry-{uuid.uuid4().hex[:8]}"
    glue.create_registry(RegistryName=name)
    return name


def _frame(version_id: str, schema: dict[str, Any], value: dict[str, Any], *, compress: bool) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), value)
    body = zlib.compress(buf.getvalue()) if compress else buf.getvalue()
    return bytes([3, 5 if compress else 0]) + uuid.UUID(version_id).bytes + body


def _event(i: int) -> dict[str, Any]:
    return {"eventId": f"e{i}", "trackingId": None, "sessionId": "s1", "userId": "u1", "eventType": "view",
            "eventValue": 1.5, "itemId": f"i{i}", "properties": {"k": "v"}, "sentAt": 1_700_000_000_000 + i,
            "recommendationId": None, "impression": ["a", "b"], "eventAttributionSource": None}


def test_records_decode_with_the_writer_schema_glue_returns(glue: Any, registry: str) -> None:
    created = glue.create_schema(RegistryId={"RegistryName": registry}, SchemaName="interactions",
                                 DataFormat="AVRO", Compatibility="BACKWARD",
                                 SchemaDefinition=json.dumps(WRITER))
    v1 = created["SchemaVersionId"]
    v2_schema = dict(WRITER)
    v2_schema["fields"] = [*WRITER["fields"], {"name": "deviceType", "type": "string", "default": "unknown"}]
    v2 = glue.register_schema_version(SchemaId={"RegistryName": registry, "SchemaName": "interactions"},
                                      SchemaDefinition=json.dumps(v2_schema))["SchemaVersionId"]
    assert v1 != v2
    dec = GlueWireDecoder.from_client(glue, READER, registry_name=registry)
    for i in range(20):
        got = dec.decode(_frame(v1, WRITER, _event(i), compress=i % 2 == 1))
        assert got["eventId"] == f"e{i}" and got["impression"] == ["a", "b"]
        assert int(got["sentAt"].timestamp() * 1000) == 1_700_000_000_000 + i
    got = dec.decode(_frame(v2, v2_schema, {**_event(99), "deviceType": "tv"}, compress=True))
    assert got["eventId"] == "e99" and "deviceType" not in got


def test_an_unknown_version_and_a_json_schema_are_decode_errors(glue: Any, registry: str) -> None:
    # An unknown version waits (retryable) up to decode.unknown_schema_retry_s, then is a decode error.
    with pytest.raises(SchemaNotYetKnown):
        GlueWireDecoder.from_client(glue, READER).decode(_frame(str(uuid.uuid4()), WRITER, _event(1), compress=False))
    dec = GlueWireDecoder.from_client(glue, READER, unknown_schema_retry_s=0)
    with pytest.raises(DecodeError) as info:
        dec.decode(_frame(str(uuid.uuid4()), WRITER, _event(1), compress=False))
    assert info.value.error_class == "UnknownSchemaVersion"

    json_version = glue.create_schema(
        RegistryId={"RegistryName": registry}, SchemaName="json-events", DataFormat="JSON", Compatibility="NONE",
        SchemaDefinition=json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}),
    )["SchemaVersionId"]
    with pytest.raises(DecodeError) as info:
        dec.decode(bytes([3, 0]) + uuid.UUID(json_version).bytes + b'{"a": 1}')
    assert info.value.error_class == "NotAvro"


def test_a_version_from_another_registry_is_refused_when_registry_name_is_set(glue: Any, registry: str) -> None:
    other = f"other-{uuid.uuid4().hex[:8]}"
    glue.create_registry(RegistryName=other)
    version = glue.create_schema(RegistryId={"RegistryName": other}, SchemaName="interactions",
                                 DataFormat="AVRO", Compatibility="NONE",
                                 SchemaDefinition=json.dumps(WRITER))["SchemaVersionId"]
    with pytest.raises(DecodeError) as info:
        GlueWireDecoder.from_client(glue, READER, registry_name=registry).decode(
            _frame(version, WRITER, _event(1), compress=False))
    assert info.value.error_class == "UnknownSchemaVersion"
    assert GlueWireDecoder.from_client(glue, READER, registry_name=other).decode(
        _frame(version, WRITER, _event(1), compress=False))["eventId"] == "e1"


def test_glue_unreachable_is_registry_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    nothing = boto3.client("glue", region_name=REGION, endpoint_url=f"http://127.0.0.1:{_free_port()}")
    dec = GlueWireDecoder.from_client(nothing, READER)
    with pytest.raises(RegistryUnavailable):
        dec.decode(_frame(str(uuid.uuid4()), WRITER, _event(1), compress=False))


def test_the_connector_delivers_glue_framed_records_end_to_end(
    glue: Any, registry: str, moto_glue: str, stack: Any, new_topic: Any, group_id: str, emulator: Any,
    tracking_id: str, tmp_path: Path,
) -> None:
    """decode.format: glue through the real worker: Kafka -> Glue framing -> PutEvents."""
    from fixtures.pipeline import committed_and_end_offsets, connector_config, produce_raw, read_topic, run_in_process
    from fixtures.pipeline import write_config as write

    version = glue.create_schema(RegistryId={"RegistryName": registry}, SchemaName="interactions",
                                 DataFormat="AVRO", Compatibility="BACKWARD",
                                 SchemaDefinition=json.dumps(WRITER))["SchemaVersionId"]
    topic, dlq = new_topic(partitions=2), new_topic(partitions=1, suffix="dlq")
    records = [(b"s1", _frame(version, WRITER, _event(i), compress=i % 2 == 0)) for i in range(40)]
    records.append((b"s1", _frame(str(uuid.uuid4()), WRITER, _event(99), compress=False)))  # unknown version
    records.append((b"s1", b"\x00\x00\x00\x00\x01garbage"))  # Confluent framing on a Glue topic
    produce_raw(stack.bootstrap, topic, records, partition_for=lambda i: 0)
    config = connector_config(bootstrap=stack.bootstrap, registry_url=None, emulator_url=emulator.url, topics=[topic],
                              group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq,
                              # the unknown version above is never created: dead-letter it at once
                              decode={"format": "glue", "unknown_schema_retry_s": 0},
                              glue={"region": REGION, "endpoint_url": moto_glue, "registry_name": registry})
    code, summary = run_in_process(write(tmp_path, config))
    assert code == 0, summary
    received = {e["eventId"]: e for e in emulator.events(tracking_id)}
    assert sorted(received) == sorted(f"e{i}" for i in range(40))
    assert received["e3"]["impression"] == ["a", "b"] and json.loads(received["e3"]["properties"]) == {"k": "v"}
    classes = sorted(r.headers["pkc.error.class"].decode() for r in read_topic(stack.bootstrap, dlq))
    assert classes == ["UnknownSchemaVersion", "WrongHeaderVersion"]
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert {p: committed[p] for p, end in ends.items() if end} == {p: end for p, end in ends.items() if end}
