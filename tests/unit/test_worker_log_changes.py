"""The worker when a partition's offsets go backwards under it (issue 13, finding 1), with a
scripted in-memory source and sink, so the interleaving is exact: calls for the old log are still
running when the new log's first records arrive, and their late outcomes must not count."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from connector.batcher import SessionBatcher
from connector.records import Batch, Event, SessionKey, SourceRecord, TopicPartition
from connector.routes import Route
from connector.sink import SendOutcome
from connector.source.base import RebalanceListener
from connector.worker import Worker, WorkerSettings

TP = TopicPartition("interactions", 0)


class ScriptedSource:
    """Hands out one scripted poll result per call; assigns TP on the first poll."""

    def __init__(self, polls: list[list[SourceRecord]]) -> None:
        self.polls = polls
        self.commits: list[dict[TopicPartition, int]] = []
        self.listener: RebalanceListener | None = None
        self._assigned = False

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        self.listener = listener

    def poll(self, max_records: int, timeout_s: float) -> list[SourceRecord]:
        if not self._assigned and self.listener is not None:
            self._assigned = True
            self.listener.on_assigned([TP])
        return self.polls.pop(0) if self.polls else []

    def commit(self, offsets: Mapping[TopicPartition, int], metadata: Mapping[TopicPartition, str] | None = None
               ) -> None:
        self.commits.append(dict(offsets))

    def committed(self, tps: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, tuple[int, str]]:
        return {tp: (-1, "") for tp in tps}

    def pause(self, tps: list[TopicPartition]) -> None: ...

    def resume(self, tps: list[TopicPartition]) -> None: ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    def assignment(self) -> list[TopicPartition]:
        return [TP]

    def group_joined(self) -> bool:
        return True

    def lagging(self, tps: list[TopicPartition], timeout_s: float) -> list[TopicPartition]:
        return []

    def missing_topics(self, topics: list[str], timeout_s: float) -> set[str]:
        return set()

    def close(self) -> None: ...


class GatedSink:
    """Delivers everything; calls for the old log's records wait until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.stop = threading.Event()
        self.systemic_error: str | None = None
        self.sent: list[bytes] = []

    def send(self, batch: Batch) -> SendOutcome:
        if any(e.record.value == b"old" for e in batch.events):
            assert self.release.wait(30)
        self.sent += [e.record.value or b"" for e in batch.events]
        return SendOutcome(batch, delivered=list(batch.events))

    def unready_reason(self) -> str | None:
        return None


class OneSessionPerRecord:
    def decode(self, value: bytes | None) -> dict[str, Any]:
        return {}

    def to_event(self, record: dict[str, Any], source: SourceRecord) -> Event:
        return Event(SessionKey("tracker", f"s-{source.offset}", None), {}, source)


def _records(log: bytes, offsets: range) -> list[SourceRecord]:
    return [SourceRecord(TP.topic, TP.partition, o, None, log) for o in offsets]


def test_late_outcomes_of_the_old_log_never_move_the_new_logs_commit() -> None:
    # The old log: offsets 0..4 polled, their calls still running. Then the topic is re-created:
    # the new log's offsets 0..2 arrive (3 and 4 are not produced yet).
    source = ScriptedSource([_records(b"old", range(5)), _records(b"new", range(3))])
    sink = GatedSink()
    codec = OneSessionPerRecord()
    worker = Worker(
        WorkerSettings(topics=[TP.topic], commit_interval_s=0.0, poll_timeout_s=0.0),
        source=source, batcher=SessionBatcher(10, 0.0), dead_letters=None, max_in_flight_calls=8,
        routes=[Route("events", "events", [TP.topic], codec, codec, sink, None)],  # type: ignore[arg-type]
    )
    worker._source.subscribe([TP.topic], worker)
    for _ in range(3):
        worker._turn()
    # The new log's records are tracked; their sessions wait for the old calls of the same
    # sessions (one call per session at a time). Now the old log's calls come back, "delivered".
    pause = threading.Event()
    sink.release.set()
    for _ in range(100):
        worker._turn()
        if worker.calls_in_flight == 0:
            break
        pause.wait(0.05)
    assert worker.calls_in_flight == 0
    committed = [c[TP] for c in source.commits if TP in c]
    # Old code: the new records were never tracked, the old outcomes marked 0..4 done and 5 was
    # committed, so the new log's records 3 and 4 would be skipped.
    assert committed and committed[-1] == 3 and max(committed) <= 3, committed
    assert sink.sent.count(b"new") == 3
    assert worker.metrics.registry.get_sample_value("pkc_offset_resets_total", {"topic": TP.topic}) == 1
    worker._pool.shutdown(wait=True)
