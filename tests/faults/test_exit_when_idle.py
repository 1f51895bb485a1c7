"""`--exit-when-idle` right after a crash (issue 13, finding 14).

A member SIGKILLed keeps its partitions until its session expires; a worker started meanwhile
joins the group but gets nothing until then. "Nothing arrived for N seconds" is then no sign that
the backlog is done: idle may only count once the worker is in the group with its assignment and
every assigned partition is read to its end.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import committed_and_end_offsets, connector_config, write_config
from fixtures.workers import ASSIGNED, Tally, WorkerProcess, expected_events, worker_processes

from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

DEAD_SESSION_MS = 15_000  # the dead member holds its partitions this long after its last heartbeat
IDLE_S = 2.0


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    with worker_processes(tmp_path / "workers") as start:
        yield start


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_exit_when_idle_waits_for_the_dead_members_partitions_and_the_backlog(
    stack: Any, new_topic: Callable[..., str], group_id: str, start_emulator: Callable[..., Any],
    workers: Callable[..., WorkerProcess], tracking_id: str, aws_env: None, tmp_path: Path, kafka_client: str,
) -> None:
    topic = new_topic(partitions=2)
    produce(generate(2_000, 200, seed=14), stack.bootstrap, stack.registry_url, topic, progress=False)
    expected = expected_events(stack.bootstrap, topic)
    emulator = start_emulator()

    def config(name: str, emulator_url: str, session_ms: int) -> Path:
        return write_config(tmp_path, connector_config(
            bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator_url, topics=[topic],
            group_id=group_id, tracking_id=tracking_id,
            kafka={"config": {"session.timeout.ms": session_ms, "heartbeat.interval.ms": 1000}}), name=name)

    # The first member can deliver nothing (Personalize unreachable: a closed port) and dies with
    # all the partitions and the whole backlog; its session runs on in the broker.
    dead = workers(config("dead.yaml", f"http://127.0.0.1:{_closed_port()}", DEAD_SESSION_MS), "dead")
    assert dead.wait_for(ASSIGNED, timeout=60), dead.tail()
    dead.kill(signal.SIGKILL)
    assert dead.wait(timeout=30) == -signal.SIGKILL
    killed_at = time.monotonic()

    batch = workers(config("batch.yaml", emulator.url, 10_000), "batch", exit_when_idle=IDLE_S)
    code = batch.wait(timeout=180)
    ran_for = time.monotonic() - killed_at
    received = emulator.events(tracking_id)
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    tally = Tally.of(expected, received)
    print(f"\n[{kafka_client}] {tally.line('exit-when-idle after a crash')} exit={code} "
          f"ran_for={ran_for:.1f}s committed={committed} ends={ends}")
    assert code == 0, batch.tail()
    assert tally.missing == 0, f"exited with {tally.missing} events undelivered:\n{batch.tail()}"
    assert committed == ends
    if kafka_client == "confluent":
        # kafka-python's poll blocks until a join in progress completes (connector.kafka.
        # kafka_python.complete_rebalance), so the loop never looks idle meanwhile; librdkafka's returns.
        assert "not in the consumer group yet" in batch.log()


def test_a_member_given_nothing_is_joined_and_exits_when_idle(
    stack: Any, new_topic: Callable[..., str], group_id: str, start_emulator: Callable[..., Any],
    workers: Callable[..., WorkerProcess], tracking_id: str, aws_env: None, tmp_path: Path, kafka_client: str,
) -> None:
    """An empty assignment counts as joined: with one partition and a member already holding it, a
    second member gets nothing and must still end its run (kafka-python never calls the listener
    for an empty assignment; its coordinator is asked instead)."""
    topic = new_topic(partitions=1)
    emulator = start_emulator()
    config = write_config(tmp_path, connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url, topics=[topic],
        group_id=group_id, tracking_id=tracking_id))
    owner = workers(config, "owner")
    assert owner.wait_for(ASSIGNED, timeout=60), owner.tail()
    spare = workers(config, "spare", exit_when_idle=IDLE_S)
    code = spare.wait(timeout=120)
    print(f"\n[{kafka_client}] member with an empty assignment: exit={code} after {spare.uptime():.1f}s")
    assert code == 0, spare.tail()
    assert re.search(ASSIGNED, spare.log()) is None, "the spare member was given a partition"
    assert owner.alive()
