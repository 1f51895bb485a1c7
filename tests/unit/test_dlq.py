"""What a dead letter says: real positions, originals kept, UTF-8 keys, Connect's headers, a size that fits."""

from __future__ import annotations

import json

from connector.dlq import (
    PREVIEW_BYTES,
    DeadLetterFormat,
    error_headers,
    parse_error_headers,
    shrink,
    source_position,
)
from connector.records import DecodeError, InvalidEvent, SourceRecord, header_key, header_key_bytes

FORGED = (("pkc.source.topic", b"payments"), ("pkc.source.partition", b"7"), ("pkc.source.offset", b"123456"),
          ("pkc.error.stage", b"send"), ("__connect.errors.topic", b"elsewhere"), ("trace-id", b"\x00\xffabc"))


def record(headers: tuple[tuple[str, bytes], ...] = (), value: bytes | None = b"\x07junk",
           key: bytes | None = b"k") -> SourceRecord:
    return SourceRecord("clicks", 2, 41, key, value, headers)


def test_a_source_record_cannot_forge_the_position_of_its_dead_letter() -> None:
    headers = error_headers(record(FORGED), DecodeError("not Avro"))
    parsed = parse_error_headers(headers)
    assert (parsed["pkc.source.topic"], parsed["pkc.source.partition"], parsed["pkc.source.offset"]) == (
        "clicks", "2", "41")
    assert parsed["pkc.error.stage"] == "decode"
    # The originals are kept, byte-exact, under their own names; headers outside the namespaces as they were.
    assert ("pkc.original.pkc.source.topic", b"payments") in headers
    assert ("pkc.original.pkc.source.offset", b"123456") in headers
    assert ("pkc.original.pkc.error.stage", b"send") in headers
    assert ("pkc.original.__connect.errors.topic", b"elsewhere") in headers
    assert ("trace-id", b"\x00\xffabc") in headers
    assert [k for k, _ in headers].count("pkc.source.topic") == 1


def test_a_replayed_dead_letter_that_fails_again_keeps_its_original_position() -> None:
    first = DeadLetterFormat().build(record(FORGED), DecodeError("not Avro"))
    # `dlq replay` reads it back at its position in the DLQ and it fails again.
    replayed = SourceRecord("clicks.dlq", 0, 9, first.key, first.value, tuple(first.headers))
    again = DeadLetterFormat(trust_source_headers=True).build(replayed, InvalidEvent("no sessionId"))
    parsed = parse_error_headers(again.headers)
    assert source_position(again.headers) == ("clicks", 2, 41)
    assert parsed["pkc.error.stage"] == "validate" and parsed["pkc.error.message"] == "no sessionId"
    names = [k for k, _ in again.headers]
    assert names.count("pkc.source.offset") == names.count("pkc.error.stage") == 1
    assert ("pkc.original.pkc.source.offset", b"123456") in again.headers  # still the record's own, once
    assert names.count("pkc.original.pkc.source.offset") == 1


def test_connect_context_headers_have_kafka_connects_names_and_formats() -> None:
    # Names and formats of Kafka Connect's DeadLetterQueueReporter: UTF-8 text, numbers in decimal.
    headers = DeadLetterFormat("connect").build(record(), DecodeError("unknown magic byte 7")).headers
    assert headers == [
        ("__connect.errors.topic", b"clicks"),
        ("__connect.errors.partition", b"2"),
        ("__connect.errors.offset", b"41"),
        ("__connect.errors.stage", b"VALUE_CONVERTER"),
        ("__connect.errors.class.name", b"connector.decode.Decoder"),
        ("__connect.errors.exception.class.name", b"DecodeError"),
        ("__connect.errors.exception.message", b"unknown magic byte 7"),
    ]


def test_inspect_and_replay_read_a_connect_only_dead_letter_and_both_sets_agree() -> None:
    for error, stage in ((DecodeError("x"), "decode"), (InvalidEvent("y"), "validate")):
        connect = DeadLetterFormat("connect").build(record(), error).headers
        both = DeadLetterFormat("both").build(record(), error).headers
        for headers in (connect, both):
            parsed = parse_error_headers(headers)
            assert parsed["pkc.error.stage"] == stage
            assert parsed["pkc.error.class"] == type(error).__name__
            assert source_position(headers) == ("clicks", 2, 41)
        assert {k for k, _ in both} >= {k for k, _ in connect}


def test_a_stack_trace_only_when_asked() -> None:
    try:
        raise InvalidEvent("eventValue: NaN")
    except InvalidEvent as exc:
        error = exc
    plain = dict(DeadLetterFormat("both").build(record(), error).headers)
    traced = dict(DeadLetterFormat("both", include_stacktrace=True).build(record(), error).headers)
    assert "pkc.error.stacktrace" not in plain and "__connect.errors.exception.stacktrace" not in plain
    trace = traced["__connect.errors.exception.stacktrace"].decode()
    assert "Traceback (most recent call last)" in trace and "InvalidEvent: eventValue: NaN" in trace
    assert traced["pkc.error.stacktrace"] == traced["__connect.errors.exception.stacktrace"]


def test_header_keys_that_are_not_utf8_are_escaped_listed_and_their_values_kept() -> None:
    raw = b"\xff\xfekey"
    headers = error_headers(record(((header_key(raw), b"\xff\x00v"), ("ok", b"1"))), DecodeError("x"))
    for key, _ in headers:
        key.encode("utf-8")  # every key can be written and read by every client
    assert ("\\xff\\xfekey", b"\xff\x00v") in headers and ("ok", b"1") in headers
    listed = json.loads(dict(headers)["pkc.source.header_keys_escaped"])
    assert listed == ["\\xff\\xfekey"]
    assert header_key_bytes(header_key(raw)) == raw


def test_headers_a_client_could_not_read_are_said_to_be_missing() -> None:
    unreadable = SourceRecord("clicks", 2, 41, None, b"x", (), None, "could not read them")
    assert dict(error_headers(unreadable, DecodeError("x")))["pkc.source.headers_unreadable"] == b"could not read them"


def test_a_reduced_dead_letter_fits_and_says_what_was_cut() -> None:
    big = record((("trace-id", b"t" * 10_000),), value=b"v" * 1_500_000, key=b"k" * 5000)
    letter = DeadLetterFormat("both", include_stacktrace=True).build(big, DecodeError("too big to be Avro"))
    small = shrink(letter)
    assert small.size < 4 * PREVIEW_BYTES
    assert small.value == b"v" * PREVIEW_BYTES and small.key == b"k" * PREVIEW_BYTES
    h = dict(small.headers)
    assert h["pkc.error.value_truncated"] == b"true" and h["pkc.source.value_size"] == b"1500000"
    assert h["pkc.error.key_truncated"] == b"true" and h["pkc.source.key_size"] == b"5000"
    assert h["pkc.error.headers_omitted"] == b"1" and "trace-id" not in h
    assert source_position(small.headers) == ("clicks", 2, 41)
    assert parse_error_headers(small.headers)["pkc.error.class"] == "DecodeError"
    # A small record's reduced letter keeps what fits.
    fits = shrink(DeadLetterFormat().build(record((("a", b"b"),)), DecodeError("x")))
    assert fits.value == b"\x07junk" and dict(fits.headers)["a"] == b"b"
    assert "pkc.error.value_truncated" not in dict(fits.headers)


def test_a_replayed_connect_only_dead_letter_that_fails_again_keeps_its_original_position() -> None:
    fmt = DeadLetterFormat("connect")
    first = fmt.build(record(FORGED), DecodeError("not Avro"))
    replayed = SourceRecord("clicks.dlq", 0, 9, first.key, first.value, tuple(first.headers))
    again = DeadLetterFormat("connect", trust_source_headers=True).build(replayed, InvalidEvent("no sessionId"))
    assert source_position(again.headers) == ("clicks", 2, 41)
    names = [k for k, _ in again.headers]
    assert names.count("__connect.errors.offset") == names.count("__connect.errors.stage") == 1
    assert dict(again.headers)["__connect.errors.exception.class.name"] == b"InvalidEvent"
    assert ("pkc.original.__connect.errors.topic", b"elsewhere") in again.headers
