"""The dead-letter policy on the real worker, broker-free: a run of dead letters, or too large a
share of them, stalls the partition at the record that would have gone too far (rewound, held,
retried after `stall_retry_s`) instead of dead-lettering the stream; so does a dead letter the
dead-letter topic refuses. A stalled partition is never committed past its stall point."""

from __future__ import annotations

from typing import Any

from fixtures.inmemory import InMemoryDeadLetters, WorkerHarness

from connector.personalize.sink import SendOutcome
from connector.records import Batch, Event, SourceRecord, TopicPartition, TrackerNotAllowed, UnknownTracker

TP = TopicPartition("interactions", 0)


def test_a_run_of_dead_letters_stalls_the_partition_at_the_record_after_the_limit() -> None:
    h = WorkerHarness(max_consecutive_failures=3, stall_retry_s=60.0)
    h.source.produce(TP, *[b"bad"] * 5, b"ok")
    h.source.assign(TP)
    h.step(4)
    assert h.dlq is not None and h.dlq.offsets == [0, 1, 2]
    assert (TP, 3) in h.source.seeks and TP in h.source.paused
    assert h.worker.health.stall_reasons == {str(TP): "consecutive_failures"}
    assert h.metric("pkc_partition_stalls_total", reason="consecutive_failures") == 1
    assert h.source.committed_offset(TP) == 3 and max(h.source.committed_offsets(TP)) == 3
    # Held until the retry time, then read again from the stall point: still bad, stalled again.
    polls = h.source.polls
    h.run_until(lambda: TP not in h.source.paused)
    assert h.clock.now >= 60.0 and h.source.polls > polls
    h.run_until(lambda: TP in h.source.paused)
    assert h.dlq.offsets == [0, 1, 2] and max(h.source.committed_offsets(TP)) == 3


def test_a_good_record_ends_the_run_and_clears_the_stall() -> None:
    h = WorkerHarness(max_consecutive_failures=2, stall_retry_s=10.0)
    h.source.produce(TP, b"bad", b"bad", b"bad")
    h.source.assign(TP)
    h.step(3)
    assert h.worker.health.stalled == 1
    # The operator deploys a fixed mapping: the stalled record now decodes.
    h.codec.bad_prefix = b"still-bad"
    h.run_until(lambda: h.source.committed_offset(TP) == 3)
    assert h.worker.health.stalled == 0 and h.dlq is not None and h.dlq.offsets == [0, 1]


def test_too_large_a_share_of_dead_letters_stalls_the_partition() -> None:
    # Two bad records in three never make a run of 3, but 7 of a window of 10 is over 0.5.
    h = WorkerHarness(max_consecutive_failures=3, max_failure_ratio=0.5, failure_ratio_window=10,
                      poll_batch_size=100)
    pattern = [b"bad", b"bad", b"ok"] * 4
    h.source.produce(TP, *pattern)
    h.source.assign(TP)
    h.step(3)
    assert h.dlq is not None and h.dlq.offsets == [0, 1, 3, 4, 6, 7]
    assert h.worker.health.stall_reasons == {str(TP): "failure_ratio"}
    assert (TP, 9) in h.source.seeks
    assert max(h.source.committed_offsets(TP)) == 9


def test_a_refused_dead_letter_stalls_the_partition_instead_of_stopping_the_worker() -> None:
    h = WorkerHarness(dead_letters=InMemoryDeadLetters(answer="refuse"), stall_retry_s=30.0)
    h.source.produce(TP, b"ok", b"bad", b"ok")
    h.source.assign(TP)
    h.step(4)
    assert h.worker.health.stall_reasons == {str(TP): "dead_letter_refused"}
    assert (TP, 1) in h.source.seeks and TP in h.source.paused
    assert max(h.source.committed_offsets(TP)) == 1
    # The DLQ topic's limit is raised: the retry writes the dead letter and the partition moves on.
    assert h.dlq is not None
    h.dlq.answer = "ack"
    h.run_until(lambda: h.source.committed_offset(TP) == 3)
    assert h.worker.health.stalled == 0
    assert h.shutdown() == 0  # never a fatal stop on the way


def test_a_dead_letter_that_cannot_be_written_stops_the_worker_without_committing_past_it() -> None:
    h = WorkerHarness(dead_letters=InMemoryDeadLetters(answer="fail"))
    h.source.produce(TP, b"ok", b"bad", b"ok")
    h.source.assign(TP)
    h.source.at_poll(50, h.worker.request_stop)  # a safety net: the run must end on its own before
    assert h.worker.run() == 1
    assert h.source.polls < 50
    assert max(h.source.committed_offsets(TP)) == 1


def test_without_a_dead_letter_topic_a_bad_record_stops_the_worker_before_it() -> None:
    h = WorkerHarness(no_dlq=True)
    h.source.produce(TP, b"ok", b"bad", b"ok")
    h.source.assign(TP)
    h.source.at_poll(50, h.worker.request_stop)
    assert h.worker.run() == 1
    assert h.source.polls < 50
    assert max(h.source.committed_offsets(TP)) <= 1


def test_limits_of_zero_never_stall() -> None:
    h = WorkerHarness(max_consecutive_failures=0, max_failure_ratio=0.0, poll_batch_size=100)
    h.source.produce(TP, *[b"bad"] * 50)
    h.source.assign(TP)
    h.run_until(lambda: h.source.committed_offset(TP) == 50)
    assert h.worker.health.stalled == 0


def test_a_late_refusal_after_a_stall_does_not_move_the_stall_point_forward() -> None:
    # Found by tests/adversarial (sizes, confluent): librdkafka batched several dead letters into
    # one produce request larger than the DLQ topic's max.message.bytes, so the broker refused the
    # whole batch; the reduced letters of 1 and 2 were refused again, in that order. The refusal of
    # 1 stalled the partition at 1; the refusal of 2, arriving after it, rewound to 2, so 1 was
    # never read again and the commit went past it with no dead letter.
    h = WorkerHarness(dead_letters=InMemoryDeadLetters(answer="hold"), stall_retry_s=30.0,
                      max_consecutive_failures=0, max_failure_ratio=0.0)
    h.source.produce(TP, b"ok", b"bad", b"bad", b"ok")
    h.source.assign(TP)
    h.run_until(lambda: h.dlq is not None and h.dlq.offsets == [1, 2])
    assert h.dlq is not None
    h.dlq.refuse([1])
    h.dlq.refuse([2])  # the late one: 2 was given up already by the stall at 1
    h.step()
    assert h.worker.health.stall_reasons == {str(TP): "dead_letter_refused"}
    assert h.source.seeks[-1] == (TP, 1)
    h.run_until(lambda: TP not in h.source.paused)  # held until the retry time
    assert max(h.source.committed_offsets(TP)) == 1
    # The topic's limit is raised: both are read again from 1, dead-lettered, then committed past.
    h.dlq.answer = "ack"
    h.run_until(lambda: h.source.committed_offset(TP) == 4)
    assert h.dlq.offsets == [1, 2, 1, 2]
    assert all(letter.answered for letter in h.dlq.letters)
    assert h.shutdown() == 0


def _tenants(h: WorkerHarness) -> None:
    """b"stranger" names a tracker outside the allow-list (dead-lettered at validation); the
    service does not know the tracker of b"unknown" (dead-lettered by the sink)."""
    mapped = h.codec.to_event

    def to_event(record: dict[str, Any], source: SourceRecord) -> Event:
        if record["value"] == b"stranger":
            raise TrackerNotAllowed("trackingId: 'stranger' is not allowed")
        return mapped(record, source)

    def send(batch: Batch) -> SendOutcome:
        unknown = [e for e in batch.events if e.record.value == b"unknown"]
        return SendOutcome(batch, delivered=[e for e in batch.events if e not in unknown], calls=1,
                           rejected=[(e, UnknownTracker("trackingId 'unknown': unknown")) for e in unknown])

    h.codec.to_event = to_event  # type: ignore[method-assign]
    h.sink.default = send


def test_a_run_of_one_tenants_tracker_letters_never_stalls_a_partition_other_tenants_share() -> None:
    # A run limit of 3 and a ratio of 0.5 over 10: each would stall at once on ordinary dead letters.
    h = WorkerHarness(max_consecutive_failures=3, max_failure_ratio=0.5, failure_ratio_window=10,
                      poll_batch_size=100)
    _tenants(h)
    values = [b"unknown"] * 12 + [b"stranger"] * 6 + [b"ok"] + [b"unknown", b"stranger"] * 5 + [b"ok"]
    h.source.produce(TP, *values)
    h.source.assign(TP)
    h.run_until(lambda: h.source.committed_offset(TP) == len(values))
    assert h.dlq is not None and sorted(h.dlq.offsets) == [i for i, v in enumerate(values) if v != b"ok"]
    assert h.worker.health.stalled == 0 and not h.worker.health.stall_reasons
    assert h.sink.sent_offsets().count(18) == 1 and not h.source.seeks
    assert h.metric("pkc_dead_letters_total", stage="send", error_class="UnknownTracker") == 17
    assert h.metric("pkc_dead_letters_total", stage="validate", error_class="TrackerNotAllowed") == 11


def test_one_tenants_tracker_letters_neither_extend_nor_end_a_run_of_other_dead_letters() -> None:
    h = WorkerHarness(max_consecutive_failures=3, stall_retry_s=60.0)
    _tenants(h)
    h.source.produce(TP, b"bad", b"bad", b"stranger", b"stranger", b"bad", b"bad")
    h.source.assign(TP)
    h.step(4)
    # Counted, the strangers would have stalled at 2; ending the run, nothing would stall.
    assert h.dlq is not None and h.dlq.offsets == [0, 1, 2, 3, 4]
    assert h.worker.health.stall_reasons == {str(TP): "consecutive_failures"} and (TP, 5) in h.source.seeks


def test_a_filtered_record_neither_extends_nor_ends_a_run_of_dead_letters() -> None:
    # Like a skipped delete: it needs no call, so it says nothing about whether the stream is sound.
    h = WorkerHarness(max_consecutive_failures=3, stall_retry_s=60.0)
    h.source.produce(TP, b"bad", b"filtered", b"bad", b"bad", b"bad", b"ok")
    h.source.assign(TP)
    h.step(4)
    assert h.dlq is not None and h.dlq.offsets == [0, 2, 3]
    assert (TP, 4) in h.source.seeks and TP in h.source.paused
    assert h.metric("pkc_records_filtered_total", route="events") == 1
