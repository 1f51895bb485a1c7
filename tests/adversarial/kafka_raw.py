"""Produce hostile records exactly as given (header keys as raw bytes too) and read a topic back.

confluent-kafka's producer only takes `str` header keys (bytes become their repr) and kafka-python
encodes `str` keys as UTF-8, so a header key that is not UTF-8 is produced through kafka-python with
a `str` whose `encode` yields the raw bytes: what a producer in another language can write.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any


class RawHeaderKey(str):
    """A header key that kafka-python writes as these exact bytes."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawHeaderKey:
        obj = super().__new__(cls, raw.decode("utf-8", "replace"))
        obj.raw = raw
        return obj

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


@dataclass(frozen=True)
class Hostile:
    """One record to produce: partition, key, value, headers (keys as bytes), and what it is."""

    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[bytes, bytes]]
    kind: str
    event_id: str | None = None  # the eventId it is delivered with, if it can be delivered


def produce_hostile(bootstrap: str, topic: str, records: list[Hostile], max_request_size: int) -> list[int]:
    """Produce in order, waiting for each acknowledgement; the offset of each record."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=max_request_size,
                             linger_ms=0, retries=5)
    try:
        futures = [producer.send(topic, value=r.value, key=r.key, partition=r.partition,
                                 headers=[(RawHeaderKey(k), v) for k, v in r.headers])
                   for r in records]
        producer.flush(60)
        return [int(f.get(timeout=60).offset) for f in futures]
    finally:
        producer.close(10)


@dataclass(frozen=True)
class Letter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def read_all(bootstrap: str, topic: str, timeout_s: float = 60) -> list[Letter]:
    """Every record of `topic` (no group, no commit), headers as confluent-kafka gives them."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        positions = dict.fromkeys(partitions, 0)
        out: list[Letter] = []
        deadline = time.monotonic() + timeout_s
        while any(positions[p] < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(out)} records of {topic}: positions {positions}, ends {ends}")
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    continue
                headers: Any = msg.headers() or []
                out.append(Letter(msg.partition(), msg.offset(), msg.key(), msg.value(),
                                  [(k, v or b"") for k, v in headers]))
                positions[msg.partition()] = msg.offset() + 1
        return out
    finally:
        consumer.close()
