"""What the CLI prints when it is handed secrets, hostile settings and signals (issue 13, items 10,
11, 13): no secret in any output, no flood of repeated lines, and a one-line reason with a
specific exit code instead of a traceback.

Every test runs the real console script in a subprocess against the real local stack; "unreachable"
is a closed port on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import committed_and_end_offsets, connector_config, produce_raw, read_topic, write_config
from fixtures.workers import ASSIGNED, WorkerProcess, worker_processes

from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

EXE = str(Path(sys.executable).with_name("personalize-connector"))


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200", **(env or {})})


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound once by the OS, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_one_line_reason(result: subprocess.CompletedProcess[str], code: int, *expected: str) -> str:
    """The exit code, no traceback, and the last line of stderr naming what is wrong."""
    output = result.stdout + result.stderr
    assert result.returncode == code, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    for text in expected:
        assert text in last, last
    return last


@pytest.fixture
def config(stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str) -> dict[str, Any]:
    return connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                            topics=[new_topic(partitions=1)], group_id=group_id, tracking_id=tracking_id,
                            dlq_topic=new_topic(partitions=1, suffix="dlq"))


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Any]:
    with worker_processes(tmp_path / "workers") as start:
        yield start


# ---- item 10: secrets ------------------------------------------------------------------------------


def test_run_never_prints_secrets_planted_in_odd_kafka_keys_or_the_registry_url(
    config: dict[str, Any], stack: Any, aws_env: None, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex[:8]
    # Properties a deny-list of "password|secret|token" misses; librdkafka accepts both with PLAINTEXT.
    config["kafka"]["config"].update({"sasl.oauthbearer.config": f"principal=svc extension_k=oauth-{marker}",
                                      "ssl.key.pem": f"-----BEGIN PRIVATE KEY-----pem-{marker}",
                                      "ssl.key.password": f"keypw-{marker}"})
    config["schema_registry"]["url"] = stack.registry_url.replace("http://", f"http://reader:url-{marker}@")
    produce(generate(20, 4, seed=1), stack.bootstrap, stack.registry_url, config["kafka"]["topics"][0],
            progress=False)
    result = cli("run", "--config", str(write_config(tmp_path, config)), "--exit-when-idle", "2",
                 "--log-level", "DEBUG", "--log-format", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    start_line = next(line for line in result.stderr.splitlines() if "starting with" in line)
    shown = json.loads(json.loads(start_line)["message"].removeprefix("starting with "))
    kafka_config = shown["kafka"]["config"]
    assert kafka_config["sasl.oauthbearer.config"] == kafka_config["ssl.key.pem"] == "**********"
    assert shown["kafka"]["config"]["session.timeout.ms"] == 10000  # safe properties stay readable
    assert shown["schema_registry"]["url"].startswith("http://***@")
    assert marker not in result.stdout + result.stderr


def test_a_misspelled_secret_key_is_masked_and_named_in_the_error(
    config: dict[str, Any], aws_env: None, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex[:8]
    config["kafka"]["config"]["sasl.pasword"] = f"typo-{marker}"
    result = cli("run", "--config", str(write_config(tmp_path, config)), "--log-format", "text")
    assert_one_line_reason(result, 2, "kafka.config", '"sasl.pasword"')
    assert "**********" in result.stderr  # the start-up line shows the key, masked
    assert marker not in result.stdout + result.stderr


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_debug_logs_over_sasl_never_show_the_password(
    config: dict[str, Any], stack: Any, aws_env: None, tmp_path: Path, client: str
) -> None:
    """kafka-python's DEBUG lines dump the SASL PLAIN request bytes, password included."""
    password = stack.info.get("KAFKA_SASL_PASSWORD") or os.environ.get("KAFKA_SASL_PASSWORD", "")
    listener = stack.info.get("KAFKA_SASL_SSL_BOOTSTRAP") or os.environ.get("KAFKA_SASL_SSL_BOOTSTRAP", "")
    assert password and listener, "the running stack predates the secure listeners"
    config["kafka"].update(client=client, bootstrap_servers=listener)
    config["kafka"]["config"].update({
        "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.password": password,
        "sasl.username": stack.info.get("KAFKA_SASL_USERNAME") or os.environ["KAFKA_SASL_USERNAME"],
        "ssl.ca.location": stack.info.get("KAFKA_TLS_CA") or os.environ["KAFKA_TLS_CA"]})
    result = cli("run", "--config", str(write_config(tmp_path, config)), "--exit-when-idle", "2",
                 "--log-level", "DEBUG", "--log-format", "text")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SASL" in result.stderr or "sasl" in result.stderr  # the DEBUG lines about it are there
    assert password not in result.stdout + result.stderr


def test_check_masks_registry_url_credentials_in_pass_and_fail_rows(
    config: dict[str, Any], stack: Any, aws_env: None, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex[:8]
    config["schema_registry"]["url"] = stack.registry_url.replace("http://", f"http://reader:ok-{marker}@")
    config["kafka"]["config"].update({"sasl.oauthbearer.config": f"principal=svc extension_k=oauth-{marker}",
                                      "ssl.key.pem": f"pem-{marker}"})
    passing = cli("check", "--config", str(write_config(tmp_path, config)))
    assert "PASS" in next(line for line in passing.stdout.splitlines() if "│ schema_registry " in line)
    config["schema_registry"]["url"] = f"http://reader:down-{marker}@127.0.0.1:{closed_port()}/apis/ccompat/v7"
    failing = cli("check", "--config", str(write_config(tmp_path, config)), "--timeout", "3")
    assert failing.returncode == 1
    [row] = [line for line in failing.stdout.splitlines() if line.startswith("FAIL schema_registry")]
    assert "http://***@127.0.0.1:" in row
    for result in (passing, failing):
        assert marker not in result.stdout + result.stderr, result.stdout


# ---- item 11: floods -------------------------------------------------------------------------------


def test_an_unreachable_bootstrap_does_not_flood_the_log(
    config: dict[str, Any], aws_env: None, tmp_path: Path
) -> None:
    """librdkafka retries the closed port every ~50 ms during the 10 s preflight: 208 lines before."""
    config["kafka"]["bootstrap_servers"] = f"127.0.0.1:{closed_port()}"
    result = cli("run", "--config", str(write_config(tmp_path, config)), "--log-format", "text")
    lines = result.stderr.strip().splitlines()
    print(f"unreachable bootstrap: {len(lines)} lines on stderr")
    assert_one_line_reason(result, 1, "cannot start: cannot use the Kafka cluster: the brokers are not reachable")
    refused = [line for line in lines if "Connection refused" in line and "librdkafka" in line]
    assert 1 <= len(refused) <= 12, "\n".join(lines[:40])
    assert any("more like this in the last 10 s" in line for line in refused), "\n".join(lines[-10:])
    assert len(lines) <= 20


def test_a_run_of_dead_letters_logs_a_few_lines_and_a_count(
    config: dict[str, Any], stack: Any, aws_env: None, tmp_path: Path
) -> None:
    """Our own warnings coalesce too: 300 undecodable records, one warning each before."""
    topic, dlq = config["kafka"]["topics"][0], config["dlq"]["topic"]
    produce_raw(stack.bootstrap, topic, [(b"k", b"\x01not-confluent-framing") for _ in range(300)])
    result = cli("run", "--config", str(write_config(tmp_path, config)), "--exit-when-idle", "2",
                 "--log-format", "text")
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "dead-lettering" in line]
    print(f"300 dead letters: {len(warnings)} warning lines")
    assert len(warnings) == 6, "\n".join(warnings)
    assert "… and 295 more like this in the last 10 s: dead-lettering " in warnings[-1]
    assert len(read_topic(stack.bootstrap, dlq)) == 300  # every one dead-lettered, only the log is shorter


# ---- item 13: clear errors -------------------------------------------------------------------------


def test_a_metrics_port_in_use_is_named(config: dict[str, Any], aws_env: None, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config["observability"]["metrics_port"] = port
        result = cli("run", "--config", str(write_config(tmp_path, config)), "--log-format", "text")
    assert_one_line_reason(result, 1, f"observability.metrics_port {port}", "in use")


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
@pytest.mark.parametrize(("key", "value"), [("fetch.wait.max.ms", "abc"), ("no.such.property", "1")])
def test_an_invalid_librdkafka_property_is_named(
    config: dict[str, Any], aws_env: None, tmp_path: Path, client: str, key: str, value: str
) -> None:
    config["kafka"]["client"] = client
    config["kafka"]["config"][key] = value
    result = cli("run", "--config", str(write_config(tmp_path, config)), "--log-format", "text")
    assert_one_line_reason(result, 2, "invalid configuration", "kafka.config", key)


@pytest.mark.parametrize(("command", "extra"), [
    (["produce"], ["--events", "1"]), (["dlq", "inspect"], []), (["dlq", "replay"], ["--dry-run"]),
])
def test_every_command_names_a_librdkafka_property_it_refuses(
    config: dict[str, Any], aws_env: None, tmp_path: Path, command: list[str], extra: list[str]
) -> None:
    config["kafka"]["config"]["fetch.wait.max.ms"] = "abc"
    result = cli(*command, "--config", str(write_config(tmp_path, config)), *extra)
    assert_one_line_reason(result, 2, f"personalize-connector {' '.join(command)}: invalid configuration",
                           'kafka.config: librdkafka refuses it: Invalid value for configuration property '
                           '"fetch.wait.max.ms"')


def test_check_names_a_librdkafka_property_it_refuses(
    config: dict[str, Any], aws_env: None, tmp_path: Path
) -> None:
    config["kafka"]["config"]["no.such.property"] = "1"
    result = cli("check", "--config", str(write_config(tmp_path, config)), "--timeout", "3")
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stdout
    [row] = [line for line in result.stdout.splitlines() if line.startswith("FAIL kafka.cluster")]
    assert 'No such configuration property: "no.such.property"' in row, row


@pytest.mark.parametrize("command", ["run", "check"])
def test_invalid_json_in_a_pkc_variable_is_named(
    config: dict[str, Any], aws_env: None, tmp_path: Path, command: str
) -> None:
    result = cli(command, "--config", str(write_config(tmp_path, config)),
                 env={"PKC_KAFKA__CONFIG": '{"sasl.password": hunter2'})
    stream = result.stderr if command == "run" else result.stdout
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr, result.stderr[-2000:]
    last = stream.strip().splitlines()[-1]
    assert "environment variable PKC_KAFKA__CONFIG (sets kafka.config) is not valid JSON" in last, last
    assert "hunter2" not in result.stdout + result.stderr


def test_a_missing_registry_url_is_a_configuration_error(
    config: dict[str, Any], aws_env: None, tmp_path: Path
) -> None:
    config["schema_registry"] = {}
    result = cli("run", "--config", str(write_config(tmp_path, config)), "--log-format", "text")
    assert_one_line_reason(result, 2, "schema_registry.url", "decode.format is 'confluent'")


def test_sigint_during_start_up_exits_130_quietly(
    config: dict[str, Any], aws_env: None, tmp_path: Path, workers: Any
) -> None:
    # A closed port keeps the worker in its 10 s broker preflight, inside librdkafka.
    config["kafka"]["bootstrap_servers"] = f"127.0.0.1:{closed_port()}"
    worker: WorkerProcess = workers(write_config(tmp_path, config), "interrupted")
    assert worker.wait_for("starting with", timeout=60), worker.tail()
    worker.kill(signal.SIGINT)
    assert worker.wait(timeout=8) == 130, worker.tail()  # not after the preflight's 10 s
    assert "Traceback" not in worker.log(), worker.tail()
    assert worker.log().strip().splitlines()[-1] == (
        "personalize-connector: SIGINT during start-up; exiting (nothing was consumed)")


def test_sighup_drains_and_commits_like_sigterm(
    config: dict[str, Any], stack: Any, group_id: str, aws_env: None, tmp_path: Path, workers: Any
) -> None:
    topic = config["kafka"]["topics"][0]
    produce(generate(50, 5, seed=2), stack.bootstrap, stack.registry_url, topic, progress=False)
    worker: WorkerProcess = workers(write_config(tmp_path, config), "hup")
    assert worker.wait_for(ASSIGNED, timeout=60), worker.tail()
    deadline = time.monotonic() + 60
    while committed_and_end_offsets(stack.bootstrap, group_id, topic)[0] != {0: 50}:
        assert time.monotonic() < deadline and worker.alive(), worker.tail()
        time.sleep(0.5)
    worker.kill(signal.SIGHUP)
    assert worker.wait(timeout=60) == 0, worker.tail()
    assert "received SIGHUP; draining" in worker.log()
    assert "summary {" in worker.log()


@pytest.mark.parametrize(("case", "expected"), [
    ("wrong password", "SASL authentication failed"),
    ("untrusted certificate", "the broker's certificate is not trusted"),
    ("no client certificate", "refused our TLS client certificate"),
])
def test_check_says_which_credential_or_certificate_is_wrong(
    config: dict[str, Any], stack: Any, aws_env: None, tmp_path: Path, case: str, expected: str
) -> None:
    info = {key: stack.info.get(key) or os.environ.get(key, "") for key in (
        "KAFKA_SASL_SSL_BOOTSTRAP", "KAFKA_SSL_BOOTSTRAP", "KAFKA_SASL_USERNAME", "KAFKA_TLS_CA",
        "KAFKA_TLS_UNTRUSTED_CA")}
    assert all(info.values()), f"the running stack predates the secure listeners: {info}"
    sasl = {"security.protocol": "SASL_SSL", "sasl.username": info["KAFKA_SASL_USERNAME"],
            "ssl.ca.location": info["KAFKA_TLS_CA"]}
    if case == "wrong password":
        bootstrap = info["KAFKA_SASL_SSL_BOOTSTRAP"]
        security = {**sasl, "sasl.mechanism": "SCRAM-SHA-512", "sasl.password": "nope-wrong"}
    elif case == "untrusted certificate":
        bootstrap = info["KAFKA_SASL_SSL_BOOTSTRAP"]
        security = {**sasl, "sasl.mechanism": "PLAIN", "sasl.password": "x",
                    "ssl.ca.location": info["KAFKA_TLS_UNTRUSTED_CA"]}
    else:
        bootstrap = info["KAFKA_SSL_BOOTSTRAP"]
        security = {"security.protocol": "SSL", "ssl.ca.location": info["KAFKA_TLS_CA"]}
    config["kafka"]["bootstrap_servers"] = bootstrap
    config["kafka"]["config"].update(security)
    result = cli("check", "--config", str(write_config(tmp_path, config)), "--timeout", "5")
    assert result.returncode == 1, result.stdout
    [row] = [line for line in result.stdout.splitlines() if line.startswith("FAIL kafka.cluster")]
    assert expected in row, row
    assert "nope-wrong" not in result.stdout + result.stderr


@pytest.mark.parametrize(("command", "extra"), [
    (["run"], []), (["check"], []), (["produce"], ["--events", "1"]), (["dlq", "inspect"], []),
])
def test_no_third_party_deprecation_warnings_on_stderr(
    config: dict[str, Any], aws_env: None, tmp_path: Path, command: list[str], extra: list[str]
) -> None:
    config["batching"]["max_events_per_call"] = 11  # exits early (2), after the imports that warned
    result = cli(*command, "--config", str(write_config(tmp_path, config)), *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
