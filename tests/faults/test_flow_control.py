"""Flow control end to end: the request-rate limit (kept, and found by adapting), backpressure by
pausing partitions, and a schema-registry outage that holds records instead of dead-lettering them.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures.faults import OffsetProbe, Sampler, expected_event_ids, figures, run_worker, wait_until
from fixtures.pipeline import committed_and_end_offsets, connector_config, read_topic, write_config

from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration


def _config(stack: Any, emulator: Any, topic: str, group_id: str, tracking_id: str, dlq: str,
            **sections: dict[str, Any]) -> dict[str, Any]:
    return connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                            topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq, **sections)


def _run_until_idle(config: Path) -> dict[str, Any]:
    with run_worker(config, exit_when_idle_s=3) as running:
        running.thread.join(300)
    assert running.exit_codes == [0]
    return {"summary": running.summary(),
            "throttled": running.metric("pkc_put_events_calls_total", outcome="throttled")}


@pytest.mark.parametrize(("connector_rps", "throttling_expected"), [(30, False), (200, True)],
                         ids=["under-the-quota", "over-the-quota"])
def test_the_request_rate_stays_under_the_quota_or_adapts_to_it(
    stack: Any, new_topic: Any, group_id: str, start_emulator: Any, tracking_id: str, aws_env: None,
    tmp_path: Path, connector_rps: int, throttling_expected: bool,
) -> None:
    emulator = start_emulator("--max-requests-per-second", "40")
    topic, dlq = new_topic(partitions=3), new_topic(partitions=1, suffix="dlq")
    # ~250 calls of a few events: several seconds against a quota of 40 calls/s.
    produce(generate(1_000, 200, seed=61), stack.bootstrap, stack.registry_url, topic, progress=False)
    config = _config(stack, emulator, topic, group_id, tracking_id, dlq,
                     personalize={"max_requests_per_second": connector_rps},
                     batching={"linger_ms": 500, "max_in_flight_calls": 16})
    result = _run_until_idle(write_config(tmp_path, config))

    produced = read_topic(stack.bootstrap, topic)
    expected = set(expected_event_ids(produced).values())
    received = emulator.events(tracking_id)
    stats = emulator.stats()
    figures(f"rate {connector_rps}/s vs quota 40/s", len(produced), received, result["summary"]["dead_letters"],
            calls=stats["calls"], emulator_throttled=stats["throttled_calls"],
            connector_throttled=int(result["throttled"]))
    assert {e["eventId"] for e in received} == expected
    assert len(received) == len(expected) == 1_000
    assert result["summary"]["dead_letters"] == 0
    if throttling_expected:
        assert stats["throttled_calls"] > 0
        assert result["throttled"] == stats["throttled_calls"]
    else:
        assert stats["throttled_calls"] == 0
        assert result["throttled"] == 0
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends


def test_backpressure_pauses_partitions_and_bounds_the_buffer(
    stack: Any, new_topic: Any, group_id: str, start_emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    max_buffered, poll_batch = 200, 100
    emulator = start_emulator()
    emulator.set_faults(latency_ms=100)
    topic, dlq = new_topic(partitions=3), new_topic(partitions=1, suffix="dlq")
    produce(generate(5_000, 200, seed=71), stack.bootstrap, stack.registry_url, topic, progress=False)
    config = _config(stack, emulator, topic, group_id, tracking_id, dlq,
                     kafka={"poll_batch_size": poll_batch}, batching={"max_buffered_records": max_buffered,
                                                                       "linger_ms": 100, "max_in_flight_calls": 16})
    with run_worker(write_config(tmp_path, config), exit_when_idle_s=3) as running, \
            Sampler(lambda: (running.metric("pkc_partitions_paused"), running.metric("pkc_records_buffered")),
                    interval_s=0.005) as sampler:
        running.thread.join(300)
    assert running.exit_codes == [0]

    produced = read_topic(stack.bootstrap, topic)
    expected = set(expected_event_ids(produced).values())
    received = emulator.events(tracking_id)
    max_paused = max(paused for paused, _ in sampler.values)
    max_buffered_seen = max(buffered for _, buffered in sampler.values)
    figures("backpressure", len(produced), received, running.summary()["dead_letters"],
            samples=len(sampler.values), max_paused=int(max_paused), max_buffered=int(max_buffered_seen))
    assert {e["eventId"] for e in received} == expected
    assert len(received) == len(expected) == 5_000
    assert max_paused > 0
    # The bound is checked between polls, so one poll may add up to a batch beyond it.
    assert max_buffered_seen <= max_buffered + poll_batch
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_registry_outage_holds_records_instead_of_dead_lettering_them(
    stack: Any, new_topic: Any, group_id: str, start_emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    emulator = start_emulator()
    # One partition: each turn of the loop then waits for one failing schema lookup only.
    topic, dlq = new_topic(partitions=1), new_topic(partitions=1, suffix="dlq")
    produce(generate(600, 60, seed=81), stack.bootstrap, stack.registry_url, topic, progress=False)
    # Nothing listens there: every schema lookup fails to connect.
    down = _config(stack, emulator, topic, group_id, tracking_id, dlq, shutdown={"grace_period_s": 2},
                   schema_registry={"url": f"http://127.0.0.1:{_unused_port()}/apis/ccompat/v7"})
    with run_worker(write_config(tmp_path, down, "registry-down.yaml")) as running, \
            OffsetProbe(stack.bootstrap, group_id, topic, 1) as offsets, \
            Sampler(lambda: time.monotonic() - running.worker.health.last_turn, interval_s=0.05) as loop_age:
        wait_until(lambda: running.metric("pkc_records_consumed_total", topic=topic) >= 1, "records are read")
        # The worker backs off the partitions it could not decode and reads them again later
        # (decode_retry_backoff_s): the same records are consumed again, never dead-lettered.
        consumed = running.metric("pkc_records_consumed_total", topic=topic)
        wait_until(lambda: running.metric("pkc_records_consumed_total", topic=topic) > consumed,
                   "the worker retries the records after its backoff")
        assert running.summary()["dead_letters"] == 0
        assert running.summary()["events_delivered"] == 0
        assert all(offset < 1 for offset in offsets.committed().values())
        assert running.stop() == 0
    assert emulator.events(tracking_id) == []
    assert read_topic(stack.bootstrap, dlq) == []

    with run_worker(write_config(tmp_path, _config(stack, emulator, topic, group_id, tracking_id, dlq), "fixed.yaml"),
                    exit_when_idle_s=3) as fixed:
        fixed.thread.join(300)
    assert fixed.exit_codes == [0]

    produced = read_topic(stack.bootstrap, topic)
    expected = set(expected_event_ids(produced).values())
    received = emulator.events(tracking_id)
    dead = read_topic(stack.bootstrap, dlq)
    figures("registry outage", len(produced), received, len(dead),
            max_loop_gap_s=round(max(loop_age.values), 2))
    assert dead == []
    assert {e["eventId"] for e in received} == expected
    assert len(received) == len(expected) == 600
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends
