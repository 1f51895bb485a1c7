"""Dead letters against hostile input, on the real local stack, with both Kafka clients.

- header keys that are not UTF-8 (issue 13, item 4): the record is still processed, its dead
  letter keeps what the clients allow and says what it could not keep; `dlq inspect` and
  `dlq replay` read such dead letters;
- a bad record larger than the dead-letter topic accepts (item 5): a reduced dead letter, both
  when the producer refuses it locally and when the broker refuses it;
- forged `pkc.source.*` headers (item 8) never name the dead letter's position;
- Kafka Connect's context headers (item 15): inspect and replay read them.

Records with non-UTF-8 header keys cannot be produced through either client's public API
(confluent-kafka writes str(bytes) for a bytes key and crashes on a str with surrogates;
kafka-python encodes keys with strict UTF-8), so `produce` hands kafka-python a str subclass whose
encode() returns the raw bytes: the record on the wire is what any non-Python producer could write.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import committed_and_end_offsets, connector_config, read_topic, run_in_process, write_config

from connector.destinations.events import derived_event_id
from connector.dlq import PREVIEW_BYTES, parse_error_headers, source_position
from connector.records import SourceRecord
from connector.tools.produce import make_encoder, register_schema
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

CLIENTS = ["confluent", "kafka-python"]
NOT_AVRO = b"\x07 not a Confluent Avro frame"
RAW_KEY = b"\xff\xfe-not-utf8"


class RawKey(str):
    """A header key that kafka-python writes as these exact bytes (see the module docstring)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawKey:
        key = super().__new__(cls, raw.decode("utf-8", "surrogateescape"))
        key.raw = raw
        return key

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


Header = tuple[bytes | str, bytes]


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes, list[Header]]],
            partition: int = 0) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024, linger_ms=5)
    try:
        futures = [
            producer.send(topic, key=key, value=value, partition=partition,
                          headers=[(RawKey(k) if isinstance(k, bytes) else k, v) for k, v in headers])
            for key, value, headers in records
        ]
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(10)


def read_raw(bootstrap: str, topic: str, timeout_s: float = 60) -> list[Any]:
    """The records of `topic` with header keys as bytes (kafka-python, lenient as the connector reads)."""
    from kafka import KafkaConsumer, TopicPartition

    from connector.kafka.kafka_python import read_header_keys_losslessly

    read_header_keys_losslessly()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             max_partition_fetch_bytes=4 * 1024 * 1024)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        # Up to the end offsets, not until 5 s pass without a record: that wait was most of the test.
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(out)} records of {topic}; ends {ends}")
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def dlq_cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("personalize-connector")
    return subprocess.run([str(exe), "dlq", *args], capture_output=True, text=True, timeout=300, check=False,
                          stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})


def good_samples(registry_url: str, topic: str, n: int, seed: int) -> list[tuple[bytes, str | None]]:
    """`n` good records: (encoded value, own eventId or None)."""
    encode = make_encoder(register_schema(registry_url, f"{topic}-value"))
    return [(encode(s), s.event_id) for s in generate(n, 1, seed)]


def good_values(registry_url: str, topic: str, n: int, seed: int) -> list[bytes]:
    return [value for value, _ in good_samples(registry_url, topic, n, seed)]


def config(stack: Any, emulator: Any, tracking_id: str, group_id: str, topic: str, dlq_topic: str, client: str,
           tmp_path: Path, name: str = "config.yaml", **sections: dict[str, Any]) -> Path:
    return write_config(tmp_path, connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url, topics=[topic],
        group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq_topic, client=client, **sections), name)


@pytest.mark.parametrize("client", CLIENTS)
def test_header_keys_that_are_not_utf8_neither_crash_nor_block_and_dead_letters_keep_them(
    client: str, stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str, aws_env: None,
    tmp_path: Path,
) -> None:
    topic, dead = new_topic(partitions=1), new_topic(partitions=1, suffix="dlq")
    good = good_values(stack.registry_url, topic, 3, seed=4)
    hostile: list[Header] = [(RAW_KEY, b"\xff\x00 value"), ("plain", b"ok"), (b"\xc3\x28", b"")]
    forged: list[Header] = [("pkc.source.topic", b"payments"), ("pkc.source.offset", b"999")]
    produce(stack.bootstrap, topic, [
        (b"s", good[0], hostile),               # 0: delivered
        (b"s", NOT_AVRO, [*hostile, *forged]),  # 1: dead-lettered
        (b"s", good[1], []),                    # 2: delivered
        (b"s", good[2], hostile),               # 3: delivered
    ])
    path = config(stack, emulator, tracking_id, group_id, topic, dead, client, tmp_path)

    code, summary = run_in_process(path)

    assert code == 0, summary
    assert len(emulator.events(tracking_id)) == 3
    assert summary["dead_letters_by_reason"] == {"decode/WrongMagicByte": 1}
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends == {0: 4}
    [letter] = read_raw(stack.bootstrap, dead)
    headers = list(letter.headers)
    for key, _ in headers:
        str.encode(key, "utf-8")  # every key of a dead letter is UTF-8: every client can read it
    assert letter.value == NOT_AVRO
    assert source_position(headers) == (topic, 0, 1)  # the real position, not the forged one
    h = dict(headers)
    if client == "kafka-python":
        # kafka-python reads the keys' bytes: the dead letter has every header, escaped keys listed.
        assert h["\\xff\\xfe-not-utf8"] == b"\xff\x00 value" and h["plain"] == b"ok" and h["\\xc3("] == b""
        assert h["pkc.source.header_keys_escaped"] == b'["\\\\xff\\\\xfe-not-utf8", "\\\\xc3("]'
        assert h["pkc.original.pkc.source.topic"] == b"payments"
    else:
        # confluent-kafka cannot read any header of such a record: the dead letter says so.
        assert "confluent-kafka cannot read" in h["pkc.source.headers_unreadable"].decode()
        assert "plain" not in h

    # A DLQ that holds raw non-UTF-8 keys (written by another tool) must not crash inspect or replay.
    produce(stack.bootstrap, dead, [(b"s", NOT_AVRO, hostile)])
    inspected = dlq_cli("inspect", "--config", str(path))
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    assert "read 2 dead letter(s)" in inspected.stdout and "WrongMagicByte" in inspected.stdout
    dry = dlq_cli("replay", "--config", str(path), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    replayed = dlq_cli("replay", "--config", str(path))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "2 of 2 planned" in replayed.stdout
    again = read_raw(stack.bootstrap, dead)[2:]
    assert len(again) == 2  # both failed again and came back, still naming where they came from
    assert source_position(list(again[0].headers)) == (topic, 0, 1)
    assert source_position(list(again[1].headers)) == (dead, 0, 1)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("refused_by", ["producer", "broker"])
def test_a_bad_record_larger_than_the_dead_letter_topic_accepts_gets_a_reduced_dead_letter(
    client: str, refused_by: str, stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    # producer: 1.5 MB is over both producers' default limit (librdkafka message.max.bytes 1,000,000,
    # kafka-python max_request_size 1 MiB), refused in produce()/send(). broker: 300 kB passes the
    # producer and is refused by a DLQ topic that takes 100 kB.
    size, dlq_limit = (1_500_000, None) if refused_by == "producer" else (300_000, "100000")
    topic = new_topic(partitions=1, config={"max.message.bytes": "2097152"})
    dead = new_topic(partitions=1, suffix="dlq", config={"max.message.bytes": dlq_limit} if dlq_limit else None)
    good = good_values(stack.registry_url, topic, 2, seed=5)
    big = NOT_AVRO + b"x" * (size - len(NOT_AVRO))
    produce(stack.bootstrap, topic, [(b"s", good[0], []), (b"s", big, [("trace", b"t")]), (b"s", good[1], [])])
    path = config(stack, emulator, tracking_id, group_id, topic, dead, client, tmp_path)

    code, summary = run_in_process(path)

    assert code == 0, summary
    assert len(emulator.events(tracking_id)) == 2
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends == {0: 3}
    [letter] = read_topic(stack.bootstrap, dead)
    assert letter.value == big[:PREVIEW_BYTES]
    assert letter.headers["pkc.error.value_truncated"] == b"true"
    assert letter.headers["pkc.source.value_size"] == str(size).encode()
    assert letter.headers["trace"] == b"t"
    parsed = parse_error_headers(list(letter.headers.items()))
    assert (parsed["pkc.source.topic"], parsed["pkc.source.offset"], parsed["pkc.error.class"]) == (
        topic, "1", "WrongMagicByte")


@pytest.mark.parametrize("client", CLIENTS)
def test_dead_letters_that_each_fit_the_topic_are_written_whole_however_many_go_out_together(
    client: str, stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    # Found by tests/adversarial (sizes, confluent): the DLQ topic's max.message.bytes limits a
    # record *batch*; librdkafka put several 32-64 kB letters in one batch, the broker refused the
    # whole batch, and letters that fit alone were cut to a preview (or, refused again together,
    # stalled their partition). Eight bad records of 30 kB each, read in one poll, dead-lettered at once.
    topic = new_topic(partitions=1)
    dead = new_topic(partitions=1, suffix="dlq", config={"max.message.bytes": "65536"})
    bad = [NOT_AVRO + bytes([i]) * 30_000 for i in range(8)]
    produce(stack.bootstrap, topic, [(b"s", value, []) for value in bad])
    path = config(stack, emulator, tracking_id, group_id, topic, dead, client, tmp_path,
                  dlq={"max_consecutive_failures": 0, "max_failure_ratio": 0})

    code, summary = run_in_process(path)

    assert code == 0, summary
    letters = read_topic(stack.bootstrap, dead)
    assert sorted(letter.value or b"" for letter in letters) == bad
    assert not [letter.offset for letter in letters if "pkc.error.value_truncated" in letter.headers]
    assert committed_and_end_offsets(stack.bootstrap, group_id, topic) == ({0: 8}, {0: 8})


def test_connect_context_headers_are_read_by_inspect_and_replay(
    stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    topic, dead = new_topic(partitions=2), new_topic(partitions=1, suffix="dlq")
    samples = good_samples(stack.registry_url, topic, 6, seed=6)
    for i, (value, _) in enumerate(samples):
        produce(stack.bootstrap, topic, [(b"s", value, [])], partition=i % 2)
    connect = {"context_headers": "connect", "include_stacktrace": True}
    broken = config(stack, emulator, tracking_id, group_id, topic, dead, "confluent", tmp_path, "broken.yaml",
                    mapping={"session_id": "noSuchField"}, dlq=connect)
    fixed = config(stack, emulator, tracking_id, group_id, topic, dead, "confluent", tmp_path, "fixed.yaml",
                   dlq=connect)

    code, summary = run_in_process(broken)
    assert code == 0 and summary["dead_letters_by_reason"] == {"validate/InvalidEvent": 6}
    letters = read_topic(stack.bootstrap, dead)
    assert all(not any(k.startswith("pkc.") for k in r.headers) for r in letters)
    assert all(r.headers["__connect.errors.stage"] == b"TASK_PUT" for r in letters)
    assert all(b"Traceback" in r.headers["__connect.errors.exception.stacktrace"] for r in letters)

    inspected = dlq_cli("inspect", "--config", str(fixed))
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    assert "validate" in inspected.stdout and "InvalidEvent" in inspected.stdout and "sessionId" in inspected.stdout
    assert "no pkc.* headers" not in inspected.stdout
    replayed = dlq_cli("replay", "--config", str(fixed))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    # Event ids derived from the original positions, read from __connect.errors.*.
    expected = {own or derived_event_id(SourceRecord(topic, i % 2, i // 2, None, None))
                for i, (_, own) in enumerate(samples)}
    assert sorted(e["eventId"] for e in emulator.events(tracking_id)) == sorted(expected)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_dead_letter_refused_even_reduced_stalls_its_partition_without_committing_past_it(
    client: str, stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str, aws_env: None,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # A DLQ topic that takes 1,000 bytes cannot hold even the reduced letter (4 KiB of value).
    topic = new_topic(partitions=1)
    dead = new_topic(partitions=1, suffix="dlq", config={"max.message.bytes": "1000"})
    good = good_values(stack.registry_url, topic, 2, seed=7)
    produce(stack.bootstrap, topic, [(b"s", good[0], []), (b"s", NOT_AVRO + b"x" * 20_000, []), (b"s", good[1], [])])
    path = config(stack, emulator, tracking_id, group_id, topic, dead, client, tmp_path)

    from connector.app import build_worker
    from connector.config import load_settings

    # Stopping would crash-loop on this record after every restart: the partition stalls instead
    # (and would retry after dlq.stall_retry_s), never exiting and never committing past it.
    worker = build_worker(load_settings(path))
    runner = threading.Thread(target=lambda: codes.append(worker.run()), daemon=True)
    codes: list[int] = []
    runner.start()
    deadline = time.monotonic() + 60
    while not worker.health.stalled and time.monotonic() < deadline and runner.is_alive():
        time.sleep(0.1)
    stalled = worker.health.stalled
    worker.request_stop()
    runner.join(60)

    assert stalled == 1, "the partition should stall on the refused dead letter"
    assert codes == [0]  # the worker never stopped by itself; it drained on request
    assert f"refused even the reduced dead letter of {topic}[0]@1" in caplog.text
    assert "stalled at offset 1" in caplog.text
    committed, _ = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed[0] <= 1  # never past the record that is neither delivered nor dead-lettered
    assert read_topic(stack.bootstrap, dead) == []
