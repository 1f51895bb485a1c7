"""Rebalances of a consumer group of real worker processes while the stream is flowing.

Three workers share a six-partition topic that is produced at a steady rate during the test, so
every fault lands mid-stream whatever the machine's speed. The group uses cooperative-sticky
assignment: a joining member takes partitions from the others through a revoke (flush, commit,
drop), a crashed member's partitions are handed out once its session times out, and a member
leaving on SIGTERM drains and commits before it goes.

The workers run until SIGTERM, as in a deployment. Each test waits until the group has committed
every partition to its end, then stops the survivors together: with `--exit-when-idle` instead,
each member leaving hands its partitions to the others and restarts their idle clocks, so the
group would need up to one idle period per member to wind down.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import committed_and_end_offsets, connector_config, write_config
from fixtures.workers import (
    ASSIGNED,
    Tally,
    WorkerProcess,
    differing_duplicates,
    expected_events,
    paced,
    wait_for_commits,
    worker_processes,
)

from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

# Dynamic membership: a SIGKILLed member's partitions wait out its session before they move.
SESSION = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
RATE = 3_500  # events per second produced: the stream lasts about n / RATE seconds
CATCH_UP_S = 120.0  # how long the group may take to commit everything once the stream ended


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    with worker_processes(tmp_path / "workers") as start:
        yield start


def group_config(stack: Any, emulator: Any, topic: str, group_id: str, tracking_id: str) -> dict[str, Any]:
    return connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                            topics=[topic], group_id=group_id, tracking_id=tracking_id,
                            kafka={"config": SESSION, "commit_interval_ms": 200})


def start_group(workers: Callable[..., WorkerProcess], config: Path, names: list[str]) -> list[WorkerProcess]:
    """Start the members together and wait until each owns partitions."""
    group = [workers(config, name) for name in names]
    for worker in group:
        assert worker.wait_for(ASSIGNED, timeout=60), f"{worker.name} got no partitions:\n{worker.tail()}"
    return group


def stop_all(group: list[WorkerProcess]) -> dict[str, int]:
    """SIGTERM every member at once; their exit codes."""
    for worker in group:
        worker.terminate()
    return {worker.name: worker.wait(timeout=60) for worker in group}


def at(start: float, second: float) -> None:
    """Sleep until `second` seconds after `start`."""
    time.sleep(max(0.0, start + second - time.monotonic()))


def test_a_member_joining_and_one_killed_mid_stream_lose_nothing(
    stack: Any, new_topic: Callable[..., str], group_id: str, start_emulator: Callable[..., Any],
    workers: Callable[..., WorkerProcess], tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    topic = new_topic(partitions=6)
    emulator = start_emulator()
    config = write_config(tmp_path, group_config(stack, emulator, topic, group_id, tracking_id))
    w0, w1, w2 = start_group(workers, config, ["w0", "w1", "w2"])

    n = 30_000
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        producing = pool.submit(produce, paced(generate(n, 3_000, seed=41), RATE), stack.bootstrap,
                                stack.registry_url, topic, progress=False)
        at(started, 2.5)
        w3 = workers(config, "w3")  # the 4th member: a cooperative revoke for others
        at(started, 5.0)
        w1.kill(signal.SIGKILL)
        assert producing.result(timeout=120).produced == n
    produced_in = time.monotonic() - started

    assert w1.wait(timeout=30) == -signal.SIGKILL
    committed, ends = wait_for_commits(stack.bootstrap, group_id, topic, CATCH_UP_S)
    caught_up_in = time.monotonic() - started - produced_in
    codes = stop_all([w0, w2, w3])
    expected = expected_events(stack.bootstrap, topic)
    received = emulator.events(tracking_id)
    tally = Tally.of(expected, received)
    print(f"\n{tally.line('join + kill -9')} produced_in={produced_in:.1f}s "
          f"all_committed_after={caught_up_in:.1f}s exits={codes} "
          f"w3_assigned={bool(w3.wait_for(ASSIGNED, 0))}")

    assert codes == {"w0": 0, "w2": 0, "w3": 0}, "\n\n".join(w.tail() for w in (w0, w2, w3))
    assert tally.missing == 0, f"{tally.missing} events never delivered"
    assert tally.unexpected == 0
    assert differing_duplicates(received) == []
    assert committed == ends
    assert committed_and_end_offsets(stack.bootstrap, group_id, topic) == (ends, ends)  # still, after the stop


def test_a_member_stopped_with_sigterm_mid_stream_hands_over_without_loss(
    stack: Any, new_topic: Callable[..., str], group_id: str, start_emulator: Callable[..., Any],
    workers: Callable[..., WorkerProcess], tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    topic = new_topic(partitions=6)
    emulator = start_emulator()
    config = write_config(tmp_path, group_config(stack, emulator, topic, group_id, tracking_id))
    w0, w1, w2 = start_group(workers, config, ["w0", "w1", "w2"])

    n = 20_000
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        producing = pool.submit(produce, paced(generate(n, 2_000, seed=43), RATE), stack.bootstrap,
                                stack.registry_url, topic, progress=False)
        at(started, 3.0)
        w1.terminate()
        stopped_with = w1.wait(timeout=60)
        stop_took = time.monotonic() - started - 3.0
        assert producing.result(timeout=120).produced == n

    committed, ends = wait_for_commits(stack.bootstrap, group_id, topic, CATCH_UP_S)
    codes = stop_all([w0, w2])
    expected = expected_events(stack.bootstrap, topic)
    received = emulator.events(tracking_id)
    tally = Tally.of(expected, received)
    print(f"\n{tally.line('sigterm one member')} sigterm_exit={stopped_with} drained_in={stop_took:.1f}s "
          f"exits={codes}")

    assert stopped_with == 0, w1.tail()
    # A graceful handover (revoke on join, drain on SIGTERM) flushes and commits first: nothing twice.
    assert tally.duplicates == 0
    assert "revoking" in w1.log()
    assert codes == {"w0": 0, "w2": 0}, "\n\n".join(w.tail() for w in (w0, w2))
    assert tally.missing == 0, f"{tally.missing} events never delivered"
    assert tally.unexpected == 0
    assert differing_duplicates(received) == []
    assert committed == ends
    assert committed_and_end_offsets(stack.bootstrap, group_id, topic) == (ends, ends)  # still, after the stop
