"""The dead-letter topic: records the pipeline cannot deliver, with the reason attached.

A dead letter keeps the original key, value and headers, and adds headers that say where it came
from and why it failed, so it can be inspected and replayed after a fix. A record counts as done
only when the broker acknowledged its dead letter: until then its offset holds the commit
watermark back.

Context headers (`dlq.context_headers`): `pkc` writes `pkc.error.*` and `pkc.source.*`; `connect`
writes Kafka Connect's `__connect.errors.*` (the names and value formats of Connect's
DeadLetterQueueReporter: UTF-8 text, partition and offset in decimal); `both` writes both sets.

What a dead letter promises, whatever the input:

- Its context headers describe the real source. Headers of a source record in the connector's
  namespaces (`pkc.*`, `__connect.errors.*`) could be forged by any producer: they are kept, renamed
  to `pkc.original.<name>`. Only `dlq replay` trusts the `pkc.source.*` (or Connect) position of
  what it reads, because it reads dead letters this connector wrote (see `DeadLetterFormat`).
- Every header key is valid UTF-8, so every client can read it (confluent-kafka cannot read a
  record whose header key is not UTF-8 at all, and cannot write one). A source header key that is
  not UTF-8 is written with Python's backslash escapes (`b"\\xffk"` -> `\\xffk`) and listed in
  `pkc.source.header_keys_escaped` (a JSON list of the escaped names). Header values are bytes and
  always kept byte-exact.
- It fits. A dead letter the producer or the broker refuses as too large is written once more,
  smaller: key and value cut to their first `PREVIEW_BYTES` (`pkc.error.key_truncated` /
  `pkc.error.value_truncated` = `true`, original sizes in `pkc.source.key_size` /
  `pkc.source.value_size`), the original headers omitted if they are larger than that
  (`pkc.error.headers_omitted` = how many), no stack trace. If that is refused too, the write fails
  with `DeadLetterRefused` and the worker does not commit past the record.
"""

from __future__ import annotations

import json
import logging
import queue
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from connector.records import RecordError, SourceRecord

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4096
MAX_STACKTRACE_BYTES = 16384
# What the smaller second attempt keeps of a key, a value and the original headers.
PREVIEW_BYTES = 4096

ContextHeaders = Literal["pkc", "connect", "both"]
DoneCallback = Callable[[SourceRecord, Exception | None], None]
Headers = list[tuple[str, bytes]]

PKC = "pkc."
CONNECT = "__connect.errors."
ORIGINAL = "pkc.original."
SOURCE_POSITION = ("pkc.source.topic", "pkc.source.partition", "pkc.source.offset")
CONNECT_POSITION = ("__connect.errors.topic", "__connect.errors.partition", "__connect.errors.offset")
# Said about the dead letter itself (not about one failure): kept when a replayed dead letter fails again.
ALTERATIONS = ("pkc.error.key_truncated", "pkc.error.value_truncated", "pkc.error.headers_omitted")

# Kafka Connect's Stage names (org.apache.kafka.connect.runtime.errors.Stage) and the class that ran
# it; the class name is distinct per stage, so a Connect-only dead letter still says which it was.
CONNECT_STAGE: dict[str, tuple[str, str]] = {
    "decode": ("VALUE_CONVERTER", "connector.decode.Decoder"),
    "validate": ("TASK_PUT", "connector.events.EventMapper"),
    "send": ("TASK_PUT", "connector.sink.PutEventsSink"),
}
_STAGE_OF_CLASS = {cls: stage for stage, (_, cls) in CONNECT_STAGE.items()}


class DeadLetterRefused(RuntimeError):
    """The broker (or the producer) refused even the reduced dead letter: the record is not done."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What is written to the dead-letter topic for one record."""

    key: bytes | None
    value: bytes | None
    headers: Headers

    @property
    def size(self) -> int:
        return len(self.key or b"") + len(self.value or b"") + sum(len(k) + len(v) for k, v in self.headers)


@dataclass(frozen=True, slots=True)
class DeadLetterFormat:
    """How dead letters are written.

    `trust_source_headers` is for `dlq replay` only: what it reads are dead letters, whose
    `pkc.source.*` (or `__connect.errors.*`) position is the original source, kept so that a record
    failing again still names it (and a replay derives the same event id). For any other source
    those headers are just bytes a producer chose.
    """

    context_headers: ContextHeaders = "pkc"
    include_stacktrace: bool = False
    trust_source_headers: bool = False

    def build(self, record: SourceRecord, error: RecordError) -> DeadLetter:
        kept, position = self._original_headers(record)
        escaped = [k for k, _ in kept if not _is_utf8(k)]
        headers: Headers = [(_writable_key(k), v) for k, v in kept]
        if escaped:
            names = [_writable_key(k) for k in escaped]
            headers.append(("pkc.source.header_keys_escaped", json.dumps(names).encode()))
        if record.headers_unreadable and not any(k == "pkc.source.headers_unreadable" for k, _ in headers):
            headers.append(("pkc.source.headers_unreadable", record.headers_unreadable.encode()))
        headers += self._context(position, error)
        return DeadLetter(record.key, record.value, headers)

    def _original_headers(self, record: SourceRecord) -> tuple[Headers, tuple[str, int, int]]:
        """The record's headers to keep, and the source position the context headers must name."""
        real = (record.topic, record.partition, record.offset)
        if not self.trust_source_headers:
            return [(ORIGINAL + k if _reserved(k) else k, v) for k, v in record.headers], real
        position = source_position(record.headers) or real
        return [(k, v) for k, v in record.headers if not _rewritten_on_replay(k)], position

    def _context(self, position: tuple[str, int, int], error: RecordError) -> Headers:
        topic, partition, offset = (str(p).encode() for p in position)
        message = _cut(error.message.encode("utf-8", "replace"), MAX_MESSAGE_BYTES)
        trace = _stacktrace(error) if self.include_stacktrace else None
        out: Headers = []
        if self.context_headers in ("pkc", "both"):
            out += [
                ("pkc.error.stage", error.stage.encode()),
                ("pkc.error.class", error.error_class.encode()),
                ("pkc.error.message", message),
                *([("pkc.error.stacktrace", trace)] if trace is not None else []),
                ("pkc.source.topic", topic),
                ("pkc.source.partition", partition),
                ("pkc.source.offset", offset),
            ]
        if self.context_headers in ("connect", "both"):
            stage, executing_class = CONNECT_STAGE[error.stage]
            out += [
                ("__connect.errors.topic", topic),
                ("__connect.errors.partition", partition),
                ("__connect.errors.offset", offset),
                ("__connect.errors.stage", stage.encode()),
                ("__connect.errors.class.name", executing_class.encode()),
                ("__connect.errors.exception.class.name", error.error_class.encode()),
                ("__connect.errors.exception.message", message),
                *([("__connect.errors.exception.stacktrace", trace)] if trace is not None else []),
            ]
        return out


def shrink(letter: DeadLetter) -> DeadLetter:
    """The smaller second attempt at a dead letter refused as too large (see the module docstring)."""
    context = [(k, v) for k, v in letter.headers if _reserved(k) and not k.startswith(ORIGINAL)]
    context = [(k, v) for k, v in context if not k.endswith(".stacktrace")]
    originals = [(k, v) for k, v in letter.headers if not _reserved(k) or k.startswith(ORIGINAL)]
    extra: Headers = []
    key, value = letter.key, letter.value
    if key is not None and len(key) > PREVIEW_BYTES:
        extra += [("pkc.error.key_truncated", b"true"), ("pkc.source.key_size", str(len(key)).encode())]
        key = key[:PREVIEW_BYTES]
    if value is not None and len(value) > PREVIEW_BYTES:
        extra += [("pkc.error.value_truncated", b"true"), ("pkc.source.value_size", str(len(value)).encode())]
        value = value[:PREVIEW_BYTES]
    if sum(len(k) + len(v) for k, v in originals) > PREVIEW_BYTES:
        extra.append(("pkc.error.headers_omitted", str(len(originals)).encode()))
        originals = []
    return DeadLetter(key, value, [*originals, *context, *extra])


def error_headers(record: SourceRecord, error: RecordError, fmt: DeadLetterFormat | None = None) -> Headers:
    """The headers of `record`'s dead letter (default format: pkc context headers)."""
    return (fmt or DeadLetterFormat()).build(record, error).headers


def parse_error_headers(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    """The pkc.* headers of a dead letter as text (for inspection, replay and tests).

    A dead letter written with Kafka Connect's headers only (`dlq.context_headers: connect`) is
    read through them: stage, class, message and source position come out under the pkc names.
    """
    items = list(headers or [])
    out = {k: v.decode("utf-8", "replace") for k, v in items if k.startswith(PKC)}
    connect = {k: v.decode("utf-8", "replace") for k, v in items if k.startswith(CONNECT)}
    derived = {
        "pkc.error.stage": _STAGE_OF_CLASS.get(connect.get("__connect.errors.class.name", ""),
                                               connect.get("__connect.errors.stage")),
        "pkc.error.class": connect.get("__connect.errors.exception.class.name"),
        "pkc.error.message": connect.get("__connect.errors.exception.message"),
        **{pkc: connect.get(c) for pkc, c in zip(SOURCE_POSITION, CONNECT_POSITION, strict=True)},
    }
    if "pkc.error.stage" not in out and "__connect.errors.stage" in connect:
        out.update({k: v for k, v in derived.items() if v is not None and k not in out})
    elif not all(k in out for k in SOURCE_POSITION):
        out.update({k: v for k, v in derived.items() if k in SOURCE_POSITION and v is not None})
    return out


def source_position(headers: Iterable[tuple[str, bytes]]) -> tuple[str, int, int] | None:
    """The original position a dead letter names (pkc.source.* or Connect's headers), if any."""
    parsed = parse_error_headers(headers)
    try:
        return parsed[SOURCE_POSITION[0]], int(parsed[SOURCE_POSITION[1]]), int(parsed[SOURCE_POSITION[2]])
    except (KeyError, ValueError):
        return None


def _rewritten_on_replay(key: str) -> bool:
    """The context headers of a replayed dead letter that its new dead letter writes afresh."""
    if key.startswith("pkc.error."):
        return key not in ALTERATIONS
    return key in SOURCE_POSITION or key.startswith(CONNECT)


def _reserved(key: str) -> bool:
    return key.startswith((PKC, CONNECT))


def _is_utf8(key: str) -> bool:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _writable_key(key: str) -> str:
    """A header key every client can write and read: a key read from bytes that are not UTF-8 (held
    with surrogate escapes, see connector.records) is written with backslash escapes instead."""
    if _is_utf8(key):
        return key
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _cut(data: bytes, limit: int) -> bytes:
    """At most `limit` bytes, cut on a character boundary (a header value meant to be read as text)."""
    return data[:limit].decode("utf-8", "ignore").encode()


def _stacktrace(error: BaseException) -> bytes:
    text = "".join(traceback.format_exception(error))
    return _cut(text.encode("utf-8", "replace"), MAX_STACKTRACE_BYTES)


class DeadLetterWriter(Protocol):
    topic: str

    def send(
        self, record: SourceRecord, error: RecordError, on_done: DoneCallback, topic: str | None = None
    ) -> None:
        """Write the dead letter to `topic` (default: the writer's topic)."""
        ...

    def poll(self) -> None: ...

    def flush(self, timeout_s: float) -> int: ...

    @property
    def pending(self) -> int: ...


@dataclass(slots=True)
class _Write:
    """One dead letter on its way: `shrunk` once it has been refused as too large and reduced."""

    record: SourceRecord
    letter: DeadLetter
    topic: str
    on_done: DoneCallback
    shrunk: bool = False


def refused_as_too_large(write: _Write, reason: str) -> _Write | Exception:
    """The next step after a refusal for size: the reduced letter, or the final error."""
    if write.shrunk:
        return DeadLetterRefused(
            f"dead-letter write failed: {write.topic} refused even the reduced dead letter of "
            f"{write.record.position()} ({write.letter.size:,} bytes): {reason}"
        )
    smaller = shrink(write.letter)
    log.warning(
        "the dead letter of %s (%s bytes) is too large for %s (%s); writing it again with key and value cut "
        "to %d bytes (pkc.error.value_truncated)", write.record.position(), f"{write.letter.size:,}", write.topic,
        reason, PREVIEW_BYTES,
    )
    return _Write(write.record, smaller, write.topic, write.on_done, shrunk=True)


DEAD_LETTER_BATCH_BYTES = 16_384


class ConfluentDeadLetterWriter:
    """Dead letters through a confluent-kafka producer (idempotent, acks=all).

    librdkafka refuses a message larger than `message.max.bytes` in produce() itself, and the broker
    refuses one larger than the topic's `max.message.bytes` in the delivery report: both are answered
    by one smaller attempt (`shrink`). A broker refusal is retried from `poll()`, not from inside the
    delivery callback, where producing again would re-enter librdkafka's poll.
    """

    def __init__(
        self, topic: str, bootstrap_servers: str, client_config: Mapping[str, Any],
        fmt: DeadLetterFormat | None = None,
    ) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.format = fmt or DeadLetterFormat()
        config: dict[str, Any] = {
            # The topic's max.message.bytes limits a record batch, not a letter: with librdkafka's
            # default (1 MB) several letters that each fit were refused together and cut. 16 kB is
            # kafka-python's batch_size: a larger letter always goes out alone in its batch.
            "batch.size": DEAD_LETTER_BATCH_BYTES,
            **_producer_safe(client_config),
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
        self._producer = Producer(config)
        self._pending = 0
        self._retries: queue.SimpleQueue[_Write] = queue.SimpleQueue()

    @property
    def pending(self) -> int:
        return self._pending

    def send(
        self, record: SourceRecord, error: RecordError, on_done: DoneCallback, topic: str | None = None
    ) -> None:
        self._pending += 1
        self._produce(_Write(record, self.format.build(record, error), topic or self.topic, on_done))

    def _produce(self, write: _Write) -> None:
        from confluent_kafka import KafkaError, KafkaException

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                self._next_after_refusal(write, str(err))
            else:
                self._finish(write, None if err is None else RuntimeError(f"dead-letter write failed: {err}"))

        while True:
            try:
                self._producer.produce(
                    write.topic,
                    key=write.letter.key,
                    value=write.letter.value,
                    headers=cast(list[tuple[str, str | bytes | None]], write.letter.headers),
                    on_delivery=delivered,
                )
                return
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self._producer.poll(0.1)
            except KafkaException as exc:
                kafka_error = exc.args[0] if exc.args else None
                if isinstance(kafka_error, KafkaError) and kafka_error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                    step = refused_as_too_large(write, f"{kafka_error.str()} (the producer's message.max.bytes)")
                    if isinstance(step, _Write):
                        write = step
                        continue
                    self._finish(write, step)
                else:
                    self._finish(write, RuntimeError(f"dead-letter write failed: {exc}"))
                return

    def _next_after_refusal(self, write: _Write, reason: str) -> None:
        step = refused_as_too_large(write, reason)
        if isinstance(step, _Write):
            self._retries.put(step)
        else:
            self._finish(write, step)

    def _finish(self, write: _Write, error: Exception | None) -> None:
        self._pending -= 1
        write.on_done(write.record, error)

    def _produce_retries(self) -> bool:
        produced = False
        while True:
            try:
                write = self._retries.get_nowait()
            except queue.Empty:
                return produced
            self._produce(write)
            produced = True

    def poll(self) -> None:
        self._producer.poll(0)
        self._produce_retries()

    def flush(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            self._producer.flush(max(0.0, deadline - time.monotonic()))
            # A refusal served by that flush queued a smaller attempt: send it and wait for it too.
            if not self._produce_retries() or time.monotonic() >= deadline:
                return self._pending


# librdkafka logs a warning for every consumer-only property handed to a producer; the shared
# `kafka.config` carries mostly security settings, so pass only what a producer understands.
_CONSUMER_ONLY_PREFIXES = (
    "group.", "session.timeout", "heartbeat.", "max.poll", "auto.offset", "enable.auto", "auto.commit",
    "partition.assignment", "fetch.", "isolation.level", "queued.", "enable.partition.eof",
    "check.crcs", "allow.auto.create", "client.rack",
)


def _producer_safe(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith(_CONSUMER_ONLY_PREFIXES)}
