"""What the worker needs from a Kafka consumer, independent of the client library."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from connector.records import SourceRecord, TopicPartition


class RebalanceListener(Protocol):
    """Called from inside `Source.poll` on the worker's thread (as both clients do)."""

    def on_assigned(self, tps: list[TopicPartition]) -> None: ...

    def on_revoked(self, tps: list[TopicPartition]) -> None: ...

    def on_lost(self, tps: list[TopicPartition]) -> None: ...


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

    def close(self) -> None: ...
