"""The default source: confluent-kafka (librdkafka), batched `consume()`, manual commits."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition

from connector.config import ConfigError
from connector.kafka.base import CommitFailed, KafkaUnreachable, RebalanceListener, explain
from connector.records import SourceRecord, TopicPartition

log = logging.getLogger(__name__)

# What the delivery guarantee depends on; a user's `kafka.config` cannot override these.
_FIXED = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": False,
}
_DEFAULTS = {
    "partition.assignment.strategy": "cooperative-sticky",
    # A consumer must never create the topic it reads (librdkafka's default, stated).
    "allow.auto.create.topics": False,
    # Bound what librdkafka prefetches with a large backlog: 16 MiB of payload, and 10,000
    # messages a partition (librdkafka's default is 100,000 each; 10,000 is over a second of the
    # most one worker sends, so a fetch stays ahead of the loop). Not the cause of the RSS step
    # `make soak` shows at a broker restart: 2 MiB / 1,000 left it unchanged (issue 17 notes).
    "queued.max.messages.kbytes": 16384,
    "queued.min.messages": 10_000,
}


def consumer_config(
    bootstrap_servers: str, group_id: str, auto_offset_reset: str, user_config: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        **_DEFAULTS,
        **dict(user_config),
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": auto_offset_reset,
        **_FIXED,
    }


# librdkafka logs a warning for every consumer-only property handed to a producer; the shared
# `kafka.config` carries mostly security settings, so pass only what a producer understands.
_CONSUMER_ONLY_PREFIXES = (
    "group.", "session.timeout", "heartbeat.", "max.poll", "auto.offset", "enable.auto", "auto.commit",
    "partition.assignment", "fetch.", "isolation.level", "queued.", "enable.partition.eof",
    "check.crcs", "allow.auto.create", "client.rack",
)


def producer_properties(config: Mapping[str, Any]) -> dict[str, Any]:
    """`kafka.config` without its consumer-only properties: for a producer or the admin client."""
    return {k: v for k, v in config.items() if not k.startswith(_CONSUMER_ONLY_PREFIXES)}


DEAD_LETTER_BATCH_BYTES = 16_384


def dead_letter_producer_config(bootstrap_servers: str, user_config: Mapping[str, Any]) -> dict[str, Any]:
    """The dead-letter producer: idempotent, acks=all, over the producer's share of `user_config`."""
    return {
        # The topic's max.message.bytes limits a record batch, not a letter: with librdkafka's
        # default (1 MB) several letters that each fit were refused together and cut. 16 kB is
        # kafka-python's batch_size: a larger letter always goes out alone in its batch.
        "batch.size": DEAD_LETTER_BATCH_BYTES,
        **producer_properties(user_config),
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
    }


@contextmanager
def librdkafka_config_errors() -> Iterator[None]:
    """librdkafka refuses an unknown property or an invalid value when a client is created
    ('Invalid value for configuration property "fetch.wait.max.ms"'): a ConfigError naming it."""
    try:
        yield
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if not isinstance(error, KafkaError) or error.code() != KafkaError._INVALID_ARG:
            raise
        raise ConfigError(f"kafka.config: librdkafka refuses it: {error.str()}") from None


class ConfluentSource:
    def __init__(self, config: Mapping[str, Any]) -> None:
        # librdkafka reports connection, TLS and SASL failures only to error_cb (and then retries
        # forever); keep the latest so start-up can say why the broker cannot be reached.
        self._errors: list[str] = []
        self._consumer = Consumer(
            {**config, "error_cb": self._on_error, "logger": logging.getLogger("librdkafka")}
        )
        self._listener: RebalanceListener | None = None
        # Topics whose "unknown topic" consumer error was logged: librdkafka repeats it on every
        # poll while the topic is missing; the worker says so once (and /readyz turns false).
        self._unknown_logged: set[str] = set()
        # librdkafka calls on_assign (also with an empty assignment) once the group's join completed.
        self._joined = False
        self._reset_to_earliest = str(config.get("auto.offset.reset", "earliest")) in ("earliest", "smallest",
                                                                                      "beginning")

    def _on_error(self, error: KafkaError) -> None:
        self._errors.append(str(error.str()))
        del self._errors[:-5]

    def preflight(self, timeout_s: float = 10.0) -> None:
        """Fetch cluster metadata once; raise KafkaUnreachable naming the cause (wrong password,
        untrusted certificate, nothing listening) instead of retrying silently for ever."""
        try:
            self._consumer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            self._consumer.poll(0.5)  # error_cb is served by poll
            reasons = "; ".join(dict.fromkeys(self._errors)) or str(exc)
            raise KafkaUnreachable(f"cannot use the Kafka cluster: {explain(reasons)}") from None

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        # librdkafka subscribes by regex for entries starting with "^", as our config documents.
        self._listener = listener
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def _on_assign(self, _consumer: Any, partitions: list[KafkaTopicPartition]) -> None:
        self._unknown_logged.difference_update(p.topic for p in partitions)
        self._joined = True
        if self._listener:
            self._listener.on_assigned([TopicPartition(p.topic, p.partition) for p in partitions])

    def _on_revoke(self, _consumer: Any, partitions: list[KafkaTopicPartition]) -> None:
        if self._listener:
            self._listener.on_revoked([TopicPartition(p.topic, p.partition) for p in partitions])

    def _on_lost(self, _consumer: Any, partitions: list[KafkaTopicPartition]) -> None:
        if self._listener:
            self._listener.on_lost([TopicPartition(p.topic, p.partition) for p in partitions])

    def poll(self, max_records: int, timeout_s: float) -> list[SourceRecord]:
        messages = self._consumer.consume(max_records, timeout_s)
        records: list[SourceRecord] = []
        append = records.append
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    topic = str(msg.topic() or "")
                    if topic in self._unknown_logged:
                        log.debug("consumer error: %s", err)
                        continue
                    self._unknown_logged.add(topic)
                log.warning("consumer error: %s", err)
                continue
            headers, unreadable = record_headers(msg)
            kind, timestamp = msg.timestamp()
            append(
                SourceRecord(
                    cast(str, msg.topic()),
                    cast(int, msg.partition()),
                    cast(int, msg.offset()),
                    msg.key(),
                    msg.value(),
                    headers,
                    timestamp if kind else None,
                    unreadable,
                )
            )
        return records

    def commit(
        self, offsets: Mapping[TopicPartition, int], metadata: Mapping[TopicPartition, str] | None = None
    ) -> None:
        if not offsets:
            return
        metadata = metadata or {}
        request = [
            KafkaTopicPartition(tp.topic, tp.partition, offset, metadata=metadata[tp])
            if tp in metadata
            else KafkaTopicPartition(tp.topic, tp.partition, offset)
            for tp, offset in offsets.items()
        ]
        try:
            result = self._consumer.commit(offsets=request, asynchronous=False)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError._NO_OFFSET:
                return
            raise CommitFailed(str(exc)) from exc
        failed = [f"{p.topic}[{p.partition}]: {p.error}" for p in result or [] if p.error]
        if failed:
            raise CommitFailed("; ".join(failed))

    def committed(self, tps: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, tuple[int, str]]:
        request = [KafkaTopicPartition(tp.topic, tp.partition) for tp in tps]
        result = self._consumer.committed(request, timeout=timeout_s)
        return {TopicPartition(p.topic, p.partition): (p.offset, p.metadata or "") for p in result}

    def pause(self, tps: list[TopicPartition]) -> None:
        if tps:
            self._consumer.pause([KafkaTopicPartition(tp.topic, tp.partition) for tp in tps])

    def resume(self, tps: list[TopicPartition]) -> None:
        if tps:
            self._consumer.resume([KafkaTopicPartition(tp.topic, tp.partition) for tp in tps])

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(KafkaTopicPartition(tp.topic, tp.partition, offset))

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(p.topic, p.partition) for p in self._consumer.assignment()]

    def group_joined(self) -> bool:
        return self._joined

    def lagging(self, tps: list[TopicPartition], timeout_s: float) -> list[TopicPartition] | None:
        request = [KafkaTopicPartition(tp.topic, tp.partition) for tp in tps]
        try:
            positions = self._consumer.position(request)
            unread = [KafkaTopicPartition(p.topic, p.partition) for p in positions if p.offset < 0]
            # Nothing consumed yet: reading starts at the committed offset, else per auto.offset.reset.
            committed = ({(p.topic, p.partition): p.offset for p in self._consumer.committed(unread, timeout=timeout_s)}
                         if unread else {})
            behind = []
            for p in positions:
                low, high = self._consumer.get_watermark_offsets(
                    KafkaTopicPartition(p.topic, p.partition), timeout=timeout_s, cached=False)
                start = p.offset if p.offset >= 0 else committed.get((p.topic, p.partition), -1)
                if start < 0:
                    start = low if self._reset_to_earliest else high
                # Beyond the end: the log was truncated or re-created, a reset to its start is coming.
                if start < high or (start > high and low < high):
                    behind.append(TopicPartition(p.topic, p.partition))
        except KafkaException:
            return None
        return behind

    def missing_topics(self, topics: list[str], timeout_s: float) -> set[str] | None:
        try:
            # One metadata request per topic while they are few: the whole cluster's can be large.
            if len(topics) <= 10:
                found_topics = {t: self._consumer.list_topics(topic=t, timeout=timeout_s).topics.get(t) for t in topics}
            else:
                found_topics = dict(self._consumer.list_topics(timeout=timeout_s).topics)
        except KafkaException:
            return None
        missing = set()
        for topic in topics:
            found = found_topics.get(topic)
            if found is None or (found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                missing.add(topic)
            else:
                self._unknown_logged.discard(topic)
        return missing

    def partition_counts(self, topics: list[str], timeout_s: float) -> dict[str, int] | None:
        names = [t for t in topics if not t.startswith("^")]
        try:
            if len(names) == len(topics) and len(names) <= 10:  # as in missing_topics
                found = {t: self._consumer.list_topics(topic=t, timeout=timeout_s).topics.get(t) for t in names}
            else:
                found = dict(self._consumer.list_topics(timeout=timeout_s).topics)
        except KafkaException:
            return None
        return {t: len(m.partitions) for t, m in found.items() if m is not None and m.error is None and m.partitions}

    def close(self) -> None:
        self._consumer.close()


HEADERS_UNREADABLE = (
    "confluent-kafka cannot read this record's headers (a header key is not valid UTF-8), so they are not kept"
)


def record_headers(msg: Any) -> tuple[tuple[tuple[str, bytes], ...], str | None]:
    """A message's headers, and why they are missing if they cannot be read.

    confluent-kafka decodes header keys as UTF-8 in Message.headers() and has no way to get their
    bytes: a key that is not UTF-8 breaks the whole list (a SystemError over a UnicodeDecodeError,
    now or at the next C call, and a NULL where the key should be). The record itself is still good
    (key, value, position), so it is processed without headers and its dead letter says so
    (pkc.source.headers_unreadable).
    """
    try:
        headers = cast("list[tuple[str, bytes | None]] | None", msg.headers())
        # The client leaves a NULL in the tuple of every key it could not decode, and leaves the
        # decode error pending, which surfaces as a SystemError at the next C call, not always at
        # headers() itself: so the check below must run inside this try. gc.get_referents() walks
        # objects through their C traversal, which skips NULLs: it sees them without reading them
        # (reading a NULL slot crashes the interpreter).
        slots = gc.get_referents(headers) if headers else []
        broken = len(slots) != len(headers or ()) or any(len(gc.get_referents(pair)) != 2 for pair in slots)
    except (SystemError, UnicodeDecodeError):
        headers, broken = None, True
    if broken:
        # The message caches the broken list; replace it so that nothing can read it again.
        msg.set_headers([])
        return (), HEADERS_UNREADABLE
    return (tuple((k, v or b"") for k, v in headers) if headers else ()), None
