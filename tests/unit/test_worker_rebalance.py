"""Rebalances on the real worker, broker-free: outcomes of work from an earlier ownership of a
partition (epochs) never count after it is assigned again; a revoke commits what finished within
its timeout; a lost partition is never committed."""

from __future__ import annotations

from fixtures.inmemory import InMemoryDeadLetters, WorkerHarness

from connector.records import TopicPartition

TP = TopicPartition("interactions", 0)


def test_late_outcomes_of_a_revoked_partition_are_ignored_after_it_is_assigned_again() -> None:
    h = WorkerHarness(revoke_timeout_s=5.0)
    h.sink.hold = lambda batch: True
    h.source.produce(TP, b"ok", b"ok")
    h.source.assign(TP)
    h.step(2)
    assert len(h.calls.held) == 2
    # Revoked while both calls hang (the revoke gives up after its timeout), then assigned back:
    # 0 and 1 are read again from the committed offset and wait for their sessions' old calls.
    h.source.revoke(TP)
    h.source.assign(TP)
    h.step(2)
    assert h.source.committed_offset(TP) == 0
    # The old calls come back "delivered". They belong to the earlier ownership: nothing moves.
    h.calls.release()
    h.step(2)
    assert max(h.source.committed_offsets(TP)) == 0, h.source.committed_offsets(TP)
    # The calls of this ownership (sent once the old ones freed their sessions) do count.
    assert len(h.calls.held) == 2
    h.calls.release()
    h.run_until(lambda: h.source.committed_offset(TP) == 2)


def test_calls_of_a_revoked_partition_that_have_not_started_are_never_sent() -> None:
    """The next owner sends them again: from here they would be duplicates, spent from the
    group's quota while the new owner spends its own share."""
    other = TopicPartition("interactions", 1)
    h = WorkerHarness(call_slots=1, revoke_timeout_s=0.5)
    h.sink.hold = lambda batch: batch.events[0].record.tp == TP
    h.source.produce(TP, b"ok")
    h.source.produce(other, b"ok", b"ok", key=b"another-session")
    h.source.assign(TP, other)
    h.step(2)
    assert len(h.calls.held) == 1 and len(h.calls.queued) == 1  # the pool's one thread is busy
    h.source.revoke(other)
    h.step(2)
    assert all(c.future.cancelled() for c in h.calls.queued) and h.worker.calls_in_flight == 1
    h.calls.release()
    h.run_until(lambda: h.source.committed_offset(TP) == 1)
    assert {e.record.tp for b in h.sink.sent for e in b.events} == {TP}  # nothing of `other` left


def test_a_revoke_drops_unsent_batches_instead_of_sending_them() -> None:
    """The next owner reads them again from the commit; sending them first would hold the
    partition back from the whole group for as long as the read-ahead takes at this worker's
    share of the quota (the revoke timeout, under a backlog)."""
    h = WorkerHarness(linger_s=60.0, revoke_timeout_s=10.0)
    h.source.produce(TP, b"ok", b"ok", b"ok")
    h.source.assign(TP)
    h.step(2)
    assert h.sink.sent == []  # open batches, lingering
    start = h.clock.now
    h.source.revoke(TP)
    h.step()
    assert h.sink.sent == [] and TP not in h.worker.assigned
    assert h.clock.now - start < 1.0  # no wait: nothing was running
    assert h.source.committed_offset(TP) in (None, 0)


def test_a_late_dead_letter_ack_of_a_revoked_partition_is_ignored_after_it_is_assigned_again() -> None:
    h = WorkerHarness(dead_letters=InMemoryDeadLetters(answer="hold"), revoke_timeout_s=5.0)
    h.source.produce(TP, b"bad", b"ok")
    h.source.assign(TP)
    h.step(2)
    assert h.dlq is not None and h.dlq.offsets == [0]
    h.source.revoke(TP)
    h.source.assign(TP)
    h.step(2)
    # Offset 0 was read again and dead-lettered again; the first letter's ack arrives only now.
    assert h.dlq.offsets == [0, 0]
    old, new = h.dlq.letters
    old.answer()
    h.step(3)
    assert max(h.source.committed_offsets(TP)) == 0, h.source.committed_offsets(TP)
    new.answer()
    h.run_until(lambda: h.source.committed_offset(TP) == 2)


def test_a_revoke_commits_what_finished_within_its_timeout() -> None:
    h = WorkerHarness(revoke_timeout_s=10.0, commit_interval_s=3600.0)
    h.sink.hold = lambda batch: True
    h.source.produce(TP, b"ok", b"ok", b"ok")
    h.source.assign(TP)
    h.step(2)
    # Call 0 returns 2s into the revoke's wait, 1 and 2 only after it gave up.
    start = h.clock.now
    h.calls.release_later(start + 2.0, lambda b: b.events[0].record.offset == 0)
    h.calls.release_later(start + 60.0, lambda b: b.events[0].record.offset > 0)
    h.source.revoke(TP)
    h.step()
    assert h.source.committed_offsets(TP) == [1]
    assert TP not in h.worker.assigned
    assert h.clock.now - start >= 10.0


def test_a_lost_partition_is_never_committed() -> None:
    # Another member owns it already: even a watermark that moved must not overwrite its progress.
    h = WorkerHarness(commit_interval_s=3600.0)
    h.sink.hold = lambda batch: True
    h.source.produce(TP, b"ok", b"ok")
    h.source.assign(TP)
    h.step(2)
    h.calls.release(lambda batch: batch.events[0].record.offset == 0)
    h.step()  # 0 delivered: the watermark is 1, not committed yet
    h.source.lose(TP)
    h.step()
    h.calls.release()  # the other call ends after the partition is someone else's
    h.step(3)
    h.clock.advance(3600.0)
    h.step()
    assert h.source.commits == []
    assert TP not in h.worker.assigned
