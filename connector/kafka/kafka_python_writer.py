"""Dead letters through a kafka-python producer (idempotent, acks=all), for `kafka.client: kafka-python`.

kafka-python completes a send's future on its own I/O thread. The worker's `on_done` must run on
the worker thread (it touches the offset tracker), so completions are queued here and handed to
`on_done` from `poll()`, which the worker calls every turn, as with the confluent writer.

A dead letter larger than the producer's `max_request_size` is refused by send() itself, one larger
than the topic's `max.message.bytes` by the broker (MessageSizeTooLargeError on the future): both
get one smaller attempt (connector.dlq.shrink), the broker's from `poll()` on the worker thread.
kafka-python's idempotent producer treats the broker's refusal as fatal: it aborts every batch it
holds and refuses all further sends. So after a broker refusal the producer is replaced, and every
write that failed with the old one is sent again, unchanged, with the new one (only a refusal by the
current producer counts against a dead letter).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from connector.dlq import DeadLetterFormat, DoneCallback, PendingLetter, refused_as_too_large
from connector.records import RecordError, SourceRecord

log = logging.getLogger(__name__)

# A completion from the I/O thread: the write, the producer generation it went out with, and its
# error (None: acknowledged).
_Completion = tuple[PendingLetter, int, BaseException | None]


class KafkaPythonDeadLetterWriter:
    def __init__(
        self,
        topic: str,
        config: Mapping[str, Any],
        fmt: DeadLetterFormat | None = None,
    ) -> None:
        """`config`: KafkaProducer keyword arguments, from connector.kafka.kafka_python_config.producer_config."""
        self.topic = topic
        self.format = fmt or DeadLetterFormat()
        self._config = dict(config)
        self._producer = self._new_producer()
        self._generation = 0
        self._completions: queue.SimpleQueue[_Completion] = queue.SimpleQueue()
        self._pending = 0

    def _new_producer(self) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(**self._config)

    def _replace_producer(self) -> None:
        """A fresh producer after the old one went fatal; the old one is closed off this thread."""
        old, self._producer = self._producer, self._new_producer()
        self._generation += 1
        threading.Thread(target=old.close, kwargs={"timeout": 5}, name="dlq-producer-close", daemon=True).start()

    @property
    def pending(self) -> int:
        return self._pending

    def send(
        self, record: SourceRecord, error: RecordError, on_done: DoneCallback, topic: str | None = None
    ) -> None:
        """Write the dead letter to `topic` (default: the writer's topic)."""
        self._pending += 1
        self._send(PendingLetter(record, self.format.build(record, error), topic or self.topic, on_done))

    def _send(self, write: PendingLetter) -> None:
        from kafka.errors import MessageSizeTooLargeError

        completions = self._completions
        letter = write.letter
        # kafka-python refuses a record with neither key nor value (librdkafka allows it); a
        # keyless tombstone is dead-lettered with an empty value instead.
        value = b"" if letter.value is None and letter.key is None else letter.value
        try:
            # Blocks up to max_block_ms when the producer's buffer is full: that is the backpressure.
            future = self._producer.send(write.topic, key=letter.key, value=value, headers=letter.headers)
        except MessageSizeTooLargeError as exc:  # over max_request_size: refused before it left
            self._after_refusal(write, f"{exc!r} (the producer's max_request_size)")
            return
        except Exception as exc:  # KafkaTimeoutError (no metadata / buffer in time), closed producer
            self._finish(write, RuntimeError(f"dead-letter write failed: {exc!r}"))
            return
        generation = self._generation
        future.add_callback(lambda _metadata: completions.put((write, generation, None)))
        future.add_errback(lambda exc: completions.put((write, generation, exc)))

    def _after(self, write: PendingLetter, generation: int, exc: BaseException | None) -> None:
        """On the worker thread: finish the write, or send it again (see the module docstring)."""
        from kafka.errors import MessageSizeTooLargeError

        if exc is not None and generation != self._generation:
            self._send(write)  # failed with a producer that has been replaced since: not its fault
        elif isinstance(exc, MessageSizeTooLargeError):
            log.warning("the broker refused a dead letter as too large; the dead-letter producer is replaced "
                        "(kafka-python's idempotent producer cannot continue after that)")
            self._replace_producer()
            self._after_refusal(write, f"{exc!r} (the topic's max.message.bytes)")
        else:
            self._finish(write, None if exc is None else RuntimeError(f"dead-letter write failed: {exc!r}"))

    def _after_refusal(self, write: PendingLetter, reason: str) -> None:
        step = refused_as_too_large(write, reason)
        if isinstance(step, PendingLetter):
            self._send(step)
        else:
            self._finish(write, step)

    def _finish(self, write: PendingLetter, error: Exception | None) -> None:
        self._pending -= 1
        write.on_done(write.record, error)

    def poll(self) -> None:
        """Report the acknowledged (or failed) dead letters to their callbacks, on this thread."""
        while True:
            try:
                write, generation, exc = self._completions.get_nowait()
            except queue.Empty:
                return
            self._after(write, generation, exc)

    def flush(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for every dead letter to be acknowledged; the number still pending."""
        import time

        from kafka.errors import KafkaTimeoutError

        deadline = time.monotonic() + timeout_s
        while True:
            with suppress(KafkaTimeoutError):  # what is still pending is the answer
                self._producer.flush(timeout=max(0.0, deadline - time.monotonic()))
            self.poll()  # may send a smaller attempt of a refused dead letter: wait for that too
            if self._pending == 0 or time.monotonic() >= deadline:
                return self._pending

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.close(timeout=timeout_s)
        self.poll()
