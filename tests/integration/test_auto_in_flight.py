"""With the default `batching.max_in_flight_calls: auto`, a slow service gets more calls in flight
than the old fixed 16, within the quota (real broker, registry and an emulator adding latency).

16 calls of 200 ms allow 80 calls/s; the quota here allows 400, so a worker that keeps the quota
the limit must have more than 16 calls open at once. The emulator stamps a call on arrival and
answers it 200 ms later, so calls that arrive within less than 200 ms of each other were all in
flight together: no assertion depends on how fast this machine is, only on how many calls the
worker let out at once.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import committed_and_end_offsets, connector_config, run_in_process, write_config
from fixtures.workers import expected_events

from connector.pipeline.inflight import AUTO_LOWEST
from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

QUOTA = 400
LATENCY_S = 0.2
EVENTS = 1200  # one event per session: one call each, 3 s at the quota


def most_in_flight_together(arrivals: list[float], within_s: float) -> int:
    """The most calls that arrived within `within_s` (< the latency) of each other."""
    times = sorted(arrivals)
    return max(bisect.bisect_left(times, t + within_s) - i for i, t in enumerate(times))


def test_calls_in_flight_grow_past_the_old_fixed_bound_within_the_quota(
    stack: Any, new_topic: Any, group_id: str, start_emulator: Any, tracking_id: str, aws_env: None,
    tmp_path: Path,
) -> None:
    emulator = start_emulator("--max-requests-per-second", str(QUOTA))
    emulator.set_faults(latency_ms=LATENCY_S * 1000)
    topic = new_topic(partitions=4)
    produce(generate(EVENTS, EVENTS, seed=17), stack.bootstrap, stack.registry_url, topic, progress=False)
    config = connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url, topics=[topic],
        group_id=group_id, tracking_id=tracking_id, personalize={"max_requests_per_second": QUOTA},
        batching={"linger_ms": 100, "max_in_flight_calls": "auto"},  # the default
    )
    code, summary = run_in_process(write_config(tmp_path, config), idle_s=2)
    assert code == 0, summary

    received = emulator.events(tracking_id)
    arrivals = sorted({(e["receivedAt"], e["sessionId"]) for e in received})
    together = most_in_flight_together([t for t, _ in arrivals], within_s=LATENCY_S * 0.75)
    stats = emulator.stats()
    print(f"\ncalls={len(arrivals)} most_in_flight_together>={together} throttled={stats['throttled_calls']}")
    assert together > AUTO_LOWEST
    assert stats["throttled_calls"] == 0
    assert expected_events(stack.bootstrap, topic).ids <= {e["eventId"] for e in received}
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends
