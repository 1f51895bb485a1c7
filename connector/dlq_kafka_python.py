"""Dead letters through a kafka-python producer (idempotent, acks=all), for `kafka.client: kafka-python`.

kafka-python completes a send's future on its own I/O thread. The worker's `on_done` must run on
the worker thread (it touches the offset tracker), so completions are queued here and handed to
`on_done` from `poll()`, which the worker calls every turn, as with the confluent writer.
"""

from __future__ import annotations

import queue
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from connector.dlq import DoneCallback, error_headers
from connector.records import RecordError, SourceRecord
from connector.source.kafka_python import producer_config


class KafkaPythonDeadLetterWriter:
    def __init__(
        self,
        topic: str,
        bootstrap_servers: str,
        client_config: Mapping[str, Any],
        auth: Mapping[str, Any] | None = None,
    ) -> None:
        """`client_config` is the librdkafka-style `kafka.config`; `auth` comes from
        connector.source.kafka_python.auth_config (kafka-python keyword arguments)."""
        from kafka import KafkaProducer

        self.topic = topic
        self._producer = KafkaProducer(**producer_config(bootstrap_servers, client_config, auth))
        self._completions: queue.SimpleQueue[tuple[DoneCallback, SourceRecord, Exception | None]] = (
            queue.SimpleQueue()
        )
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    def send(
        self, record: SourceRecord, error: RecordError, on_done: DoneCallback, topic: str | None = None
    ) -> None:
        """Write the dead letter to `topic` (default: the writer's topic)."""
        self._pending += 1
        completions = self._completions

        def acked(_metadata: Any) -> None:
            completions.put((on_done, record, None))

        def failed(exc: BaseException) -> None:
            completions.put((on_done, record, RuntimeError(f"dead-letter write failed: {exc!r}")))

        # kafka-python refuses a record with neither key nor value (librdkafka allows it); a
        # keyless tombstone is dead-lettered with an empty value instead.
        value = b"" if record.value is None and record.key is None else record.value
        try:
            # Blocks up to max_block_ms when the producer's buffer is full: that is the backpressure.
            future = self._producer.send(topic or self.topic, key=record.key, value=value,
                                         headers=error_headers(record, error))
        except Exception as exc:  # KafkaTimeoutError (no metadata / buffer in time), closed producer
            failed(exc)
            return
        future.add_callback(acked)
        future.add_errback(failed)

    def poll(self) -> None:
        """Report the acknowledged (or failed) dead letters to their callbacks, on this thread."""
        while True:
            try:
                on_done, record, error = self._completions.get_nowait()
            except queue.Empty:
                return
            self._pending -= 1
            on_done(record, error)

    def flush(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for every dead letter to be acknowledged; the number still pending."""
        from kafka.errors import KafkaTimeoutError

        with suppress(KafkaTimeoutError):  # what is still pending is the answer
            self._producer.flush(timeout=timeout_s)
        self.poll()
        return self._pending

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.close(timeout=timeout_s)
        self.poll()
