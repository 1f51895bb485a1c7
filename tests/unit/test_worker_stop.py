"""How the real worker stops, broker-free: `--exit-when-idle` ends a run only when the worker is in
its group and every assigned partition is read to its end with everything committed; a shutdown
delivers and commits what finishes within the grace period, and commits nothing still in flight."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from fixtures.inmemory import InMemoryDeadLetters, WorkerHarness

from connector.pipeline.offsets import decode_delivered
from connector.records import Batch, TopicPartition

TP = TopicPartition("interactions", 0)


def _offset(offset: int) -> Callable[[Batch], bool]:
    """The batch whose first record is at `offset`."""
    return lambda batch: batch.events[0].record.offset == offset


def test_idle_time_counts_only_from_joining_the_group() -> None:
    # A restart right after a crash: the group hands nothing out until the dead member's session
    # ends. Ten idle seconds outside the group say nothing about the backlog.
    h = WorkerHarness()
    h.source.joined = False
    h.source.produce(TP, b"ok", b"ok")
    joined_at: list[float] = []

    def join() -> None:
        h.source.joined = True
        h.source.assign(TP)
        joined_at.append(h.clock.now)

    h.source.at_poll(100, join)
    assert h.worker.run(exit_when_idle_s=2.0) == 0
    assert joined_at and h.clock.now - joined_at[0] >= 2.0
    assert h.source.committed_offset(TP) == 2


def test_idle_does_not_end_the_run_while_the_partitions_ends_cannot_be_read() -> None:
    h = WorkerHarness()
    h.source.positions_known = False
    h.source.produce(TP, b"ok")
    h.source.assign(TP)
    known_at: list[float] = []

    def positions_readable() -> None:
        h.source.positions_known = True
        known_at.append(h.clock.now)

    h.source.at_poll(100, positions_readable)
    assert h.worker.run(exit_when_idle_s=2.0) == 0
    # Not before the ends were known (the idle time counts from the last probe that failed).
    assert known_at and h.source.polls > 100 and h.clock.now > known_at[0]


def test_idle_does_not_end_the_run_while_a_call_is_in_flight() -> None:
    h = WorkerHarness()
    h.sink.hold = lambda batch: True
    h.source.produce(TP, b"ok")
    h.source.assign(TP)
    h.source.at_poll(200, lambda: h.calls.release())
    assert h.worker.run(exit_when_idle_s=2.0) == 0
    assert h.source.polls > 200 and h.source.committed_offset(TP) == 1


def test_a_stalled_partition_with_records_left_is_not_idle(caplog: pytest.LogCaptureFixture) -> None:
    h = WorkerHarness(max_consecutive_failures=1, stall_retry_s=1000.0)
    h.source.produce(TP, b"bad", b"bad", b"ok")
    h.source.assign(TP)
    h.source.at_poll(300, h.worker.request_stop)
    with caplog.at_level(logging.INFO, logger="connector.worker"):
        assert h.worker.run(exit_when_idle_s=2.0) == 0
    assert h.source.polls >= 300, "ended as idle with a partition not read to its end"
    assert not any("idle for" in r.getMessage() for r in caplog.records)
    assert h.source.committed_offset(TP) == 1


def test_shutdown_commits_what_was_delivered_within_the_grace_period_and_nothing_in_flight(
        caplog: pytest.LogCaptureFixture) -> None:
    h = WorkerHarness(grace_period_s=30.0)
    h.sink.hold = lambda batch: batch.events[0].record.offset in (1, 3)
    h.source.produce(TP, *[b"ok"] * 5)
    h.source.assign(TP)
    h.step(3)
    stop_at = h.clock.now
    h.calls.release_later(stop_at + 5.0, _offset(1))    # returns within the grace period
    h.calls.release_later(stop_at + 600.0, _offset(3))  # still hanging when it ends
    with caplog.at_level(logging.WARNING, logger="connector.worker"):
        assert h.shutdown() == 0
    last = h.source.commits[-1]
    assert last.offsets == {TP: 3} and max(h.source.committed_offsets(TP)) == 3
    assert last.metadata is not None and decode_delivered(3, last.metadata[TP]) == [4]
    assert 30.0 <= h.clock.now - stop_at < 600.0
    assert h.sink.stop.is_set() and h.source.closed
    assert any("grace period over with 1 calls in flight" in r.getMessage() for r in caplog.records)


def test_shutdown_sends_what_is_still_buffered() -> None:
    h = WorkerHarness(linger_s=60.0, max_events_per_call=10)
    h.source.produce(TP, b"ok", b"ok", b"ok", key=b"one-session")
    h.source.assign(TP)
    h.step(2)
    assert h.sink.sent == []  # lingering in the batcher
    assert h.shutdown() == 0
    assert h.sink.sent_offsets() == [0, 1, 2] and h.source.committed_offset(TP) == 3


def test_shutdown_does_not_commit_past_an_unacknowledged_dead_letter() -> None:
    h = WorkerHarness(dead_letters=InMemoryDeadLetters(answer="hold"), grace_period_s=10.0)
    h.source.produce(TP, b"ok", b"bad", b"ok")
    h.source.assign(TP)
    h.step(3)
    assert h.shutdown() == 0
    assert max(h.source.committed_offsets(TP)) == 1
