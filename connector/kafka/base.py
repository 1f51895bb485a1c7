"""What the worker and the tools need from Kafka, independent of the client library.

`Source` is the worker's consumer; `ClusterAdmin` (what `check` reads of the cluster) and
`TopicReader` (an assigned consumer for `dlq inspect` and `dlq replay`) are the tools'. Each client
module (connector.kafka.confluent*, connector.kafka.kafka_python*) implements them; the factory
(connector.kafka.clients) picks the one `kafka.client` names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from connector.records import SourceRecord, TopicPartition


class RebalanceListener(Protocol):
    """Called from inside `Source.poll` on the worker's thread (as both clients do)."""

    def on_assigned(self, tps: list[TopicPartition]) -> None: ...

    def on_revoked(self, tps: list[TopicPartition]) -> None: ...

    def on_lost(self, tps: list[TopicPartition]) -> None: ...


class KafkaUnreachable(Exception):
    """The broker cannot be used with this configuration (said at start-up, with the reason)."""


class CommitFailed(Exception):
    """A synchronous commit did not succeed for at least one partition."""


class Source(Protocol):
    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None: ...

    def poll(self, max_records: int, timeout_s: float) -> list[SourceRecord]: ...

    def commit(
        self, offsets: Mapping[TopicPartition, int], metadata: Mapping[TopicPartition, str] | None = None
    ) -> None:
        """Synchronously commit `offset` (the next record to read) per partition; raises CommitFailed."""
        ...

    def committed(self, tps: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, tuple[int, str]]:
        """The group's committed offset and metadata string per partition (-1 when none)."""
        ...

    def pause(self, tps: list[TopicPartition]) -> None: ...

    def resume(self, tps: list[TopicPartition]) -> None: ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    def assignment(self) -> list[TopicPartition]: ...

    def group_joined(self) -> bool:
        """The consumer is a member of its group and holds its assignment (which may be empty)."""
        ...

    def lagging(self, tps: list[TopicPartition], timeout_s: float) -> list[TopicPartition] | None:
        """Those of `tps` whose position is not at the end of the partition (the high watermark):
        records are left to read. None when the positions or ends cannot be had now."""
        ...

    def missing_topics(self, topics: list[str], timeout_s: float) -> set[str] | None:
        """Which of `topics` the cluster does not have; None when its metadata cannot be had now."""
        ...

    def partition_counts(self, topics: list[str], timeout_s: float) -> dict[str, int] | None:
        """How many partitions each existing topic of `topics` has (with a pattern among them:
        of every topic the client knows, for the caller to match); None when metadata cannot be had now."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TopicInfo:
    partitions: int
    error: str | None = None  # what the cluster says about the topic instead of describing it


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    brokers: int
    cluster_id: str
    topics: dict[str, TopicInfo]  # every topic the cluster lists (internal ones included)


@dataclass(frozen=True, slots=True)
class GroupInfo:
    state: str  # lower case, as Kafka names it: stable, empty, dead, ...
    members: int


class ClusterAdmin(Protocol):
    """What `check` reads of the cluster; it never changes anything. Every call blocks (the caller
    puts its own deadline around it) and raises the client's error when the cluster does not answer."""

    def cluster(self, timeout_s: float) -> ClusterInfo: ...

    def unreachable_reason(self, exc: BaseException) -> str:
        """Why `cluster` failed, in the words `run` uses (see `explain`)."""
        ...

    def group(self, group_id: str, timeout_s: float) -> GroupInfo: ...

    def group_offsets(self, group_id: str, timeout_s: float) -> dict[TopicPartition, int]:
        """The group's committed offsets (partitions without one are left out)."""
        ...

    def end_offsets(self, tps: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, int]: ...

    def close(self) -> None: ...


class TopicReader(Protocol):
    """A consumer of assigned partitions for the tools that read a topic (`dlq inspect`, `dlq replay`).

    Its group is only read (`committed`), never joined or committed to.
    """

    def partitions(self, topic: str, timeout_s: float) -> list[int] | None:
        """The topic's partition numbers, sorted; None when the topic does not exist."""
        ...

    def watermarks(self, tp: TopicPartition, timeout_s: float) -> tuple[int, int]:
        """(log start, end) offsets of the partition."""
        ...

    def committed(self, tps: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, int]:
        """The group's committed offset per partition (-1 when none)."""
        ...

    def assign(self, starts: Mapping[TopicPartition, int]) -> None:
        """Read these partitions from these offsets (replacing any earlier assignment)."""
        ...

    def read(self, max_records: int, timeout_s: float) -> list[SourceRecord]:
        """The next records of the assigned partitions (errors from the client are skipped)."""
        ...

    def close(self) -> None: ...


def explain(reasons: str) -> str:
    """librdkafka's words, prefixed with what they mean for the configuration."""
    lowered = reasons.lower()
    # TLS first: a SASL_SSL broker's address ("sasl_ssl://...") appears in every message.
    if "certificate verify failed" in lowered:
        hint = "the TLS handshake failed: the broker's certificate is not trusted (check ssl.ca.location)"
    elif "bad certificate" in lowered or "certificate required" in lowered:
        hint = "the broker refused our TLS client certificate (check ssl.certificate.location, ssl.key.location)"
    elif "authentication" in lowered:
        hint = "SASL authentication failed (check sasl.mechanism, sasl.username, sasl.password)"
    elif "ssl" in lowered or "certificate" in lowered:
        hint = "TLS failed (check the ssl.* properties: CA, client certificate and key)"
    else:
        hint = "the brokers are not reachable (check bootstrap_servers and security.protocol)"
    return f"{hint}: {reasons}"
