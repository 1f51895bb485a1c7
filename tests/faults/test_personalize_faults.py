"""Personalize misbehaving, end to end through Kafka: an outage, a throttling storm, events the
service refuses, and a systemic failure (the tracker does not exist) fixed by configuration.

Each test runs its own emulator, so the faults it sets never reach another test.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fixtures.faults import (
    OffsetProbe,
    decode_canonical,
    expected_event_ids,
    figures,
    run_worker,
    wait_until,
)
from fixtures.pipeline import committed_and_end_offsets, connector_config, read_topic, write_config

from connector.dlq import parse_error_headers
from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

OUTAGE_S = 30.0  # the requirement: a 30 s outage, recovered from without any help


def _config(stack: Any, emulator: Any, topic: str, group_id: str, tracking_id: str, dlq: str,
            **sections: dict[str, Any]) -> dict[str, Any]:
    return connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                            topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq, **sections)


def test_a_30s_outage_loses_nothing_and_never_commits_past_an_undelivered_event(
    stack: Any, new_topic: Any, group_id: str, start_emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    emulator = start_emulator()
    topic, dlq = new_topic(partitions=3), new_topic(partitions=1, suffix="dlq")
    first = list(generate(3_000, 300, seed=21))
    second = list(generate(3_000, 300, seed=22))
    produce(first, stack.bootstrap, stack.registry_url, topic, progress=False)
    config = write_config(tmp_path, _config(stack, emulator, topic, group_id, tracking_id, dlq))

    samples: list[tuple[dict[int, int], set[str]]] = []
    with run_worker(config) as running, OffsetProbe(stack.bootstrap, group_id, topic, 3) as offsets:
        wait_until(lambda: len(emulator.events(tracking_id)) >= 500, "the stream is flowing")
        # Half the outage drops connections unanswered, half answers 503 ServiceUnavailable.
        emulator.set_faults(outage=True, outage_mode="close")
        # Records arriving during the outage are read and buffered, never delivered meanwhile.
        produce(second, stack.bootstrap, stack.registry_url, topic, progress=False)
        started = time.monotonic()
        switched = False
        while (elapsed := time.monotonic() - started) < OUTAGE_S:
            if not switched and elapsed >= OUTAGE_S / 2:
                emulator.set_faults(outage_mode="503")
                switched = True
            # Committed first, delivered second: whatever was committed was delivered before it.
            committed = offsets.committed()
            samples.append((committed, {e["eventId"] for e in emulator.events(tracking_id)}))
            time.sleep(0.5)
        assert running.metric("pkc_systemic_failure") == 0
        assert running.alive
        emulator.set_faults(outage=False)

        produced = read_topic(stack.bootstrap, topic)
        expected = expected_event_ids(produced)
        wait_until(lambda: set(expected.values()) <= {e["eventId"] for e in emulator.events(tracking_id)},
                   "every event is delivered after the outage")
        ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)[1]
        wait_until(lambda: offsets.committed() == ends, "everything is committed")
        failed_calls = running.metric("pkc_put_events_calls_total", outcome="transient")
        assert running.stop() == 0

    received = emulator.events(tracking_id)
    dead = running.summary()["dead_letters"]
    figures("outage", len(produced), received, dead, samples=len(samples), failed_calls=int(failed_calls))
    assert len(expected) == len(produced) == 6_000
    assert {e["eventId"] for e in received} == set(expected.values())
    assert dead == 0
    assert failed_calls > 0
    # The outage really held undelivered records: the last sample misses some of them.
    assert len(samples[-1][1]) < len(expected)
    for committed, delivered in samples:
        for (partition, offset), event_id in expected.items():
            if offset < committed[partition]:
                assert event_id in delivered, f"offset {partition}@{offset} committed before it was delivered"
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends


def test_a_throttling_storm_slows_down_but_delivers_everything(
    stack: Any, new_topic: Any, group_id: str, start_emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    emulator = start_emulator()
    emulator.set_faults(throttle_ratio=0.5)
    topic, dlq = new_topic(partitions=3), new_topic(partitions=1, suffix="dlq")
    produce(generate(600, 30, seed=31), stack.bootstrap, stack.registry_url, topic, progress=False)
    with run_worker(write_config(tmp_path, _config(stack, emulator, topic, group_id, tracking_id, dlq)),
                    exit_when_idle_s=3) as running:
        running.thread.join(300)
    assert running.exit_codes == [0]
    throttled = running.metric("pkc_put_events_calls_total", outcome="throttled")

    produced = read_topic(stack.bootstrap, topic)
    expected = set(expected_event_ids(produced).values())
    received = emulator.events(tracking_id)
    figures("throttling", len(produced), received, running.summary()["dead_letters"], throttled_calls=int(throttled),
            emulator_throttled=emulator.stats()["throttled_calls"])
    assert {e["eventId"] for e in received} == expected
    assert len(received) == len(expected) == 600
    assert running.summary()["dead_letters"] == 0
    assert throttled > 0
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends


def test_events_the_service_refuses_are_dead_lettered_and_only_those(
    stack: Any, new_topic: Any, group_id: str, start_emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    emulator = start_emulator()
    topic, dlq = new_topic(partitions=3), new_topic(partitions=1, suffix="dlq")
    produce(generate(3_000, 300, seed=41), stack.bootstrap, stack.registry_url, topic, progress=False)
    produced = read_topic(stack.bootstrap, topic)
    items = {(r.partition, r.offset): (decode_canonical(r) or {}).get("itemId") for r in produced}
    # A few rare items (each in exactly one record), so their sessions also carry good events.
    counts = Counter(items.values())
    refused = sorted(item for item, n in counts.items() if n == 1 and item)[:4]
    assert len(refused) == 4
    emulator.set_faults(reject_item_ids=refused)
    refused_positions = {pos for pos, item in items.items() if item in refused}

    with run_worker(write_config(tmp_path, _config(stack, emulator, topic, group_id, tracking_id, dlq)),
                    exit_when_idle_s=3) as running:
        running.thread.join(300)
    assert running.exit_codes == [0]

    expected = expected_event_ids(produced)
    received = emulator.events(tracking_id)
    dead = read_topic(stack.bootstrap, dlq)
    figures("refused", len(produced), received, len(dead), refused_items=len(refused))
    headers = [parse_error_headers(list(d.headers.items())) for d in dead]
    assert {(int(h["pkc.source.partition"]), int(h["pkc.source.offset"])) for h in headers} == refused_positions
    assert len(dead) == len(refused_positions)
    assert {h["pkc.error.stage"] for h in headers} == {"send"}
    assert {h["pkc.error.class"] for h in headers} == {"InvalidInputException"}
    assert {e["eventId"] for e in received} == {i for pos, i in expected.items() if pos not in refused_positions}
    assert len(received) == len(produced) - len(refused_positions)
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends


def test_a_systemic_failure_pauses_everything_and_a_config_fix_recovers(
    stack: Any, new_topic: Any, group_id: str, start_emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path,
) -> None:
    # The service knows another tracker only: every call fails with ResourceNotFoundException.
    wrong = start_emulator("--tracking-id", "some-other-tracker")
    topic, dlq = new_topic(partitions=3), new_topic(partitions=1, suffix="dlq")
    produce(generate(1_000, 100, seed=51), stack.bootstrap, stack.registry_url, topic, progress=False)
    # A short grace period: the stop below would otherwise wait it out with calls still failing.
    bad_config = _config(stack, wrong, topic, group_id, tracking_id, dlq, shutdown={"grace_period_s": 2})

    with run_worker(write_config(tmp_path, bad_config, "wrong.yaml")) as running, \
            OffsetProbe(stack.bootstrap, group_id, topic, 3) as offsets:
        wait_until(lambda: running.metric("pkc_systemic_failure") == 1, "the systemic failure is flagged")
        wait_until(lambda: running.metric("pkc_partitions_assigned") == 3
                   and running.metric("pkc_partitions_paused") == 3, "every assigned partition is paused")
        ok, detail = running.worker.health.ready()
        assert not ok
        assert "ResourceNotFoundException" in str(detail["systemic_error"])
        # It stays so: nothing dead-lettered, nothing committed, the loop alive.
        time.sleep(3)
        assert running.metric("pkc_systemic_failure") == 1
        assert running.metric("pkc_partitions_paused") == 3
        assert running.summary()["dead_letters"] == 0
        assert all(offset < 1 for offset in offsets.committed().values())
        systemic_calls = running.metric("pkc_put_events_calls_total", outcome="systemic")
        assert running.stop() == 0
    assert wrong.events() == []
    committed, _ = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert all(offset < 1 for offset in committed.values()), committed

    # The fix: the right tracker (here: a service that knows ours). Same group, resumes from 0.
    right = start_emulator("--tracking-id", tracking_id)
    fixed = _config(stack, right, topic, group_id, tracking_id, dlq)
    with run_worker(write_config(tmp_path, fixed, "fixed.yaml"), exit_when_idle_s=3) as recovered:
        recovered.thread.join(300)
    assert recovered.exit_codes == [0]

    produced = read_topic(stack.bootstrap, topic)
    expected = set(expected_event_ids(produced).values())
    received = right.events(tracking_id)
    dead = read_topic(stack.bootstrap, dlq)
    figures("systemic", len(produced), received, len(dead), systemic_calls=int(systemic_calls))
    assert systemic_calls > 0
    assert dead == []
    assert {e["eventId"] for e in received} == expected
    assert len(received) == len(expected) == 1_000
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends
