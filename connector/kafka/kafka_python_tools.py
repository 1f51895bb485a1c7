"""The tools' Kafka clients over kafka-python: `ClusterAdmin` for `check`, `TopicReader` for `dlq`.

kafka-python connects in its constructors; both build their client on first use, so that `check`
answers an unreachable cluster inside its deadline like the confluent admin does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.kafka.base import ClusterInfo, GroupInfo, TopicInfo, explain
from connector.kafka.kafka_python import read_header_keys_losslessly
from connector.records import SourceRecord, TopicPartition


class KafkaPythonAdmin:
    """`ClusterAdmin` over kafka-python's KafkaAdminClient (`config`: its keyword arguments)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = dict(config)
        self._client: Any = None

    def _admin(self) -> Any:
        if self._client is None:
            from kafka import KafkaAdminClient

            self._client = KafkaAdminClient(**self._config)
        return self._client

    def cluster(self, timeout_s: float) -> ClusterInfo:
        from kafka.errors import for_code

        admin = self._admin()
        described = admin.describe_cluster()
        topics = {}
        for topic in admin.describe_topics():
            code = int(topic.get("error_code", 0))
            error = None if code == 0 else for_code(code).__name__
            topics[str(topic["name"])] = TopicInfo(len(topic.get("partitions") or []), error)
        return ClusterInfo(len(described["brokers"]), str(described["cluster_id"]), topics)

    def unreachable_reason(self, exc: BaseException) -> str:
        return explain(f"{type(exc).__name__}: {exc}")

    def group(self, group_id: str, timeout_s: float) -> GroupInfo:
        described = self._admin().describe_groups([group_id])[group_id]
        return GroupInfo(str(described["group_state"]).lower(), len(described.get("members") or []))

    def group_offsets(self, group_id: str, timeout_s: float) -> dict[TopicPartition, int]:
        found = self._admin().list_group_offsets({group_id: None}).get(group_id, {})
        return {TopicPartition(k.topic, k.partition): int(v.offset) for k, v in found.items() if v.offset >= 0}

    def end_offsets(self, tps: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, int]:
        from kafka.admin import OffsetSpec
        from kafka.structs import TopicPartition as KafkaTopicPartition

        request = {KafkaTopicPartition(tp.topic, tp.partition): OffsetSpec.LATEST for tp in tps}
        found = self._admin().list_partition_offsets(request, timeout_ms=int(timeout_s * 1000))
        return {TopicPartition(k.topic, k.partition): int(v.offset) for k, v in found.items()}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class KafkaPythonTopicReader:
    """`TopicReader` over a KafkaConsumer with auto-commit off (`config`: consumer keyword arguments)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        from kafka import KafkaConsumer

        read_header_keys_losslessly()
        self._consumer = KafkaConsumer(**dict(config))

    def partitions(self, topic: str, timeout_s: float) -> list[int] | None:
        found = self._consumer.partitions_for_topic(topic)
        return sorted(found) if found else None

    def watermarks(self, tp: TopicPartition, timeout_s: float) -> tuple[int, int]:
        from kafka.structs import TopicPartition as KafkaTopicPartition

        ktp = KafkaTopicPartition(tp.topic, tp.partition)
        timeout_ms = int(timeout_s * 1000)
        low = self._consumer.beginning_offsets([ktp], timeout_ms=timeout_ms)[ktp]
        high = self._consumer.end_offsets([ktp], timeout_ms=timeout_ms)[ktp]
        return int(low), int(high)

    def committed(self, tps: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, int]:
        from kafka.structs import TopicPartition as KafkaTopicPartition

        out = {}
        for tp in tps:
            offset = self._consumer.committed(KafkaTopicPartition(tp.topic, tp.partition),
                                              timeout_ms=int(timeout_s * 1000))
            out[tp] = -1 if offset is None else int(offset)
        return out

    def assign(self, starts: Mapping[TopicPartition, int]) -> None:
        from kafka.structs import TopicPartition as KafkaTopicPartition

        wanted = {KafkaTopicPartition(tp.topic, tp.partition): offset for tp, offset in starts.items()}
        self._consumer.assign(list(wanted))
        for ktp, offset in wanted.items():
            self._consumer.seek(ktp, offset)

    def read(self, max_records: int, timeout_s: float) -> list[SourceRecord]:
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [
            SourceRecord(r.topic, r.partition, r.offset, r.key, r.value,
                         # str(): a plain str again if the key came through read_header_keys_losslessly
                         tuple((str(k), v or b"") for k, v in r.headers) if r.headers else (),
                         r.timestamp if r.timestamp is not None and r.timestamp >= 0 else None)
            for batch in batches.values() for r in batch
        ]

    def close(self) -> None:
        self._consumer.close(autocommit=False)
