"""The worker when a partition's offsets go backwards under it (issue 13, finding 1), on the
in-memory harness, so the interleaving is exact: calls for the old log are still running when the
new log's first records arrive, and their late outcomes must not count."""

from __future__ import annotations

from fixtures.inmemory import WorkerHarness

from connector.records import Batch, TopicPartition

TP = TopicPartition("interactions", 0)


def _old_log(batch: Batch) -> bool:
    return any(e.record.value == b"old" for e in batch.events)


def test_late_outcomes_of_the_old_log_never_move_the_new_logs_commit() -> None:
    h = WorkerHarness(poll_timeout_s=0.0)
    # The old log: offsets 0..4 polled, their calls still running. Then the topic is re-created:
    # the new log's offsets 0..2 arrive (3 and 4 are not produced yet).
    h.sink.hold = _old_log
    h.source.produce(TP, *[b"old"] * 5)
    h.source.assign(TP)
    h.step()
    h.source.produce(TP, *[b"new"] * 3, start=0)
    h.step(2)
    # The new log's records are tracked; their sessions wait for the old calls of the same
    # sessions (one call per session at a time). Now the old log's calls come back, "delivered".
    h.calls.release()
    h.run_until(lambda: h.worker.calls_in_flight == 0)
    h.step()
    committed = h.source.committed_offsets(TP)
    # Old code: the new records were never tracked, the old outcomes marked 0..4 done and 5 was
    # committed, so the new log's records 3 and 4 would be skipped.
    assert committed and committed[-1] == 3 and max(committed) <= 3, committed
    assert [e.record.value for b in h.sink.sent for e in b.events].count(b"new") == 3
    assert h.metric("pkc_offset_resets_total", topic=TP.topic) == 1


def test_a_reset_log_is_committed_at_its_lower_offset() -> None:
    # Everything of the old log was delivered and committed at 5; the re-created log restarts at
    # 0: the next commit must go back to the new log's watermark, not stay at the old 5.
    h = WorkerHarness(poll_timeout_s=0.0)
    h.source.produce(TP, *[b"old"] * 5)
    h.source.assign(TP)
    h.run_until(lambda: h.source.committed_offset(TP) == 5)
    h.source.produce(TP, b"new", b"new", start=0)
    h.run_until(lambda: h.source.committed_offset(TP) == 2)
    committed = h.source.committed_offsets(TP)
    after_reset = committed[committed.index(5) + 1:]
    assert after_reset and max(after_reset) == after_reset[-1] == 2, committed
