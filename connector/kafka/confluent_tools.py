"""The tools' Kafka clients over confluent-kafka: `ClusterAdmin` for `check`, `TopicReader` for `dlq`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import (
    AdminClient,
    _listoffsets,  # OffsetSpec, untyped in confluent-kafka's stubs
)

from connector.config import ConfigError
from connector.kafka.base import ClusterInfo, GroupInfo, TopicInfo, explain
from connector.kafka.confluent import record_headers
from connector.records import SourceRecord, TopicPartition


def _first_arg_text(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text if text else type(exc).__name__


def _quiet_logger() -> logging.Logger:
    """librdkafka's log lines (connection refused, retries...) go here instead of stderr."""
    logger = logging.getLogger("connector.tools.check.librdkafka")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    return logger


class ConfluentAdmin:
    """`ClusterAdmin` over librdkafka's AdminClient (producer-typed: `config` has no consumer-only keys)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        # TLS and SASL failures reach only error_cb: kept to say why the cluster did not answer.
        self._errors: list[str] = []
        full: dict[str, Any] = {**config, "logger": _quiet_logger(), "error_cb": self._on_error}
        try:
            self._admin = AdminClient(full)
        except Exception as exc:  # an unknown property or an invalid value in kafka.config
            raise ConfigError(f"kafka.config: librdkafka refuses it: {_first_arg_text(exc)}") from None

    def _on_error(self, error: Any) -> None:
        self._errors.append(str(error.str()))

    def cluster(self, timeout_s: float) -> ClusterInfo:
        metadata = self._admin.list_topics(timeout=timeout_s)
        topics = {name: TopicInfo(len(t.partitions), None if t.error is None else str(t.error))
                  for name, t in metadata.topics.items()}
        return ClusterInfo(len(metadata.brokers), str(metadata.cluster_id), topics)

    def unreachable_reason(self, exc: BaseException) -> str:
        self._admin.poll(0.5)  # error_cb is served by poll
        return explain("; ".join(dict.fromkeys(self._errors)) or _first_arg_text(exc))

    def group(self, group_id: str, timeout_s: float) -> GroupInfo:
        description = self._admin.describe_consumer_groups([group_id], request_timeout=timeout_s)[group_id].result()
        state = getattr(description.state, "name", str(description.state)).lower()
        return GroupInfo(state, len(description.members or []))

    def group_offsets(self, group_id: str, timeout_s: float) -> dict[TopicPartition, int]:
        listed = self._admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)],
                                                         request_timeout=timeout_s)[group_id].result()
        return {TopicPartition(tp.topic, tp.partition): tp.offset
                for tp in listed.topic_partitions or [] if tp.offset >= 0}

    def end_offsets(self, tps: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, int]:
        latest: Any = _listoffsets.OffsetSpec.latest
        request = {KafkaTopicPartition(tp.topic, tp.partition): latest() for tp in tps}
        futures = self._admin.list_offsets(request, request_timeout=timeout_s)
        return {TopicPartition(k.topic, k.partition): int(f.result().offset) for k, f in futures.items()}

    def close(self) -> None:
        """librdkafka's admin client has nothing to close; it goes with its last reference."""


class ConfluentTopicReader:
    """`TopicReader` over a librdkafka consumer (assigned partitions, auto-commit off: never commits)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        # A property librdkafka refuses raises here; the CLI names it (connector.cli).
        self._consumer = Consumer(dict(config))

    def partitions(self, topic: str, timeout_s: float) -> list[int] | None:
        metadata = self._consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return None
        return sorted(metadata.partitions)

    def watermarks(self, tp: TopicPartition, timeout_s: float) -> tuple[int, int]:
        low, high = self._consumer.get_watermark_offsets(KafkaTopicPartition(tp.topic, tp.partition),
                                                         timeout=timeout_s)
        return int(low), int(high)

    def committed(self, tps: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, int]:
        found = self._consumer.committed([KafkaTopicPartition(tp.topic, tp.partition) for tp in tps],
                                         timeout=timeout_s)
        return {TopicPartition(p.topic, p.partition): int(p.offset) for p in found}

    def assign(self, starts: Mapping[TopicPartition, int]) -> None:
        self._consumer.assign([KafkaTopicPartition(tp.topic, tp.partition, offset) for tp, offset in starts.items()])

    def read(self, max_records: int, timeout_s: float) -> list[SourceRecord]:
        records = []
        for msg in self._consumer.consume(max_records, timeout_s):
            if msg.error() is not None:
                continue
            kind, timestamp = msg.timestamp()
            headers, unreadable = record_headers(msg)
            records.append(SourceRecord(cast(str, msg.topic()), cast(int, msg.partition()), cast(int, msg.offset()),
                                        msg.key(), msg.value(), headers, timestamp if kind else None, unreadable))
        return records

    def close(self) -> None:
        self._consumer.close()
