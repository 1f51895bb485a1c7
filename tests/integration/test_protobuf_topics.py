"""decode.format protobuf end to end: a Protobuf topic (schemas in Apicurio) through the worker into the emulator.

Both Kafka clients. Good records arrive with every field as generated; every kind of bad record is
dead-lettered with its stage and class; the offsets are committed to the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import (
    committed_and_end_offsets,
    connector_config,
    produce_raw,
    read_topic,
    run_in_process,
    write_config,
)

from connector.decode.protobuf_wire import frame
from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

MONEY = 'syntax = "proto3"; package shared; message Money { int64 cents = 1; }'
# A second message type on the topic, importing a schema registered under its own subject.
PURCHASE = """syntax = "proto3";
package shop;
import "shared/money.proto";
import "google/protobuf/timestamp.proto";
message Purchase {
  string sessionId = 1;
  string eventType = 2;
  google.protobuf.Timestamp sentAt = 3;
  shared.Money price = 4;
  optional string itemId = 5;
}"""


def register_proto(registry_client: Any, subject: str, text: str, references: list[Any] | None = None) -> int:
    from confluent_kafka.schema_registry import Schema

    return int(registry_client.register_schema(subject, Schema(text, "PROTOBUF", references or [])))


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_a_protobuf_topic_is_delivered_intact_and_its_bad_records_dead_lettered(
    client: str, stack: Any, new_topic: Any, group_id: str, registry_client: Any, emulator: Any,
    tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    from confluent_kafka.schema_registry import SchemaReference

    topic, dlq = new_topic(partitions=2), new_topic(partitions=1, suffix="dlq")
    samples = list(generate(120, 12, seed=11, bad_ratio=0.2))
    for i, sample in enumerate(samples):  # own ids: each delivered event is found by its record
        if sample.value is not None:
            sample.value["eventId"] = f"pb-{i}"
    summary = produce(samples, stack.bootstrap, stack.registry_url, topic, progress=False, value_format="protobuf")
    schema_id = summary.schema_id

    register_proto(registry_client, f"{topic}-money", MONEY)
    purchase_id = register_proto(registry_client, f"{topic}-purchase-value", PURCHASE,
                                 [SchemaReference("shared/money.proto", f"{topic}-money", 1)])
    broken = 'syntax = "proto3"; message A { strng x = 1; }'  # Apicurio stores it; protoc refuses it
    broken_id = register_proto(registry_client, f"{topic}-broken-value", broken)
    # Purchase{sessionId "s-p", eventType "buy", sentAt 1700000000 s, price {cents 250}, itemId "i-p"}
    purchase = (b"\x0a\x03s-p\x12\x03buy\x1a\x06\x08\x80\xe2\xcf\xaa\x06\x22\x03\x08\xfa\x01"
                b"\x2a\x03i-p")
    extra = [
        (b"s-p", frame(purchase_id, purchase)),
        (b"index", frame(schema_id, b"", (5,))),
        (b"wire-type", frame(schema_id, b"\x0d\x00")),  # field 1 (a string) as fixed32
        (b"broken", frame(broken_id, b"")),
    ]
    produce_raw(stack.bootstrap, topic, extra)

    # The workload's unknown-schema-id records use an id never registered: dead-letter them at once.
    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq,
                              client=client, decode={"format": "protobuf", "unknown_schema_retry_s": 0})
    code, stats = run_in_process(write_config(tmp_path, config))
    assert code == 0, stats

    received = {e["eventId"]: e for e in emulator.events(tracking_id)}
    good = {s.value["eventId"]: s.value for s in samples if s.bad_kind is None and s.value is not None}
    assert len(received) == len(good) + 1
    for event_id, value in good.items():
        assert_delivered_intact(received[event_id], value)
    [bought] = [e for e in received.values() if e["sessionId"] == "s-p"]
    assert (bought["eventType"], bought["itemId"], bought["sentAt"]) == ("buy", "i-p", 1_700_000_000)
    assert "properties" not in bought  # price is no mapped field: the default mapping reads `properties`

    dead = read_topic(stack.bootstrap, dlq)
    assert len(dead) == summary.bad_total + len(extra) - 1
    reasons = {(h["pkc.error.stage"], h["pkc.error.class"])
               for h in ({k: v.decode() for k, v in d.headers.items()} for d in dead)}
    assert {("decode", c) for c in ("UnknownMessageIndex", "CorruptBody", "InvalidProtobufSchema",
                                    "UnknownSchemaId", "WrongMagicByte")} <= reasons
    assert {stage for stage, _ in reasons} == {"decode", "validate"}
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends


def assert_delivered_intact(event: dict[str, Any], value: dict[str, Any]) -> None:
    """The emulator's stored entry (PutEvents as sent) carries each field of the generated record."""
    assert event["sessionId"] == value["sessionId"]
    assert event.get("userId") == value["userId"]
    assert event["eventType"] == value["eventType"]
    assert event.get("itemId") == value["itemId"]
    assert event["sentAt"] == pytest.approx(value["sentAt"] / 1000, abs=1e-6)
    assert json.loads(event.get("properties", "{}")) == value["properties"]
    assert event.get("recommendationId") == value["recommendationId"]
    assert event.get("impression", []) == value["impression"]
    assert event.get("metricAttribution", {}).get("eventAttributionSource") == value["eventAttributionSource"]
    if value["eventValue"] is None:
        assert "eventValue" not in event
    else:  # float, single precision on the wire as in Avro
        assert event["eventValue"] == pytest.approx(value["eventValue"], rel=1e-6)


def test_produce_format_protobuf_registers_the_packaged_proto_and_frames_each_event(
    stack: Any, new_topic: Any, registry_client: Any, group_id: str, tmp_path: Path,
) -> None:
    from avro_schemas import ITEM
    from connector.decode import ProtobufWireDecoder
    from connector.records import DecodeError
    from connector.tools.protobuf_records import interaction_event_proto, packaged_proto

    topic = new_topic(partitions=1)
    path = write_config(tmp_path, connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url="http://127.0.0.1:9",
        topics=[topic], group_id=group_id, tracking_id="t"))

    done = produce_cli(path, "--format", "protobuf", "--events", "40", "--bad-ratio", "0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    latest = registry_client.get_latest_version(f"{topic}-value").schema
    assert (latest.schema_type, latest.schema_str) == ("PROTOBUF", interaction_event_proto())

    generated = list(generate(40, None, 7, 0.1))  # the CLI's default seed
    decoder = ProtobufWireDecoder.from_registry(registry_client, unknown_schema_retry_s=0)
    produced = read_topic(stack.bootstrap, topic)
    assert [r.key for r in produced] == [g.key for g in generated]
    for sample, rec in zip(generated, produced, strict=True):
        if sample.bad_kind is None:
            assert sample.value is not None
            assert decoder.decode(rec.value)["sessionId"] == sample.value["sessionId"]
        elif sample.bad_kind in ("truncated", "not-avro", "unknown-schema-id"):
            with pytest.raises(DecodeError):
                decoder.decode(rec.value)

    # Every kind has its packaged .proto now (test_produce.py checks them all): items are produced too.
    items = new_topic(partitions=1)
    accepted = produce_cli(path, "--format", "protobuf", "--kind", "items", "--events", "1", "--topic", items)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert registry_client.get_latest_version(f"{items}-value").schema.schema_str == packaged_proto(ITEM)


def produce_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("personalize-connector")
    return subprocess.run([str(exe), "produce", "--config", str(config), *args], capture_output=True, text=True,
                          timeout=120, check=False, stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})
