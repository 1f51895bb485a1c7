"""`personalize-connector dlq inspect | replay` on the real local stack and emulator.

The story each test tells: a deployment with a wrong mapping (`mapping.session_id` names a field
the records do not have) dead-letters every record; the operator inspects the dead-letter topic,
fixes the configuration, previews the replay with --dry-run, replays, and the events arrive with
the ids they would have had the first time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures.pipeline import (
    committed_and_end_offsets,
    connector_config,
    read_topic,
    run_in_process,
    write_config,
)

from connector.destinations.events import derived_event_id
from connector.dlq import parse_error_headers
from connector.records import SourceRecord
from connector.tools.produce import produce
from connector.tools.workload import UNDECODABLE_KINDS, generate

pytestmark = pytest.mark.integration


def dlq(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("personalize-connector")
    return subprocess.run(
        [str(exe), "dlq", *args], capture_output=True, text=True, timeout=300, check=False,
        stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"},
    )


@dataclass(frozen=True)
class Setup:
    topic: str
    dlq: str
    group: str
    fixed: Path  # the corrected configuration
    broken: Path  # mapping.session_id names a field the records lack: every record is dead-lettered


@pytest.fixture
def setup(stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str, tmp_path: Path) -> Setup:
    topic = new_topic(partitions=3)
    dead_letters = new_topic(partitions=2, suffix="dlq")
    # The workload's "unknown-schema-id" records use an id that is never registered: dead-letter
    # them at once instead of waiting decode.unknown_schema_retry_s for it.
    now = {"unknown_schema_retry_s": 0}
    fixed = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                             topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dead_letters,
                             decode=now)
    broken = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dead_letters,
                              mapping={"session_id": "noSuchField"}, decode=now)
    return Setup(topic, dead_letters, group_id, write_config(tmp_path, fixed, "fixed.yaml"),
                 write_config(tmp_path, broken, "broken.yaml"))


def test_replay_after_a_mapping_fix_delivers_every_dead_letter_once(
    setup: Setup, stack: Any, emulator: Any, tracking_id: str, aws_env: None
) -> None:
    sample = list(generate(300, 30, seed=21))
    produce(sample, stack.bootstrap, stack.registry_url, setup.topic, progress=False)

    code, summary = run_in_process(setup.broken)
    assert code == 0
    assert summary["dead_letters_by_reason"] == {"validate/InvalidEvent": 300}
    assert emulator.events(tracking_id) == []

    inspected = dlq("inspect", "--config", str(setup.fixed))
    print(inspected.stdout)
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    assert "validate" in inspected.stdout and "InvalidEvent" in inspected.stdout
    assert "sessionId: is required" in inspected.stdout
    assert f"read 300 dead letter(s) from {setup.dlq}" in inspected.stdout

    dry = dlq("replay", "--config", str(setup.fixed), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert sum("would be sent now (eventId" in line for line in dry.stdout.splitlines()) == 300
    assert emulator.events(tracking_id) == []  # a dry run sends nothing ...
    committed, _ = committed_and_end_offsets(stack.bootstrap, setup.group + ".dlq-replay", setup.dlq)
    assert all(offset < 0 for offset in committed.values())  # ... and commits nothing

    # --limit spreads over the partitions in order; the next replay continues from the commits.
    first = dlq("replay", "--config", str(setup.fixed), "--limit", "120")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "120 of 120 planned" in first.stdout
    assert len(emulator.events(tracking_id)) == 120
    replayed = dlq("replay", "--config", str(setup.fixed))
    print(replayed.stdout)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "180 of 180 planned" in replayed.stdout
    received = emulator.events(tracking_id)
    ids = [e["eventId"] for e in received]
    assert len(ids) == len(set(ids)) == 300
    # Derived ids come from the original topic/partition/offset, not the position in the DLQ.
    own = {s.value["eventId"] for s in sample if s.value.get("eventId")}
    derived = {derived_event_id(SourceRecord(r.topic, r.partition, r.offset, None, None))
               for r in read_topic(stack.bootstrap, setup.topic)}
    assert set(ids) <= own | derived
    assert len(set(ids) & derived) == 300 - len(own)

    committed, ends = committed_and_end_offsets(stack.bootstrap, setup.group + ".dlq-replay", setup.dlq)
    assert committed == ends
    again = dlq("replay", "--config", str(setup.fixed))
    assert again.returncode == 0
    assert "nothing to replay" in again.stdout
    assert len(emulator.events(tracking_id)) == 300


def test_records_that_fail_again_go_back_to_the_dlq_and_the_replay_still_ends(
    setup: Setup, stack: Any, emulator: Any, tracking_id: str, aws_env: None
) -> None:
    sample = list(generate(200, 20, seed=5, bad_ratio=0.05))
    bad = sum(s.bad_kind is not None for s in sample)
    assert bad > 0
    produce(sample, stack.bootstrap, stack.registry_url, setup.topic, progress=False)
    code, summary = run_in_process(setup.broken)
    assert code == 0 and summary["dead_letters"] == 200
    before = {(r.partition, r.offset) for r in read_topic(stack.bootstrap, setup.dlq)}

    replayed = dlq("replay", "--config", str(setup.fixed))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "200 of 200 planned" in replayed.stdout
    assert f"failed again (dead-lettered again) │ {bad:>18,}" in replayed.stdout

    assert len({e["eventId"] for e in emulator.events(tracking_id)}) == 200 - bad
    letters = read_topic(stack.bootstrap, setup.dlq)
    assert len(letters) == 200 + bad
    # Failed again: appended after the replayed range, with the new reason and still naming the
    # record's original source position (so a later replay derives the same event id).
    again = [parse_error_headers(list(r.headers.items())) for r in letters if (r.partition, r.offset) not in before]
    assert len(again) == bad
    assert all(h["pkc.source.topic"] == setup.topic for h in again)
    undecodable = sum(s.bad_kind in UNDECODABLE_KINDS for s in sample)
    stages = Counter(h["pkc.error.stage"] for h in again)
    assert stages == Counter({"decode": undecodable, "validate": bad - undecodable})

    committed, ends = committed_and_end_offsets(stack.bootstrap, setup.group + ".dlq-replay", setup.dlq)
    assert sum(ends.values()) - sum(committed.values()) == bad  # only the new dead letters are left
    inspected = dlq("inspect", "--config", str(setup.fixed))
    assert inspected.returncode == 0
    assert f"read {200 + bad} dead letter(s)" in inspected.stdout
    assert "decode" in inspected.stdout


def test_inspect_and_replay_with_kafka_python_read_what_confluent_kafka_reads(
    setup: Setup, stack: Any, emulator: Any, tracking_id: str, aws_env: None
) -> None:
    """`kafka.client: kafka-python` applies to `dlq inspect` and `dlq replay` as it does to `run`:
    the same dead letters are read, previewed and replayed, with the same event ids."""
    sample = list(generate(100, 10, seed=8))
    produce(sample, stack.bootstrap, stack.registry_url, setup.topic, progress=False)
    code, summary = run_in_process(setup.broken)
    assert code == 0 and summary["dead_letters"] == 100
    kafka_python = setup.fixed.with_name("kafka-python.yaml")
    config = yaml.safe_load(setup.fixed.read_text())
    config["kafka"]["client"] = "kafka-python"
    kafka_python.write_text(yaml.safe_dump(config))

    inspected = {path: dlq("inspect", "--config", str(path)) for path in (setup.fixed, kafka_python)}
    assert inspected[setup.fixed].returncode == 0, inspected[setup.fixed].stdout
    assert f"read 100 dead letter(s) from {setup.dlq}" in inspected[setup.fixed].stdout
    assert inspected[kafka_python].stdout == inspected[setup.fixed].stdout
    dry = {path: dlq("replay", "--config", str(path), "--dry-run") for path in (setup.fixed, kafka_python)}
    assert sum("would be sent now (eventId" in line for line in dry[setup.fixed].stdout.splitlines()) == 100
    assert dry[kafka_python].stdout == dry[setup.fixed].stdout

    replayed = dlq("replay", "--config", str(kafka_python))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "100 of 100 planned" in replayed.stdout
    ids = [e["eventId"] for e in emulator.events(tracking_id)]
    own = {s.value["eventId"] for s in sample if s.value.get("eventId")}
    derived = {derived_event_id(SourceRecord(r.topic, r.partition, r.offset, None, None))
               for r in read_topic(stack.bootstrap, setup.topic)}
    assert len(ids) == len(set(ids)) == 100 and set(ids) <= own | derived
    committed, ends = committed_and_end_offsets(stack.bootstrap, setup.group + ".dlq-replay", setup.dlq)
    assert committed == ends

    # It is kafka-python that reads: a property only librdkafka knows is refused, naming it.
    config["kafka"]["config"] = {"queued.max.messages.kbytes": 16384}
    kafka_python.write_text(yaml.safe_dump(config))
    refused = dlq("inspect", "--config", str(kafka_python))
    assert refused.returncode == 2
    assert "the kafka-python client cannot use: queued.max.messages.kbytes" in refused.stdout


def test_replay_without_a_dlq_topic_is_a_usage_error(setup: Setup, tmp_path: Path) -> None:
    path = tmp_path / "nodlq.yaml"
    path.write_text(setup.fixed.read_text().replace(f"topic: {setup.dlq}", "topic: null"))
    result = dlq("replay", "--config", str(path))
    assert result.returncode == 2
    assert "no dead-letter topic" in result.stdout
