"""dlq.max_failure_ratio on the real stack (issue 13, finding 15): a partition whose stream turns
mostly bad, with a good record now and then, stalls instead of dead-lettering the stream, where
the consecutive limit never trips (every good record ends the run)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fixtures.faults import OffsetProbe, run_worker, wait_until
from fixtures.pipeline import (
    canonical_schema,
    confluent_frame,
    connector_config,
    produce_raw,
    read_topic,
    register,
    write_config,
)

from connector.dlq import parse_error_headers

pytestmark = pytest.mark.integration

SCHEMA = canonical_schema()
WINDOW, RATIO = 20, 0.5


def _event(event_id: str, session: str) -> dict[str, Any]:
    return {"eventId": event_id, "trackingId": None, "sessionId": session, "userId": None, "eventType": "view",
            "eventValue": None, "itemId": "item-1", "properties": {}, "sentAt": 1_748_736_000_000,
            "recommendationId": None, "impression": [], "eventAttributionSource": None}


def _expected_stall(bad: list[bool]) -> int:
    """The offset of the first bad record that, counted in, makes more than RATIO of a full window
    of the last WINDOW outcomes failures (written out here, apart from connector.pipeline.dlq_limits)."""
    outcomes: list[bool] = []
    for offset, failed in enumerate(bad):
        last = [*outcomes, True][-WINDOW:]
        if failed and len(last) == WINDOW and sum(last) > RATIO * WINDOW:
            return offset
        outcomes.append(failed)
    raise AssertionError("the stream never exceeds the ratio")


def test_a_mostly_bad_partition_stalls_on_the_failure_ratio_and_only_it(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, start_emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    emulator = start_emulator()
    topic, dlq = new_topic(partitions=2), new_topic(partitions=1, suffix="dlq")
    schema_id = register(registry_client, f"{topic}-value", SCHEMA)

    # Partition 0: 10 good records, then three undecodable ones for every good one (75 % bad).
    bad = [False] * 10 + [j % 4 != 3 for j in range(80)]
    p0 = [(b"p0-s", b"garbage %d" % i) if is_bad else
          (b"p0-s", confluent_frame(schema_id, SCHEMA, _event(f"p0-{i}", "p0-s"))) for i, is_bad in enumerate(bad)]
    p1 = [(b"p1-s", confluent_frame(schema_id, SCHEMA, _event(f"p1-{i}", "p1-s"))) for i in range(30)]
    produce_raw(stack.bootstrap, topic, p0, partition_for=lambda _i: 0)
    produce_raw(stack.bootstrap, topic, p1, partition_for=lambda _i: 1)
    stall_at = _expected_stall(bad)

    config = connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url, topics=[topic],
        group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq,
        dlq={"max_consecutive_failures": 5, "max_failure_ratio": RATIO, "failure_ratio_window": WINDOW,
             "stall_retry_s": 1})
    caplog.set_level(logging.ERROR, logger="connector.worker")
    with run_worker(write_config(tmp_path, config)) as running, \
            OffsetProbe(stack.bootstrap, group_id, topic, 2) as probe:
        wait_until(lambda: running.metric("pkc_partitions_stalled") == 1, "partition 0 stalls")
        wait_until(lambda: probe.committed() == {0: stall_at, 1: 30}, f"commits reach {stall_at} and 30")
        ready, detail = running.worker.health.ready()
        assert not ready
        assert detail["stall_reasons"] == {f"{topic}[0]": "failure_ratio"}
        # It retries after stall_retry_s and stalls again on the same record: one stall episode.
        consumed = running.metric("pkc_records_consumed_total", topic=topic)
        wait_until(lambda: running.metric("pkc_records_consumed_total", topic=topic) >= consumed + 2,
                   "partition 0 retries its stalled record")
        assert running.metric("pkc_partition_stalls_total", reason="failure_ratio") == 1
        assert running.metric("pkc_partition_stalls_total", reason="consecutive_failures") == 0
        assert probe.committed() == {0: stall_at, 1: 30}
        assert running.stop() == 0

    dead = sorted(int(parse_error_headers(list(r.headers.items()))["pkc.source.offset"])
                  for r in read_topic(stack.bootstrap, dlq))
    delivered = {e["eventId"] for e in emulator.events(tracking_id)}
    print(f"\nfailure ratio: stalled at p0 offset {stall_at}; dead letters={len(dead)} delivered={len(delivered)}")
    assert dead == [o for o in range(stall_at) if bad[o]]
    assert delivered == {f"p0-{o}" for o in range(stall_at) if not bad[o]} | {f"p1-{i}" for i in range(30)}
    lines = [r.getMessage() for r in caplog.records if "stalled at offset" in r.getMessage()]
    assert len(lines) == 1 and "dlq.max_failure_ratio 0.5" in lines[0], lines
