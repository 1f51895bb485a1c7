"""The Kafka broker stops and comes back mid-stream: the worker rides it out without losing anything.

It runs on the dedicated stack of tests/faults/conftest.py (`own_stack`: other ports, its own state
dir), because stopping the broker of the shared stack would break every other test using it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fixtures.faults import (
    DedicatedStack,
    OffsetProbe,
    Sampler,
    create_topic,
    expected_event_ids,
    figures,
    run_worker,
    wait_until,
)
from fixtures.pipeline import committed_and_end_offsets, connector_config, read_topic, write_config

from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

DOWN_S = 5.0  # how long the broker stays down



def test_the_worker_rides_out_a_broker_restart_without_loss(
    own_stack: DedicatedStack, start_emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    emulator = start_emulator()
    # Slow calls keep the worker busy (records in flight, commits due) when the broker goes away.
    emulator.set_faults(latency_ms=30)
    bootstrap = own_stack.bootstrap
    topic, dlq = create_topic(bootstrap, 3, "restart"), create_topic(bootstrap, 1, "restart-dlq")
    group_id = f"{topic}-group"
    produce(generate(8_000, 800, seed=91), bootstrap, own_stack.registry_url, topic, progress=False)
    config = connector_config(bootstrap=bootstrap, registry_url=own_stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq)

    def delivered() -> set[str]:
        return {e["eventId"] for e in emulator.events(tracking_id)}

    with run_worker(write_config(tmp_path, config)) as running, \
            Sampler(lambda: time.monotonic() - running.worker.health.last_turn, interval_s=0.05) as loop_age:
        wait_until(lambda: len(delivered()) >= 1_000, "the stream is flowing")
        own_stack.kafka_stop()
        in_flight_at_stop = 8_000 - len(delivered())
        time.sleep(DOWN_S)
        own_stack.kafka_start()
        assert running.alive
        # More records after the restart: the worker reads again, not only drains what it had.
        produce(generate(4_000, 400, seed=92), bootstrap, own_stack.registry_url, topic, progress=False)

        produced = read_topic(bootstrap, topic)
        expected = expected_event_ids(produced)
        wait_until(lambda: set(expected.values()) <= delivered(), "every event is delivered")
        ends = committed_and_end_offsets(bootstrap, group_id, topic)[1]
        with OffsetProbe(bootstrap, group_id, topic, 3) as offsets:
            wait_until(lambda: offsets.committed() == ends, "everything is committed")
        failed_commits = running.metric("pkc_commits_total", result="failed")
        rebalances = running.summary()["rebalances"]
        assert running.stop() == 0

    received = emulator.events(tracking_id)
    dead = read_topic(bootstrap, dlq)
    figures("broker restart", len(produced), received, len(dead), undelivered_at_stop=in_flight_at_stop,
            failed_commits=int(failed_commits), rebalances=rebalances,
            max_loop_gap_s=round(max(loop_age.values), 2))
    assert len(expected) == len(produced) == 12_000
    assert {e["eventId"] for e in received} == set(expected.values())
    assert dead == []
    assert in_flight_at_stop > 0
    committed, ends = committed_and_end_offsets(bootstrap, group_id, topic)
    assert committed == ends
