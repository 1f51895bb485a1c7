"""Produce hostile records exactly as given (header keys as raw bytes too) and read a topic back.

confluent-kafka's producer only takes `str` header keys (bytes become their repr) and kafka-python
encodes `str` keys as UTF-8, so a header key that is not UTF-8 is produced through kafka-python with
a `str` whose `encode` yields the raw bytes: what a producer in another language can write.
"""

from __future__ import annotations

import contextlib
import inspect
import textwrap
import time
from collections.abc import Iterator
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
    headers: list[tuple[str, bytes]]  # keys are RawHeaderKey: text (U+FFFD for bad bytes) + .raw

    def raw_header_keys(self) -> list[bytes]:
        return [k.raw if isinstance(k, RawHeaderKey) else k.encode() for k, _ in self.headers]


@contextlib.contextmanager
def _header_keys_as_bytes() -> Iterator[None]:
    """kafka-python decodes header keys as strict UTF-8 and raises on anything else; while reading a
    dead-letter topic back, make them RawHeaderKey instead (the exact bytes stay available).
    Both Kafka clients refuse such keys, so the test reader needs this; it is patched in the test
    process only (workers are subprocesses) and restored afterwards."""
    from kafka.record import default_records

    cls = default_records.DefaultRecordBatch
    original = cls._read_msg
    source = textwrap.dedent(inspect.getsource(original))
    strict = 'h_key = buffer[pos: pos + h_key_len].decode("utf-8")'
    assert strict in source, "kafka-python's record reader changed; update _header_keys_as_bytes"
    namespace: dict[str, Any] = {}
    patched = source.replace(strict, "h_key = RawHeaderKey(bytes(buffer[pos: pos + h_key_len]))")
    exec(patched, {**vars(default_records), "RawHeaderKey": RawHeaderKey}, namespace)
    cls._read_msg = namespace["_read_msg"]
    try:
        yield
    finally:
        cls._read_msg = original


def read_all(bootstrap: str, topic: str, timeout_s: float = 60) -> list[Letter]:
    """Every record of `topic` from the beginning to its end offsets (no group, no commit)."""
    from kafka import KafkaConsumer, TopicPartition

    with _header_keys_as_bytes():
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                 max_partition_fetch_bytes=16 * 1024 * 1024)
        try:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            out: list[Letter] = []
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < ends[tp] for tp in partitions):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"read {len(out)} records of {topic}; ends {ends}")
                for records in consumer.poll(timeout_ms=500).values():
                    out.extend(Letter(r.partition, r.offset, r.key, r.value, [(k, v or b"") for k, v in r.headers])
                               for r in records)
            return out
        finally:
            consumer.close()
