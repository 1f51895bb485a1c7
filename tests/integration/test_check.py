"""`personalize-connector check` against the real local stack and emulator.

The command is run as the operator runs it (the console script in a subprocess); the tests read
the one-line reasons it prints after the table ("FAIL <check>: <detail>").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import connector_config, write_config

from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration


def check(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("personalize-connector")
    return subprocess.run(
        [str(exe), "check", "--config", str(config), *args],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def lines(result: subprocess.CompletedProcess[str], prefix: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(prefix)]


@pytest.fixture
def config(stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str) -> dict[str, Any]:
    topic = new_topic(partitions=3)
    produce(generate(50, 5, seed=3), stack.bootstrap, stack.registry_url, topic, progress=False)
    return connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                            topics=[topic], group_id=group_id, tracking_id=tracking_id,
                            dlq_topic=new_topic(partitions=1, suffix="dlq"))


def test_everything_passes_on_a_working_setup(config: dict[str, Any], aws_env: None, tmp_path: Path) -> None:
    result = check(write_config(tmp_path, config))
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check passed (0 warning(s))" in result.stdout
    assert lines(result, "FAIL") == []
    topic = config["kafka"]["topics"][0]
    for name in ("kafka.cluster", f"kafka.topic {topic}", "kafka.group", "dlq.topic", "schema_registry",
                 f"schema_registry.subject {topic}-value", "aws.credentials", "personalize.put_events"):
        row = [line for line in result.stdout.splitlines() if f"│ {name} " in line]
        assert row and "PASS" in row[0], (name, result.stdout)
    assert "InvalidInputException" in result.stdout  # the dry PutEvents call was refused as intended


def test_the_dry_put_events_call_records_nothing(
    config: dict[str, Any], emulator: Any, tracking_id: str, aws_env: None, tmp_path: Path
) -> None:
    assert check(write_config(tmp_path, config)).returncode == 0
    assert emulator.events(tracking_id) == []


def test_a_missing_topic_fails_naming_it(config: dict[str, Any], aws_env: None, tmp_path: Path) -> None:
    missing = f"{config['kafka']['topics'][0]}-missing"
    config["kafka"]["topics"].append(missing)
    result = check(write_config(tmp_path, config))
    assert result.returncode == 1
    assert lines(result, "FAIL") == [
        f"FAIL kafka.topic {missing}: topic '{missing}' does not exist; create it or fix kafka.topics"
    ]


def test_a_missing_dead_letter_topic_fails_naming_it(config: dict[str, Any], aws_env: None, tmp_path: Path) -> None:
    config["dlq"]["topic"] = "no-such-dlq-topic-for-check"
    result = check(write_config(tmp_path, config))
    assert result.returncode == 1
    [failure] = lines(result, "FAIL")
    assert failure.startswith("FAIL dlq.topic: dead-letter topic 'no-such-dlq-topic-for-check' does not exist")


def test_an_unknown_tracker_fails_with_resource_not_found(
    config: dict[str, Any], start_emulator: Any, aws_env: None, tmp_path: Path
) -> None:
    strict = start_emulator("--tracking-id", "other")
    config["personalize"]["endpoint_url"] = strict.url
    result = check(write_config(tmp_path, config))
    assert result.returncode == 1
    [failure] = lines(result, "FAIL")
    assert failure.startswith("FAIL personalize.put_events: ResourceNotFoundException")
    assert config["personalize"]["tracking_id"] in failure
    assert strict.events() == []


def test_missing_credentials_fail_naming_what_to_set(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = check(write_config(tmp_path, config))
    assert result.returncode == 1
    [failure] = lines(result, "FAIL")
    assert failure.startswith("FAIL aws.credentials: no AWS credentials found")
    assert "AWS_ACCESS_KEY_ID" in failure


def test_an_unreachable_broker_fails_within_the_timeout(
    config: dict[str, Any], aws_env: None, tmp_path: Path
) -> None:
    config["kafka"]["bootstrap_servers"] = "127.0.0.1:1"
    result = check(write_config(tmp_path, config), "--timeout", "3")
    assert result.returncode == 1
    assert lines(result, "FAIL kafka.cluster: cannot reach Kafka at 127.0.0.1:1")
    assert "SKIP" in result.stdout


def test_an_invalid_configuration_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("kafka: {bootstrap_servers: x, topics: [a]}\n"
                    "personalize: {tracking_id: t}\n"
                    "batching: {max_events_per_call: 11}\n")
    result = check(path)
    assert result.returncode == 2
    assert "batching.max_events_per_call" in result.stdout
    assert "allowed: 1..10" in result.stdout



def _rows(result: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """check name -> (status, detail), read from the table (printed wide enough not to wrap)."""
    rows: dict[str, tuple[str, str]] = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 3 and cells[1] in ("PASS", "WARN", "FAIL", "SKIP"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def _commit(bootstrap: str, group_id: str, topic: str, offset: int) -> None:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def test_kafka_python_gives_the_same_answers_as_confluent_kafka(
    stack: Any, config: dict[str, Any], aws_env: None, tmp_path: Path
) -> None:
    """`kafka.client` chooses the library `check` asks the cluster with, as it does for `run`: the
    answers are the same, row by row (a missing topic, the group's committed offsets and lag)."""
    topic = config["kafka"]["topics"][0]
    _commit(stack.bootstrap, config["kafka"]["group_id"], topic, 5)
    config["kafka"]["topics"].append(f"{topic}-missing")
    answers = {}
    for client in ("confluent", "kafka-python"):
        config["kafka"]["client"] = client
        result = check(write_config(tmp_path, config), env={"COLUMNS": "1000"})
        # The Kafka rows: the registry's subject count moves while other tests register schemas.
        kafka_rows = {name: row for name, row in _rows(result).items() if name.startswith(("kafka.", "dlq."))}
        answers[client] = (result.returncode, lines(result, "FAIL"), kafka_rows)
    print(answers["confluent"])
    code, failures, rows = answers["confluent"]
    assert code == 1 and len(failures) == 1 and len(rows) == 5
    assert rows["kafka.group"][0] == "PASS" and "committed offsets for 1 partition(s), lag" in rows["kafka.group"][1]
    assert answers["kafka-python"] == answers["confluent"]


def test_an_unreachable_broker_fails_within_the_timeout_with_kafka_python(
    config: dict[str, Any], aws_env: None, tmp_path: Path
) -> None:
    config["kafka"].update(bootstrap_servers="127.0.0.1:1", client="kafka-python")
    result = check(write_config(tmp_path, config), "--timeout", "3")
    assert result.returncode == 1
    assert lines(result, "FAIL kafka.cluster: cannot reach Kafka at 127.0.0.1:1")
    assert "SKIP" in result.stdout


def test_with_kafka_python_check_refuses_what_kafka_python_cannot_use(
    config: dict[str, Any], aws_env: None, tmp_path: Path
) -> None:
    """As `run` does: a librdkafka-only property is named, not silently dropped (and `check` really
    asks with kafka-python: confluent-kafka would accept the property)."""
    config["kafka"].update(client="kafka-python", config={"queued.max.messages.kbytes": 16384})
    result = check(write_config(tmp_path, config), "--timeout", "3")
    assert result.returncode == 1
    [row] = lines(result, "FAIL kafka.cluster")
    assert "kafka.config has properties the kafka-python client cannot use: queued.max.messages.kbytes" in row
