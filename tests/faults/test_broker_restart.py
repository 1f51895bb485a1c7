"""The Kafka broker stops and comes back mid-stream: the worker rides it out without losing anything.

This module runs its own stack (other ports, its own state dir), because stopping the broker of the
shared stack would break every other test using it. Ports: KAFKA_PORT 29092, controller 29093,
registry 28081 (override with FAULTS_KAFKA_PORT / FAULTS_CONTROLLER_PORT / FAULTS_REGISTRY_PORT).
All below Linux's ephemeral range (32768-60999): a port in it (the stack also takes KAFKA_PORT + 2
and + 3) can be held at that moment by any client connection of the suite, and the broker then
fails to bind (seen once: 59094 in use).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
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

from connector.produce import produce
from connector.workload import generate

pytestmark = pytest.mark.integration

DOWN_S = 5.0  # how long the broker stays down


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DedicatedStack]:
    stack = DedicatedStack(
        tmp_path_factory.mktemp("broker-restart-stack"),
        kafka_port=int(os.environ.get("FAULTS_KAFKA_PORT", "29092")),
        controller_port=int(os.environ.get("FAULTS_CONTROLLER_PORT", "29093")),
        registry_port=int(os.environ.get("FAULTS_REGISTRY_PORT", "28081")),
    )
    try:
        stack.up()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield stack
    finally:
        stack.down()


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
