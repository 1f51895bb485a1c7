"""Routes that send to one tracker share its quota, as the service counts it (real broker, registry
and an emulator enforcing the quota).

Before one bucket per quota, each route had a bucket of its own at the full rate: two routes to one
tracker sent twice the quota and lived on ThrottlingException.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import committed_and_end_offsets, connector_config, run_in_process, write_config
from fixtures.workers import expected_events

from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

QUOTA = 60  # requests per second the emulator allows per tracker (burst: one second's worth)
# One event per session: one call per event, 10 s at the quota together. Per-route buckets sent
# twice the quota and emptied the emulator's burst within about a second.
EVENTS_PER_ROUTE = 300


def busiest_second(call_times: list[float]) -> int:
    times = sorted(call_times)
    best, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_two_routes_on_one_tracker_stay_within_its_quota_together(
    stack: Any, new_topic: Any, group_id: str, start_emulator: Any, tracking_id: str, aws_env: None,
    tmp_path: Path, client: str,
) -> None:
    emulator = start_emulator("--max-requests-per-second", str(QUOTA))
    clicks, orders = new_topic(partitions=2, suffix="clicks"), new_topic(partitions=2, suffix="orders")
    for seed, topic in ((11, clicks), (12, orders)):
        produce(generate(EVENTS_PER_ROUTE, EVENTS_PER_ROUTE, seed=seed), stack.bootstrap, stack.registry_url, topic,
                progress=False)
    config = connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url, topics=[],
        group_id=group_id, tracking_id=tracking_id, client=client,
        personalize={"max_requests_per_second": QUOTA}, batching={"linger_ms": 100, "max_in_flight_calls": 8},
    )
    config["routes"] = [{"name": name, "destination": "events", "topics": [topic]}
                        for name, topic in (("clicks", clicks), ("orders", orders))]
    code, summary = run_in_process(write_config(tmp_path, config), idle_s=2)
    assert code == 0, summary

    received = emulator.events(tracking_id)
    calls = {(e["receivedAt"], e["sessionId"]) for e in received}
    stats = emulator.stats()
    busiest = busiest_second([t for t, _ in calls])
    print(f"\nclient={client} accepted_calls={len(calls)} throttled={stats['throttled_calls']} "
          f"busiest_1s={busiest} quota={QUOTA}")
    assert stats["throttled_calls"] == 0
    # The buckets admit at most QUOTA calls in any second; the emulator stamps them on arrival,
    # a few milliseconds of jitter later (one call more in a window, seen under a loaded suite).
    assert busiest <= 1.05 * QUOTA
    delivered = {e["eventId"] for e in received}
    for topic in (clicks, orders):
        assert expected_events(stack.bootstrap, topic).ids <= delivered
        committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
        assert committed == ends
