"""The dead-letter topic: records the pipeline cannot deliver, with the reason attached.

A dead letter keeps the original key, value and headers, and adds headers that say where it came
from and why it failed (modelled on Kafka Connect's `__connect.errors.*`), so it can be inspected
and replayed after a fix. A record counts as done only when the broker acknowledged its dead
letter: until then its offset holds the commit watermark back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from connector.records import RecordError, SourceRecord

MAX_MESSAGE_BYTES = 4096

DoneCallback = Callable[[SourceRecord, Exception | None], None]


def error_headers(record: SourceRecord, error: RecordError) -> list[tuple[str, bytes]]:
    """Original headers followed by the pkc.* context headers.

    A record that fails again after a replay from the dead-letter topic carries the error of its
    latest failure and still names its original source position (so a replay derives the same
    event id and inspection shows where it really came from).
    """
    message = error.message.encode("utf-8", "replace")[:MAX_MESSAGE_BYTES]
    source = [(k, v) for k, v in record.headers if k.startswith("pkc.source.")] or [
        ("pkc.source.topic", record.topic.encode()),
        ("pkc.source.partition", str(record.partition).encode()),
        ("pkc.source.offset", str(record.offset).encode()),
    ]
    return [
        *((k, v) for k, v in record.headers if not k.startswith("pkc.")),
        ("pkc.error.stage", error.stage.encode()),
        ("pkc.error.class", error.error_class.encode()),
        ("pkc.error.message", message),
        *source,
    ]


def parse_error_headers(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """The pkc.* headers of a dead letter as text (for inspection, replay and tests)."""
    return {k: v.decode("utf-8", "replace") for k, v in headers or [] if k.startswith("pkc.")}


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


class ConfluentDeadLetterWriter:
    """Dead letters through a confluent-kafka producer (idempotent, acks=all)."""

    def __init__(self, topic: str, bootstrap_servers: str, client_config: Mapping[str, Any]) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        config: dict[str, Any] = {
            **_producer_safe(client_config),
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
        self._producer = Producer(config)
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    def send(
        self, record: SourceRecord, error: RecordError, on_done: DoneCallback, topic: str | None = None
    ) -> None:
        self._pending += 1

        def delivered(err: Any, _msg: Any) -> None:
            self._pending -= 1
            on_done(record, None if err is None else RuntimeError(f"dead-letter write failed: {err}"))

        while True:
            try:
                self._producer.produce(
                    topic or self.topic,
                    key=record.key,
                    value=record.value,
                    headers=cast(list[tuple[str, str | bytes | None]], error_headers(record, error)),
                    on_delivery=delivered,
                )
                return
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self._producer.poll(0.1)

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> int:
        return int(self._producer.flush(timeout_s))


# librdkafka logs a warning for every consumer-only property handed to a producer; the shared
# `kafka.config` carries mostly security settings, so pass only what a producer understands.
_CONSUMER_ONLY_PREFIXES = (
    "group.", "session.timeout", "heartbeat.", "max.poll", "auto.offset", "enable.auto", "auto.commit",
    "partition.assignment", "fetch.", "isolation.level", "queued.", "enable.partition.eof",
    "check.crcs", "allow.auto.create", "client.rack",
)


def _producer_safe(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith(_CONSUMER_ONLY_PREFIXES)}
