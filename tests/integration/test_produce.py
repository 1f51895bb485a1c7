"""`connector.tools.produce` against the real local Kafka broker and schema registry.

Produces sample traffic (with bad records) to a fresh topic, reads it back with a plain consumer
and confluent-kafka's AvroDeserializer, and checks every record arrived as generated.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import connector_config, read_topic, write_config

import avro_schemas
from connector.tools.produce import produce
from connector.tools.samples import KINDS
from connector.tools.workload import INVALID_EVENT_KINDS, UNDECODABLE_KINDS, SampleRecord, generate

pytestmark = pytest.mark.integration

N_EVENTS = 2_000
BAD_RATIO = 0.05
ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list[Any]:
    import time

    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-produce-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1_000, timeout=1.0):
                if msg.error() is not None:
                    raise AssertionError(f"consume error: {msg.error()}")
                messages.append(msg)
        # Anything beyond `expected` would be a duplicate (idempotence is on): linger a moment.
        messages.extend(m for m in consumer.consume(num_messages=1_000, timeout=1.0) if m.error() is None)
    finally:
        consumer.close()
    return messages


def _expected_decoded(value: dict[str, Any]) -> dict[str, Any]:
    """What the deserializer returns for a generated event: timestamp-millis comes back as datetime."""
    out = dict(value)
    out["sentAt"] = dt.datetime.fromtimestamp(value["sentAt"] / 1000, tz=dt.UTC)
    return out


def test_produced_traffic_reads_back_as_generated(
    stack: Any, new_topic: Callable[..., str], registry_client: Any
) -> None:
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    topic = new_topic(partitions=3)
    records = list(generate(N_EVENTS, None, seed=2024, bad_ratio=BAD_RATIO))
    expected_bad = Counter(r.bad_kind for r in records if r.bad_kind is not None)
    assert set(expected_bad) >= UNDECODABLE_KINDS  # the seed exercises every undecodable kind

    summary = produce(records, stack.bootstrap, stack.registry_url, topic, progress=False)

    assert summary.produced == N_EVENTS
    assert summary.bad == dict(expected_bad)
    assert summary.good == N_EVENTS - sum(expected_bad.values())
    assert summary.sessions == len({r.session_id for r in records})
    assert registry_client.get_latest_version(f"{topic}-value").schema_id == summary.schema_id

    messages = _consume_all(stack.bootstrap, topic, N_EVENTS)
    assert len(messages) == N_EVENTS

    # Kafka orders records per partition only; the key (sessionId) pins a session to one partition,
    # so per session the consumed order must equal the generated order.
    sent: dict[bytes, list[SampleRecord]] = defaultdict(list)
    for r in records:
        sent[r.key].append(r)
    received: dict[bytes, list[Any]] = defaultdict(list)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    for m in messages:
        received[m.key()].append(m)
        partitions[m.key()].add(m.partition())
    assert received.keys() == sent.keys()
    assert all(len(p) == 1 for p in partitions.values())
    assert len({p for ps in partitions.values() for p in ps}) == 3  # sessions spread over partitions

    deserialize = AvroDeserializer(registry_client, conf={"subject.name.strategy.type": "TOPIC"})
    ctx = SerializationContext(topic, MessageField.VALUE)
    seen_bad: Counter[str] = Counter()
    for key, generated in sent.items():
        got = received[key]
        assert len(got) == len(generated)
        for record, msg in zip(generated, got, strict=True):
            assert msg.key() == record.session_id.encode()
            if record.bad_kind in UNDECODABLE_KINDS:
                with pytest.raises(Exception):  # noqa: B017 - magic byte, unknown id, EOF alike
                    deserialize(msg.value(), ctx)
                seen_bad[record.bad_kind] += 1
                continue
            decoded = deserialize(msg.value(), ctx)
            assert isinstance(decoded, dict) and record.value is not None
            expected = _expected_decoded(record.value)
            # eventValue is an Avro float (32-bit): compare approximately, everything else exactly.
            if expected["eventValue"] is not None:
                assert decoded["eventValue"] == pytest.approx(expected["eventValue"], rel=1e-6)
                expected["eventValue"] = decoded["eventValue"]
            assert decoded == expected
            if record.bad_kind in INVALID_EVENT_KINDS:
                seen_bad[record.bad_kind] += 1
                # Valid Avro, but breaking the PutEvents rule its label names.
                if record.bad_kind == "missing-session":
                    assert decoded["sessionId"] == ""
                elif record.bad_kind == "reserved-property":
                    assert "userId" in decoded["properties"]
                elif record.bad_kind == "too-many-impressions":
                    assert len(decoded["impression"]) == 26
                elif record.bad_kind == "long-recommendation-id":
                    assert len(decoded["recommendationId"]) == 41
            else:
                assert decoded["sessionId"] == record.session_id
                assert len(decoded["impression"]) <= 25
    assert seen_bad == expected_bad


@pytest.mark.parametrize("kind", ["items", "action-interactions"])
def test_produce_kind_writes_the_kind_with_its_packaged_schema_to_its_route(
    stack: Any, new_topic: Callable[..., str], registry_client: Any, group_id: str, tmp_path: Path, kind: str
) -> None:
    """`produce --kind` sends a kind's sample records to the topic of the route for its destination,
    written with its packaged schema; a kind no route receives needs --topic."""
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    sample = KINDS[kind]
    topic = new_topic(partitions=2, suffix=kind)
    route: dict[str, Any] = {"name": "r", "destination": sample.destination, "topics": [topic]}
    route.update({"tracking_id": "t"} if kind == "action-interactions" else {"dataset_arn": ARN})
    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url,
                              emulator_url="http://127.0.0.1:9", topics=[], group_id=group_id, tracking_id="t")
    config["routes"] = [route]
    path = write_config(tmp_path, config)

    done = _produce_cli(path, "--kind", kind, "--events", "60", "--bad-ratio", "0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "records produced" in done.stdout and "60" in done.stdout
    latest = registry_client.get_latest_version(f"{topic}-value").schema
    assert json.loads(latest.schema_str) == json.loads(avro_schemas.read(sample.schema))

    generated = list(sample.generate(60, None, 7, 0.1))  # the CLI's default seed
    got = {(r.key, r.value) for r in read_topic(stack.bootstrap, topic)}
    assert len(got) == 60
    deserialize = AvroDeserializer(registry_client, conf={"subject.name.strategy.type": "TOPIC"})
    ctx = SerializationContext(topic, MessageField.VALUE)
    decoded: dict[bytes, list[Any]] = {key: [] for key, _ in got}
    for key, value in got:
        with contextlib.suppress(Exception):  # the undecodable bad records
            decoded[key].append(deserialize(value, ctx)[sample.id_field])
    for record in generated:
        if record.bad_kind is None:
            assert record.value is not None and record.value[sample.id_field] in decoded[record.key]

    other = "users" if kind == "items" else "actions"
    refused = _produce_cli(path, "--kind", other, "--events", "1")
    assert refused.returncode == 2 and f"no route of the config sends to {other}; pass --topic NAME" in refused.stderr


@pytest.mark.parametrize(("value_format", "cli_kind"), [("json_schema", "items"), ("protobuf", "action-interactions")])
def test_produce_format_writes_every_kind_with_its_packaged_twin(
    stack: Any, new_topic: Callable[..., str], registry_client: Any, group_id: str, tmp_path: Path, value_format: str,
    cli_kind: str,
) -> None:
    """`produce --format json_schema|protobuf --kind K`: the kind's packaged JSON Schema / .proto is
    registered under `<topic>-value`, and the connector's decoder, reading it from the registry,
    gets each good record back and refuses the undecodable ones. One kind through the CLI, the
    others through produce() (the CLI's only work beyond it is choosing the kind's schema)."""
    from connector.decode import JsonSchemaWireDecoder, ProtobufWireDecoder, load_schema
    from connector.records import DecodeError

    path = write_config(tmp_path, connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url="http://127.0.0.1:9",
        topics=["unused"], group_id=group_id, tracking_id="t"))
    twins = avro_schemas.PROTOS if value_format == "protobuf" else avro_schemas.JSON_SCHEMAS
    for kind in ("items", "users", "actions", "action-interactions"):
        sample = KINDS[kind]
        topic = new_topic(partitions=1, suffix=kind)
        if kind == cli_kind:
            done = _produce_cli(path, "--format", value_format, "--kind", kind, "--topic", topic, "--events", "40",
                                "--bad-ratio", "0.2")
            assert done.returncode == 0, done.stdout + done.stderr
        else:
            produce(sample.generate(40, None, 7, 0.2), stack.bootstrap, stack.registry_url, topic, progress=False,
                    schema=sample.schema, value_format=value_format)
        latest = registry_client.get_latest_version(f"{topic}-value").schema
        assert latest.schema_type == ("PROTOBUF" if value_format == "protobuf" else "JSON")
        assert latest.schema_str == avro_schemas.read(twins[sample.schema])

        if value_format == "protobuf":
            decoder: Any = ProtobufWireDecoder.from_registry(registry_client, unknown_schema_retry_s=0)
        else:
            reader = load_schema(Path(avro_schemas.__file__).parent / sample.schema)
            decoder = JsonSchemaWireDecoder.from_registry(registry_client, reader, unknown_schema_retry_s=0)
        generated = list(sample.generate(40, None, 7, 0.2))  # the CLI's default seed
        produced = read_topic(stack.bootstrap, topic)
        assert [r.key for r in produced] == [g.key for g in generated]
        assert {g.bad_kind for g in generated} & UNDECODABLE_KINDS, kind
        for record, rec in zip(generated, produced, strict=True):
            if record.bad_kind in UNDECODABLE_KINDS:
                with pytest.raises(DecodeError):
                    decoder.decode(rec.value)
            else:
                assert record.value is not None
                assert decoder.decode(rec.value)[sample.id_field] == record.value[sample.id_field], kind


def _produce_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("personalize-connector")
    return subprocess.run([str(exe), "produce", "--config", str(config), *args], capture_output=True, text=True,
                          timeout=120, check=False, stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})
