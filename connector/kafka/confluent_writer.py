"""Dead letters through a confluent-kafka producer (idempotent, acks=all), the default client."""

from __future__ import annotations

import queue
import time
from collections.abc import Mapping
from typing import Any, cast

from connector.dlq import DeadLetterFormat, DoneCallback, PendingLetter, refused_as_too_large
from connector.records import RecordError, SourceRecord


class ConfluentDeadLetterWriter:
    """Dead letters through a confluent-kafka producer (idempotent, acks=all).

    librdkafka refuses a message larger than `message.max.bytes` in produce() itself, and the broker
    refuses one larger than the topic's `max.message.bytes` in the delivery report: both are answered
    by one smaller attempt (`shrink`). A broker refusal is retried from `poll()`, not from inside the
    delivery callback, where producing again would re-enter librdkafka's poll.
    """

    def __init__(self, topic: str, config: Mapping[str, Any], fmt: DeadLetterFormat | None = None) -> None:
        """`config`: the producer's, from connector.kafka.confluent.dead_letter_producer_config."""
        from confluent_kafka import Producer

        self.topic = topic
        self.format = fmt or DeadLetterFormat()
        self._producer = Producer(dict(config))
        self._pending = 0
        self._retries: queue.SimpleQueue[PendingLetter] = queue.SimpleQueue()

    @property
    def pending(self) -> int:
        return self._pending

    def send(
        self, record: SourceRecord, error: RecordError, on_done: DoneCallback, topic: str | None = None
    ) -> None:
        self._pending += 1
        self._produce(PendingLetter(record, self.format.build(record, error), topic or self.topic, on_done))

    def _produce(self, write: PendingLetter) -> None:
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
                    if isinstance(step, PendingLetter):
                        write = step
                        continue
                    self._finish(write, step)
                else:
                    self._finish(write, RuntimeError(f"dead-letter write failed: {exc}"))
                return

    def _next_after_refusal(self, write: PendingLetter, reason: str) -> None:
        step = refused_as_too_large(write, reason)
        if isinstance(step, PendingLetter):
            self._retries.put(step)
        else:
            self._finish(write, step)

    def _finish(self, write: PendingLetter, error: Exception | None) -> None:
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
