"""The request quota belongs to the consumer group: workers each configured with the full quota Q
share it through the group's partition assignment (connector.pipeline.quota_share).

Three worker processes in one group drain a backlog into an emulator that enforces Q with 30 ms
of latency. Together they use at least 90 % of Q, are throttled on at most 2 % of their accepted
calls, and never send more than 1.05 Q in any second; when one of them stops, the two left take
over its share and again use at least 90 % of Q; nothing is lost.

Rates are measured from the emulator's own clock (receivedAt) over windows that start once the
group has settled (every member logged its new share), so the figures do not depend on how fast
the machine starts processes. The quota is small enough that any machine reaches it.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import connector_config, write_config
from fixtures.workers import Tally, WorkerProcess, expected_events, wait_for_commits, worker_processes

from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

QUOTA = 90  # calls per second per tracker, enforced by the emulator
PARTITIONS = 6  # 2 per member with 3 members, 3 with 2
EVENTS, SESSIONS = 20_000, 4_000  # ~5 events per call: ~4,000 calls, ~45 s at the quota
WINDOW_S = 6.0  # each measured window


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    with worker_processes(tmp_path / "workers") as start:
        yield start


def share_logged(worker: WorkerProcess, assigned: int, before: int = 0) -> bool:
    """The worker logged that it holds `assigned` of the partitions (and so that share of the
    quota), more than `before` times: a share it had earlier does not count."""
    line = re.compile(re.escape(f"quota shares: events {assigned}/{PARTITIONS} partitions"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.alive():
        if len(line.findall(worker.log())) > before:
            return True
        time.sleep(0.1)
    return False


def times_logged(worker: WorkerProcess, assigned: int) -> int:
    return worker.log().count(f"quota shares: events {assigned}/{PARTITIONS} partitions")


def busiest_second(times: list[float]) -> tuple[int, float]:
    """The most calls in any 1 s window, and when that window ended."""
    times = sorted(times)
    best, end, first = 0, 0.0, 0
    for last, t in enumerate(times):
        while times[first] <= t - 1.0:
            first += 1
        if last - first + 1 > best:
            best, end = last - first + 1, t
    return best, end


def test_three_workers_with_the_full_quota_share_it_and_two_take_over_when_one_stops(
    stack: Any, new_topic: Callable[..., str], group_id: str, start_emulator: Callable[..., Any],
    workers: Callable[..., WorkerProcess], tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    topic = new_topic(partitions=PARTITIONS)
    produce(generate(EVENTS, SESSIONS, seed=61), stack.bootstrap, stack.registry_url, topic, progress=False)
    emulator = start_emulator("--max-requests-per-second", str(QUOTA))
    emulator.set_faults(latency_ms=30)
    config = write_config(tmp_path, connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url, topics=[topic],
        group_id=group_id, tracking_id=tracking_id,
        kafka={"config": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}, "commit_interval_ms": 200},
        personalize={"max_requests_per_second": QUOTA},  # every member is given the whole quota
        # A member stopping drains what it buffered at its own share of the quota before it leaves:
        # a small read-ahead (~3 s of its share) hands its partitions over in seconds, not in the
        # whole grace period.
        batching={"linger_ms": 200, "max_in_flight_calls": 16, "max_buffered_records": 500},
    ))
    group = [workers(config, f"w{i}") for i in range(3)]
    for worker in group:
        assert share_logged(worker, 2), f"{worker.name} never held 2 of {PARTITIONS}:\n{worker.tail()}"

    # The emulator is asked nothing until the end: an inspection mid-run would stall its loop, and
    # the calls queued meanwhile would be stamped in one burst.
    three_from = time.time()
    time.sleep(WINDOW_S)

    leaving, stay = group[0], group[1:]
    earlier = [times_logged(w, 3) for w in stay]  # a member may have held 3 before the third joined
    leaving.terminate()
    assert leaving.wait(timeout=60) == 0, leaving.tail()
    for worker, before in zip(stay, earlier, strict=True):
        assert share_logged(worker, 3, before), f"{worker.name} never took 3 of {PARTITIONS}:\n{worker.tail()}"
    two_from = time.time()
    time.sleep(WINDOW_S)

    committed, ends = wait_for_commits(stack.bootstrap, group_id, topic, timeout=180)
    for worker in stay:
        worker.terminate()
    codes = [w.wait(timeout=60) for w in stay]
    received = emulator.events(tracking_id)
    tally = Tally.of(expected_events(stack.bootstrap, topic), received)
    stats = emulator.stats()
    accepted = sorted(t for t, _ in {(e["receivedAt"], e["sessionId"]) for e in received})
    busiest, busiest_at = busiest_second(accepted)
    three, two = (sum(1 for t in accepted if start <= t < start + WINDOW_S) / WINDOW_S
                  for start in (three_from, two_from))
    per_second = Counter(int(t - accepted[0]) for t in accepted)
    seconds = [per_second[i] for i in range(max(per_second) + 1)]
    print(f"\n{tally.line('group quota')} quota={QUOTA} three_workers={three:.1f}/s ({100 * three / QUOTA:.0f} %) "
          f"two_workers={two:.1f}/s ({100 * two / QUOTA:.0f} %) accepted_calls={len(accepted)} "
          f"throttled={stats['throttled_calls']} busiest_1s={busiest} (ending +{busiest_at - accepted[0]:.1f}s)\n"
          f"per second: {seconds}; windows at +{three_from - accepted[0]:.1f}s and +{two_from - accepted[0]:.1f}s")

    assert codes == [0, 0], "\n\n".join(w.tail() for w in stay)
    assert three >= 0.9 * QUOTA
    assert two >= 0.9 * QUOTA
    assert stats["throttled_calls"] <= 0.02 * len(accepted)
    assert busiest <= 1.05 * QUOTA
    assert tally.missing == 0 and tally.unexpected == 0
    assert committed == ends
