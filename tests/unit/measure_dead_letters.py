"""What the hostile-input handling of dead letters costs on the paths every record takes.

    PYTHONPATH=. .venv/bin/python tests/unit/measure_dead_letters.py

- kafka-python's record parser with and without connector.kafka.kafka_python's lenient
  header-key wrapper (every record of the kafka-python source goes through it), microseconds per
  record, best of 9 interleaved rounds over a 20,000-record batch;
- DeadLetterFormat.build per dead letter in each `dlq.context_headers` mode.
"""

from __future__ import annotations

import time

from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

import connector.kafka.kafka_python as kafka_python_source
from connector.dlq import DeadLetterFormat
from connector.records import DecodeError, SourceRecord

RECORDS = 20_000
HEADERS = [("trace-id", b"abc"), ("src", b"web")]


def batch() -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 26)
    for i in range(RECORDS):
        builder.append(i, timestamp=None, key=b"session-123", value=b"x" * 200, headers=HEADERS)
    return bytes(builder.build())


def parse_us(data: bytes) -> float:
    start = time.perf_counter()
    n = sum(1 for _ in DefaultRecordBatch(data))
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    data = batch()
    kafka_python_source.read_header_keys_losslessly()
    lenient_read = DefaultRecordBatch._read_msg
    strict_read = lenient_read.__wrapped__
    rounds: dict[str, list[float]] = {"strict": [], "lenient": []}
    for _ in range(9):  # interleaved, so a busy moment on a shared machine hits both alike
        for name, read in (("strict", strict_read), ("lenient", lenient_read)):
            DefaultRecordBatch._read_msg = read
            rounds[name].append(parse_us(data))
    DefaultRecordBatch._read_msg = lenient_read
    strict, lenient = min(rounds["strict"]), min(rounds["lenient"])
    print(f"kafka-python parse: {strict:.2f} us/record strict, {lenient:.2f} with the lenient wrapper "
          f"({(lenient / strict - 1) * 100:+.1f}%)")
    record = SourceRecord("clicks", 0, 1, b"k", b"x" * 200, tuple(HEADERS))
    error = DecodeError("first byte is 0x07")
    for mode in ("pkc", "connect", "both"):
        fmt = DeadLetterFormat(mode)
        start = time.perf_counter()
        for _ in range(RECORDS):
            fmt.build(record, error)
        print(f"DeadLetterFormat({mode!r}).build: {(time.perf_counter() - start) / RECORDS * 1e6:.1f} us/dead letter")


if __name__ == "__main__":
    main()
