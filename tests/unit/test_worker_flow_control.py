"""Flow control on the real worker, broker-free: bounded buffers pause every partition and resume
them below 80% of the bound; a route whose sink fails systemically pauses its own partitions only;
a decode that must wait (registry unavailable) holds only its partition, then reads it again."""

from __future__ import annotations

from fixtures.inmemory import WorkerHarness

from connector.records import TopicPartition

TP = TopicPartition("interactions", 0)
TP1 = TopicPartition("interactions", 1)


def test_too_many_buffered_records_pause_every_partition_until_calls_make_room() -> None:
    h = WorkerHarness(max_buffered_records=4, poll_batch_size=2)
    h.sink.hold = lambda batch: True
    h.source.produce(TP, *[b"ok"] * 10)
    h.source.produce(TP1, *[b"ok"] * 10)
    h.source.assign(TP, TP1)
    h.step(5)
    assert h.source.paused == {TP, TP1}
    read = len(h.sink.sent) + len(h.calls.held)
    assert read == 4  # two polls of two, then held
    h.step(5)
    assert len(h.calls.held) == 4  # nothing more was read while paused
    # Two calls return: 2 buffered, under 80% of 4: reading resumes.
    h.calls.release(lambda batch: batch.events[0].record.offset == 0)
    h.step(2)  # the outcomes are taken in this turn, the pauses reconciled at the next one
    assert not h.source.paused
    h.sink.hold = lambda batch: False
    h.calls.release()
    h.run_until(lambda: h.source.committed_offset(TP) == 10 and h.source.committed_offset(TP1) == 10)


def test_too_many_buffered_bytes_pause_too() -> None:
    h = WorkerHarness(max_buffered_bytes=1000, poll_batch_size=1)
    h.sink.hold = lambda batch: True
    h.source.produce(TP, *[b"x" * 600] * 3)
    h.source.assign(TP)
    h.step(4)
    assert h.source.paused == {TP} and len(h.calls.held) == 2
    assert h.metric("pkc_bytes_buffered") == 1200
    h.sink.hold = lambda batch: False
    h.calls.release()
    h.step(2)
    assert not h.source.paused
    h.run_until(lambda: h.source.committed_offset(TP) == 3)


def test_a_systemic_failure_pauses_only_its_routes_partitions() -> None:
    events, items = TopicPartition("interactions", 0), TopicPartition("items", 0)
    h = WorkerHarness(topics={"interactions": "events", "items": "items"})
    h.sinks["events"].fail_systemically()
    h.source.produce(events, b"ok")
    h.source.produce(items, b"ok")
    h.source.assign(events, items)
    h.step(3)
    assert h.source.paused == {events}
    assert h.worker.health.systemic_error is not None and not h.worker.health.ready()[0]
    assert h.metric("pkc_systemic_failure") == 1
    h.source.produce(items, b"ok", b"ok")
    h.source.produce(events, b"ok")
    h.run_until(lambda: h.source.committed_offset(items) == 3)  # the other route goes on
    assert h.sinks["events"].sent == [] and h.source.committed_offset(events) == 0
    # The failure ends: the hanging call returns delivered, the route resumes and catches up.
    h.sinks["events"].recover()
    h.calls.release()
    h.run_until(lambda: h.source.committed_offset(events) == 2)
    assert not h.source.paused and h.worker.health.systemic_error is None


def test_a_decode_that_must_wait_holds_only_its_partition_and_reads_it_again() -> None:
    h = WorkerHarness(decode_retry_backoff_s=5.0)
    h.codec.retry_later = True
    h.source.produce(TP, b"ok", b"wait", b"ok")
    h.source.produce(TP1, b"ok")
    h.source.assign(TP, TP1)
    h.step(3)
    assert h.source.paused == {TP} and (TP, 1) in h.source.seeks
    assert h.source.committed_offset(TP) == 1 and h.source.committed_offset(TP1) == 1
    h.codec.retry_later = False  # the registry is back
    h.run_until(lambda: h.source.committed_offset(TP) == 3)
    assert h.clock.now >= 1005.0 and h.dlq is not None and h.dlq.letters == []


def test_records_read_again_after_a_hold_are_counted_once_in_the_buffered_bytes() -> None:
    # A registry outage rewinds the partition at every retry. The records it gives up used to stay
    # in the byte count: a long outage on large records crept up to max_buffered_bytes and paused
    # every partition with nothing held.
    h = WorkerHarness(decode_retry_backoff_s=1.0, max_buffered_bytes=100)
    h.codec.retry_later = True
    h.source.produce(TP, b"wait")
    h.source.produce(TP1, b"ok")
    h.source.assign(TP, TP1)
    h.run_until(lambda: h.source.committed_offset(TP1) == 1)  # the other partition goes on
    for _ in range(50):
        h.step()
        h.clock.advance(0.5)
        # Only what is held counts: the one record once while it is read, nothing while it waits.
        assert h.metric("pkc_bytes_buffered") == 4 * (h.metric("pkc_records_buffered") or 0) <= 4
    assert TP1 not in h.source.paused  # 100 bytes of bound, 25 retries of 4: never "full"
    h.codec.retry_later = False
    h.run_until(lambda: h.source.committed_offset(TP) == 1)
    h.step(2)
    assert h.metric("pkc_bytes_buffered") == 0


def test_a_stalled_record_read_again_is_counted_once_in_the_buffered_bytes() -> None:
    h = WorkerHarness(max_consecutive_failures=1, stall_retry_s=1.0)
    h.source.produce(TP, b"bad1", b"bad2")
    h.source.assign(TP)
    for _ in range(40):  # the first is dead-lettered, the second stalls the partition, again and again
        h.step()
        h.clock.advance(0.5)
        assert h.metric("pkc_bytes_buffered") == 4 * (h.metric("pkc_records_buffered") or 0) <= 8
    assert h.metric("pkc_partition_stalls_total", reason="consecutive_failures") == 1


def test_batches_waiting_for_a_call_slot_keep_the_loop_waiting_on_calls_not_in_kafkas_poll() -> None:
    """A finished call's slot is filled as soon as its outcome arrives. Blocked in Kafka's poll
    (nothing more to read), the loop left freed slots empty until the poll timed out: 16 calls per
    100 ms turn, a fifth of the throughput with a lifted quota."""
    h = WorkerHarness(poll_timeout_s=0.5)
    h.sink.hold = lambda batch: True
    for i in range(12):
        h.source.produce(TP, b"ok", key=f"session-{i}".encode())
    h.source.assign(TP)
    h.step(2)
    assert len(h.calls.held) == 8  # the worker's bound; 4 batches wait for a slot
    h.step()
    assert h.source.poll_timeouts[-1] == 0.0
    h.calls.release()  # the 8 return: their slots go to the 4 waiting batches in the same turn
    h.step()
    assert len(h.calls.held) == 4
    h.calls.release()
    h.run_until(lambda: h.source.committed_offset(TP) == 12)
    h.step()
    assert h.source.poll_timeouts[-1] > 0  # nothing waits any more: the poll may block again
