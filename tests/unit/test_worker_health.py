"""What the real worker tells the probes, broker-free: a deleted source topic (confirmed by two
checks in a row), a stalled partition and a sink that has waited too long each make /readyz false
with the reason, and it turns true again when the cause is gone."""

from __future__ import annotations

from fixtures.inmemory import WorkerHarness

from connector.records import TopicPartition

TP = TopicPartition("interactions", 0)


def test_a_deleted_source_topic_is_reported_after_two_checks_and_cleared_when_it_is_back() -> None:
    h = WorkerHarness(topic_check_interval_s=5.0)
    h.source.assign(TP)
    h.step()
    h.source.missing = {TP.topic}
    h.clock.advance(5.0)
    h.step(2)
    assert h.worker.health.missing_topics == ()  # once could be metadata lagging just after a change
    h.clock.advance(5.0)
    h.step(2)
    assert list(h.worker.health.missing_topics) == [TP.topic] and not h.worker.health.ready()[0]
    assert h.metric("pkc_source_topics_missing") == 1
    h.source.missing = set()
    h.clock.advance(5.0)
    h.step(2)
    assert h.worker.health.missing_topics == () and h.worker.health.ready()[0]


def test_a_stalled_partition_makes_the_worker_unready_with_the_reason() -> None:
    h = WorkerHarness(max_consecutive_failures=1, stall_retry_s=60.0)
    h.source.produce(TP, b"bad", b"bad")
    h.source.assign(TP)
    h.step(3)
    ready, details = h.worker.health.ready()
    assert not ready and h.worker.health.stall_reasons == {str(TP): "consecutive_failures"}, details
    assert h.metric("pkc_partitions_stalled") == 1


def test_a_sink_waiting_too_long_makes_the_worker_unready() -> None:
    h = WorkerHarness()
    h.source.assign(TP)
    h.step()
    assert h.worker.health.ready()[0]
    h.sink.unready = "no successful call for 300 s with work pending"
    h.step()
    assert h.worker.health.delivery_stalled == h.sink.unready and not h.worker.health.ready()[0]
    h.sink.unready = None
    h.step()
    assert h.worker.health.ready()[0]
