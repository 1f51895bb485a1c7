"""The local stack and its fixtures work: Kafka + Apicurio (Confluent-compatible API) end to end."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "avro_schemas" / "interaction_event.avsc"


def _events(n: int) -> list[dict]:
    return [
        {
            "eventId": f"e-{i}",
            "trackingId": None,
            "sessionId": f"s-{i % 3}",
            "userId": f"u-{i}" if i % 2 else None,
            "eventType": "click",
            "eventValue": 1.5 if i % 2 else None,
            "itemId": f"item-{i}",
            "properties": {"colour": "red", "rank": i, "price": 9.5, "new": True},
            "sentAt": dt.datetime(2025, 1, 1, 12, 0, i, 123000, tzinfo=dt.UTC),
            "recommendationId": None,
            "impression": [f"item-{i}", "item-x"],
            "eventAttributionSource": "test",
        }
        for i in range(n)
    ]


def _consume(stack, topic: str, group_id: str, expected: int, timeout: float = 30.0) -> list:
    from confluent_kafka import Consumer

    consumer = Consumer(
        stack.kafka_config(**{"group.id": group_id, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    )
    consumer.subscribe([topic])
    got = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.5):
                assert msg.error() is None, msg.error()
                got.append(msg)
    finally:
        consumer.close()
    return got


def test_avro_round_trip_through_kafka_and_registry(stack, new_topic, group_id, registry_client):
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    topic = new_topic(partitions=3)
    schema_str = SCHEMA_PATH.read_text()
    serializer = AvroSerializer(registry_client, schema_str)  # auto-registers under "<topic>-value"
    deserializer = AvroDeserializer(registry_client)
    ctx = SerializationContext(topic, MessageField.VALUE)

    events = _events(10)
    producer = Producer(stack.kafka_config(**{"enable.idempotence": True}))
    for ev in events:
        producer.produce(topic, key=ev["sessionId"].encode(), value=serializer(ev, ctx))
    assert producer.flush(30) == 0

    # Confluent wire format: magic byte 0 + 4-byte schema id, and the id is the registered one.
    latest = registry_client.get_latest_version(f"{topic}-value")
    msgs = _consume(stack, topic, group_id, expected=len(events))
    assert len(msgs) == len(events)
    for msg in msgs:
        assert msg.value()[0] == 0
        assert int.from_bytes(msg.value()[1:5], "big") == latest.schema_id

    decoded = sorted((deserializer(m.value(), ctx) for m in msgs), key=lambda e: e["eventId"])
    assert decoded == sorted(events, key=lambda e: e["eventId"])

    # A fresh client (no local cache) decodes by id too, through GET /schemas/ids/{id}.
    from confluent_kafka.schema_registry import SchemaRegistryClient

    fresh = AvroDeserializer(SchemaRegistryClient({"url": stack.registry_url}))
    assert fresh(msgs[0].value(), ctx) in events


def test_registry_lookup_matches_canonical_schema(stack, registry_client, subject_name):
    """Registering the same schema twice, or with other whitespace, gives the same id and version
    (Apicurio started with apicurio.ccompat.use-canonical-hash=true), and lookups by text work."""
    from confluent_kafka.schema_registry import Schema

    text = SCHEMA_PATH.read_text()
    compact = json.dumps(json.loads(text), separators=(",", ":"))
    first = registry_client.register_schema(subject_name, Schema(text, "AVRO"))
    assert registry_client.register_schema(subject_name, Schema(text.strip(), "AVRO")) == first
    assert registry_client.register_schema(subject_name, Schema(compact, "AVRO")) == first

    found = registry_client.lookup_schema(subject_name, Schema(compact, "AVRO"))
    assert found.schema_id == first
    assert found.version == 1
    assert registry_client.get_versions(subject_name) == [1]
    assert json.loads(registry_client.get_schema(first).schema_str) == json.loads(text)

    # Another subject with the same schema shares the id, as with Confluent's registry.
    other = registry_client.register_schema(f"{subject_name}-other", Schema(text, "AVRO"))
    assert other == first


_seen: dict[str, tuple[str, str]] = {}


@pytest.mark.parametrize("which", ["a", "b"])
def test_topics_and_groups_are_unique_per_test(stack, new_topic, group_id, subject_name, which):
    t1, t2 = new_topic(partitions=1), new_topic(partitions=2)
    assert t1 != t2
    assert t1.startswith(stack.run_id) and group_id.startswith(stack.run_id)
    md = stack.admin().list_topics(timeout=10).topics
    assert len(md[t1].partitions) == 1 and len(md[t2].partitions) == 2
    for other, (topic, group) in _seen.items():
        assert other != which
        assert topic not in (t1, t2)
        assert group != group_id
    _seen[which] = (t1, group_id)
