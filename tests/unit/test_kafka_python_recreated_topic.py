"""kafka-python: an assigned topic whose topic id changes (deleted and re-created at once) is read
afresh per auto.offset.reset, once, instead of being left to kafka-python's truncation check, which
moved a position on the old log to the new log's end and skipped what lay below it."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.structs import TopicPartition

from connector.kafka.kafka_python import restart_recreated_topics


class FakeCluster:
    def __init__(self) -> None:
        self.ids: dict[str, str | None] = {}

    def topic_id(self, topic: str) -> str | None:
        return self.ids.get(topic)


class FakeConsumer:
    """The three things the check reads or calls on a KafkaConsumer."""

    def __init__(self, assigned: set[TopicPartition], reset: str = "earliest") -> None:
        self._cluster = FakeCluster()
        self.assigned = assigned
        self.config: dict[str, Any] = {"auto_offset_reset": reset}
        self.seeks: list[tuple[str, tuple[TopicPartition, ...]]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self.seeks.append(("beginning", partitions))

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        self.seeks.append(("end", partitions))


A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


@pytest.mark.parametrize(("reset", "where"), [("earliest", "beginning"), ("latest", "end")])
def test_a_new_topic_id_reads_the_assigned_partitions_afresh_once(reset: str, where: str) -> None:
    consumer = FakeConsumer({A0, A1, B0}, reset)
    consumer._cluster.ids = {"a": "id-1", "b": "id-b"}
    ids: dict[str, Any] = {}
    restart_recreated_topics(consumer, ids)
    assert consumer.seeks == [] and ids == {"a": "id-1", "b": "id-b"}  # first sight: nothing to undo
    consumer._cluster.ids["a"] = "id-2"
    restart_recreated_topics(consumer, ids)
    restart_recreated_topics(consumer, ids)
    assert consumer.seeks == [(where, (A0, A1))]  # only topic a, once


def test_a_topic_missing_for_a_while_keeps_its_old_id_until_it_is_back() -> None:
    consumer = FakeConsumer({A0})
    consumer._cluster.ids = {"a": "id-1"}
    ids: dict[str, Any] = {}
    restart_recreated_topics(consumer, ids)
    consumer._cluster.ids["a"] = None  # deleted: no id in the metadata
    restart_recreated_topics(consumer, ids)
    assert consumer.seeks == [] and ids == {"a": "id-1"}
    consumer._cluster.ids["a"] = "id-2"
    restart_recreated_topics(consumer, ids)
    assert consumer.seeks == [("beginning", (A0,))]


def test_a_topic_no_longer_assigned_is_forgotten() -> None:
    """Assigned again later, it starts from the group's committed offsets like any partition."""
    consumer = FakeConsumer({A0})
    consumer._cluster.ids = {"a": "id-1"}
    ids: dict[str, Any] = {}
    restart_recreated_topics(consumer, ids)
    consumer.assigned = set()
    restart_recreated_topics(consumer, ids)
    assert ids == {}
    consumer.assigned = {A0}
    consumer._cluster.ids["a"] = "id-2"
    restart_recreated_topics(consumer, ids)
    assert consumer.seeks == []
