"""kafka-python reads a header key that is not UTF-8 losslessly instead of failing the partition."""

from __future__ import annotations

import pytest
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

import connector.kafka.kafka_python as kafka_python_source
from connector.records import header_key_bytes


class RawKey(str):
    """A key kafka-python's builder writes as these bytes (its encode() is what the builder calls)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawKey:
        key = super().__new__(cls, raw.decode("utf-8", "surrogateescape"))
        key.raw = raw
        return key

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def batch(headers: list[tuple[str, bytes]]) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    builder.append(0, timestamp=None, key=b"k", value=b"v0", headers=[])
    builder.append(1, timestamp=None, key=b"k", value=b"v1", headers=headers)
    builder.append(2, timestamp=None, key=b"k", value=b"v2", headers=[("ok", b"2")])
    return bytes(builder.build())


def test_kafka_python_alone_fails_the_whole_batch_on_such_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the connector runs into without read_header_keys_losslessly (a crash loop on restart).
    original = getattr(DefaultRecordBatch._read_msg, "__wrapped__", DefaultRecordBatch._read_msg)
    monkeypatch.setattr(DefaultRecordBatch, "_read_msg", original)
    with pytest.raises(CorruptRecordError, match="UnicodeDecodeError"):
        list(DefaultRecordBatch(batch([(RawKey(b"\xff\xfe"), b"\xff")])))


def test_with_the_connector_the_key_comes_back_as_its_bytes_and_the_other_records_are_untouched() -> None:
    kafka_python_source.read_header_keys_losslessly()
    records = list(DefaultRecordBatch(batch([(RawKey(b"\xff\xfe-k"), b"\xff\x00"), ("plain", b"p")])))
    assert [r.value for r in records] == [b"v0", b"v1", b"v2"]
    [(key, value), plain] = records[1].headers
    assert header_key_bytes(key) == b"\xff\xfe-k" and value == b"\xff\x00"
    assert plain == ("plain", b"p") and type(plain[0]) is str
    assert records[2].headers == [("ok", b"2")]
    # kafka-python's fetcher encodes every key again to count header bytes: that must not fail.
    assert len(key.encode("utf-8")) == len(b"\xff\xfe-k")
