"""The commit rule on the real worker, broker-free: the committed offset is the watermark (the
first record neither delivered nor dead-lettered-and-acknowledged), never past it; what was
delivered above it goes into the commit metadata, and a new owner skips what that lists."""

from __future__ import annotations

from collections.abc import Callable

from fixtures.inmemory import InMemoryDeadLetters, WorkerHarness, abandon, reject

from connector.pipeline.offsets import decode_delivered
from connector.records import Batch, TopicPartition

TP = TopicPartition("interactions", 0)


def _offset(*offsets: int) -> Callable[[Batch], bool]:
    """Batches holding any of these offsets."""
    return lambda batch: any(e.record.offset in offsets for e in batch.events)


def test_the_commit_stops_at_the_first_undelivered_record() -> None:
    h = WorkerHarness()
    h.sink.hold = _offset(1)  # each record is its own session: 1's call hangs, 0 and 2..4 return
    h.source.produce(TP, *[b"ok"] * 5)
    h.source.assign(TP)
    h.step(5)
    assert h.sink.sent_offsets() == [0, 2, 3, 4]
    assert max(h.source.committed_offsets(TP)) == 1
    h.calls.release()
    h.run_until(lambda: h.source.committed_offset(TP) == 5)


def test_the_commit_waits_for_the_dead_letters_acknowledgement() -> None:
    h = WorkerHarness(dead_letters=InMemoryDeadLetters(answer="hold"))
    h.source.produce(TP, b"ok", b"bad", b"ok")
    h.source.assign(TP)
    h.step(5)
    assert h.dlq is not None and h.dlq.offsets == [1]
    assert h.sink.sent_offsets() == [0, 2]
    assert max(h.source.committed_offsets(TP)) == 1  # 2 is delivered, 1 is not acknowledged yet
    h.dlq.ack()
    h.run_until(lambda: h.source.committed_offset(TP) == 3)


def test_a_record_the_service_rejects_is_done_only_once_its_dead_letter_is_acknowledged() -> None:
    h = WorkerHarness(dead_letters=InMemoryDeadLetters(answer="hold"), max_events_per_call=3, linger_s=1.0,
                      poll_timeout_s=1.0)
    h.sink.script.append(reject(1))
    h.source.produce(TP, b"ok", b"ok", b"ok", key=b"one-session")
    h.source.assign(TP)
    h.step(3)
    assert h.dlq is not None and h.dlq.offsets == [1]
    assert h.dlq.letters[0].error.error_class == "InvalidInputException"
    assert max(h.source.committed_offsets(TP)) == 1
    h.dlq.ack()
    h.run_until(lambda: h.source.committed_offset(TP) == 3)


def test_an_abandoned_call_counts_for_nothing_until_it_is_sent_again_and_delivered() -> None:
    h = WorkerHarness()
    h.sink.script.append(abandon)
    h.sink.hold = lambda batch: len(h.sink.sent) >= 1  # the second attempt hangs
    h.source.produce(TP, b"ok")
    h.source.assign(TP)
    h.step(4)
    assert len(h.sink.sent) == 1 and len(h.calls.held) == 1
    assert max(h.source.committed_offsets(TP)) == 0
    h.calls.release()
    h.run_until(lambda: h.source.committed_offset(TP) == 1)
    assert h.sink.sent_offsets() == [0, 0]


def test_a_failed_commit_is_made_again_later() -> None:
    h = WorkerHarness()
    h.source.fail_commits = True
    h.source.produce(TP, b"ok", b"ok")
    h.source.assign(TP)
    h.step(3)
    assert h.source.commits == []
    assert h.metric("pkc_commits_total", result="failed")
    h.source.fail_commits = False
    h.run_until(lambda: h.source.committed_offset(TP) == 2)


def test_the_commit_metadata_lists_what_was_delivered_above_the_watermark() -> None:
    h = WorkerHarness()
    h.sink.hold = _offset(1)
    h.source.produce(TP, *[b"ok"] * 4)
    h.source.assign(TP)
    h.step(3)
    last = h.source.commits[-1]
    assert last.offsets == {TP: 1} and last.metadata is not None
    assert decode_delivered(1, last.metadata[TP]) == [2, 3]


def test_a_new_owner_skips_what_the_previous_one_delivered_above_its_commit() -> None:
    first = WorkerHarness()
    first.sink.hold = _offset(1)
    first.source.produce(TP, *[b"ok"] * 4)
    first.source.assign(TP)
    first.step(3)
    # The partition moves to another member while 1's call still hangs: the revoke waits its
    # timeout, commits 1 with {2, 3} in the metadata and drops the partition.
    first.source.revoke(TP)
    first.step()
    assert first.source.committed_offset(TP) == 1 and TP not in first.worker.assigned

    second = WorkerHarness(source=first.source.new_member())
    second.source.assign(TP)
    second.run_until(lambda: second.source.committed_offset(TP) == 4)
    assert second.sink.sent_offsets() == [1]
    assert second.metric("pkc_records_skipped_total") == 2


def test_without_commit_metadata_a_new_owner_sends_everything_above_the_commit_again() -> None:
    first = WorkerHarness(commit_metadata=False)
    first.sink.hold = _offset(1)
    first.source.produce(TP, *[b"ok"] * 4)
    first.source.assign(TP)
    first.step(3)
    first.source.revoke(TP)
    first.step()
    assert all(c.metadata is None for c in first.source.commits)

    second = WorkerHarness(source=first.source.new_member())
    second.source.assign(TP)
    second.run_until(lambda: second.source.committed_offset(TP) == 4)
    assert second.sink.sent_offsets() == [1, 2, 3]


def test_a_record_the_mapping_filters_out_is_committed_counted_and_never_sent() -> None:
    h = WorkerHarness()
    h.source.produce(TP, b"ok", b"filtered", b"filtered", b"ok", b"filtered")
    h.source.assign(TP)
    h.run_until(lambda: h.source.committed_offset(TP) == 5)
    assert h.sink.sent_offsets() == [0, 3]
    assert h.metric("pkc_records_filtered_total", route="events") == 3
    assert h.dlq is not None and h.dlq.offsets == []
