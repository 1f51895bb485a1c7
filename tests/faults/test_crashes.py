"""Crashes (SIGKILL) of a real `personalize-connector run` process, restarted each time.

A SIGKILL gives the worker no chance to drain or commit: whatever it delivered above its last
commit is sent again by the next owner. These tests pin down that nothing is ever lost, that what
comes twice is the same event (same eventId, same body), and how many duplicates a crash costs
with and without the offsets delivered above the watermark stored in the commit metadata.
"""

from __future__ import annotations

import random
import re
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import committed_and_end_offsets, connector_config, write_config
from fixtures.workers import (
    ASSIGNED,
    ExpectedEvents,
    Tally,
    WorkerProcess,
    differing_duplicates,
    expected_events,
    worker_processes,
)

from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

# A killed member holds its partitions until the broker notices it is gone (session.timeout.ms).
# The restarted worker here is the same member coming back (a StatefulSet pod restarted in place):
# with a static `group.instance.id` the broker hands it the partitions at once instead of waiting
# out the dead member's session, which keeps five restarts affordable. test_rebalance.py covers the
# other path: a dead member's partitions reassigned to the survivors after its session times out.
SESSION = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
IDLE_S = 3.0  # everything is produced up front: 3 s without a record means the backlog is done
# Test 2: what makes the duplicate window visible (see its docstring).
BATCHING = {"linger_ms": 1000, "max_in_flight_calls": 8, "max_events_per_call": 10, "max_buffered_records": 1000}
SKIPPING = re.compile(r"skipping (\d+) offsets delivered above")


@dataclass
class CrashRun:
    """What one kill-and-restart scenario did and what reached the emulator."""

    tally: Tally
    kills: int
    kills_after_assignment: int
    skipped_offsets: int  # from the "skipping N offsets" lines of the new owners
    differing: list[str]
    committed: dict[int, int]
    ends: dict[int, int]
    final_exit: int

    @property
    def duplicates_per_crash(self) -> float:
        return self.tally.duplicates / self.kills


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    with worker_processes(tmp_path / "workers") as start:
        yield start


def kill_schedule(seed: int, kills: int) -> list[float]:
    """Seconds each worker runs after it got its partitions before it is killed."""
    rng = random.Random(seed)
    return [round(rng.uniform(0.5, 3.0), 2) for _ in range(kills)]


def crash_and_restart(
    workers: Callable[..., WorkerProcess],
    config_path: Path,
    schedule: list[float],
    expected: ExpectedEvents,
    emulator: Any,
    tracking_id: str,
    bootstrap: str,
    group_id: str,
    label: str,
) -> CrashRun:
    """Start a worker, SIGKILL it `delay` seconds after its assignment, restart; once per delay.

    Then a last worker runs until idle. If a worker dies or gets nothing within 30 s it is killed
    anyway: the guarantees must hold whatever the machine's speed.
    """
    after_assignment = 0
    logs: list[str] = []
    for i, delay in enumerate(schedule):
        worker = workers(config_path, f"{label}-{i}")
        if worker.wait_for(ASSIGNED, timeout=30) is not None:
            after_assignment += 1
        time.sleep(delay)
        worker.kill(signal.SIGKILL)
        code = worker.wait(timeout=30)
        assert code == -signal.SIGKILL, f"worker {i} exited {code} before its kill:\n{worker.tail()}"
        logs.append(worker.log())
    final = workers(config_path, f"{label}-final", exit_when_idle=IDLE_S)
    final_exit = final.wait(timeout=180)
    logs.append(final.log())
    received = emulator.events(tracking_id)
    committed, ends = committed_and_end_offsets(bootstrap, group_id, expected.topic)
    skipped = sum(int(m.group(1)) for log in logs for m in SKIPPING.finditer(log))
    return CrashRun(Tally.of(expected, received), len(schedule), after_assignment, skipped,
                    differing_duplicates(received), committed, ends, final_exit)


def base_config(stack: Any, emulator: Any, topic: str, group_id: str, tracking_id: str,
                kafka: dict[str, Any] | None = None, batching: dict[str, Any] | None = None) -> dict[str, Any]:
    return connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url, topics=[topic],
        group_id=group_id, tracking_id=tracking_id,
        kafka={"config": {**SESSION, "group.instance.id": f"{group_id}-pod-0"}, **(kafka or {})},
        batching=batching or {},
    )


def assert_safe(run: CrashRun) -> None:
    assert run.final_exit == 0, "the last worker did not end cleanly (see its log under tmp_path/workers)"
    assert run.tally.missing == 0, f"{run.tally.missing} events never delivered"
    assert run.tally.unexpected == 0
    assert run.differing == [], f"same eventId, different bodies: {run.differing[:5]}"
    assert run.committed == run.ends


def test_kill_9_at_random_moments_loses_nothing_and_duplicates_are_the_same_events(
    stack: Any, new_topic: Callable[..., str], group_id: str, start_emulator: Callable[..., Any],
    workers: Callable[..., WorkerProcess], tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    topic = new_topic(partitions=4)
    assert produce(generate(50_000, 5_000, seed=23), stack.bootstrap, stack.registry_url, topic,
                   progress=False).produced == 50_000
    expected = expected_events(stack.bootstrap, topic)
    emulator = start_emulator()
    config = write_config(tmp_path, base_config(stack, emulator, topic, group_id, tracking_id))

    schedule = kill_schedule(seed=23, kills=5)
    run = crash_and_restart(workers, config, schedule, expected, emulator, tracking_id, stack.bootstrap,
                            group_id, "kill9")
    print(f"\n{run.tally.line('kill -9')} kills={run.kills} (after assignment: {run.kills_after_assignment}) "
          f"delays={schedule} duplicates_per_crash={run.duplicates_per_crash:.0f} skipped={run.skipped_offsets}")
    assert_safe(run)


def test_duplicates_per_crash_with_and_without_commit_metadata(
    stack: Any, new_topic: Callable[..., str], start_emulator: Callable[..., Any],
    workers: Callable[..., WorkerProcess], tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    """The same stream, the same kill schedule, once per `kafka.commit_metadata` setting.

    A one-second linger holds the commit watermark behind the oldest unfilled session batch while
    later batches of other sessions are delivered above it: exactly what the metadata records.
    Reading ahead is capped at 1000 undelivered records, as in a steady stream rather than a
    catch-up over a backlog (where the worker reads far ahead and the metadata overflows).
    Only safety is asserted; the figures depend on timing and are printed for docs/delivery.md.
    """
    topic = new_topic(partitions=4)
    produce(generate(30_000, 3_000, seed=31), stack.bootstrap, stack.registry_url, topic, progress=False)
    expected = expected_events(stack.bootstrap, topic)
    schedule = kill_schedule(seed=31, kills=5)

    def scenario(with_metadata: bool) -> CrashRun:
        emulator = start_emulator()
        group = f"{topic}-metadata-{str(with_metadata).lower()}"
        config = write_config(tmp_path, base_config(
            stack, emulator, topic, group, tracking_id,
            kafka={"commit_metadata": with_metadata, "commit_interval_ms": 200},
            batching=BATCHING,
        ), name=f"metadata-{with_metadata}.yaml")
        return crash_and_restart(workers, config, schedule, expected, emulator, tracking_id, stack.bootstrap,
                                 group, "with-metadata" if with_metadata else "without-metadata")

    # Side by side: both settings see the same machine load, and the test takes half the time.
    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip((False, True), pool.map(scenario, (False, True)), strict=True))
    for with_metadata, run in runs.items():
        label = "with metadata" if with_metadata else "without metadata"
        print(f"\n{run.tally.line(label)} kills={run.kills} (after assignment: {run.kills_after_assignment}) "
              f"skipped={run.skipped_offsets}", end="")
    print()
    for run in runs.values():
        assert_safe(run)
    print(f"duplicates per crash: without metadata {runs[False].duplicates_per_crash:.0f}, "
          f"with metadata {runs[True].duplicates_per_crash:.0f} "
          f"(kill delays {schedule} s after assignment, {expected.produced} events, batching {BATCHING})")
    assert runs[False].skipped_offsets == 0
