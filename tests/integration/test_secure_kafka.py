"""The connector over the local broker's SASL_SSL (PLAIN, SCRAM-SHA-512) and mutual-TLS listeners,
and over the registry's HTTPS port with a custom CA bundle.

scripts/local-stack makes the certificates with openssl at start and the SCRAM user with Kafka's
own StorageTool; wrong passwords and untrusted certificates must stop the connector at start-up
with a message that says which.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import committed_and_end_offsets, connector_config, run_cli, run_in_process, write_config

from connector.tools.produce import produce
from connector.tools.workload import generate

pytestmark = pytest.mark.integration

KEYS = ("KAFKA_SASL_SSL_BOOTSTRAP", "KAFKA_SSL_BOOTSTRAP", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
        "KAFKA_TLS_CA", "KAFKA_TLS_CLIENT_CERT", "KAFKA_TLS_CLIENT_KEY", "KAFKA_TLS_UNTRUSTED_CA",
        "SCHEMA_REGISTRY_HTTPS_URL")


@pytest.fixture
def secure(stack: Any) -> dict[str, str]:
    """The secure listeners of the stack (from `local-stack up`, or the environment when reused)."""
    info = {key: stack.info.get(key) or os.environ.get(key, "") for key in KEYS}
    missing = [key for key, value in info.items() if not value]
    assert not missing, (
        f"the running local stack does not report {', '.join(missing)}: it predates the secure listeners; "
        "restart it with scripts/local-stack down && scripts/local-stack up (and export its KEY=value lines)"
    )
    return info


def _sasl(secure: dict[str, str], mechanism: str, password: str | None = None, ca: str | None = None) -> dict[str, Any]:
    return {"security.protocol": "SASL_SSL", "sasl.mechanism": mechanism,
            "sasl.username": secure["KAFKA_SASL_USERNAME"],
            "sasl.password": secure["KAFKA_SASL_PASSWORD"] if password is None else password,
            "ssl.ca.location": ca or secure["KAFKA_TLS_CA"]}


def _mtls(secure: dict[str, str]) -> dict[str, Any]:
    return {"security.protocol": "SSL", "ssl.ca.location": secure["KAFKA_TLS_CA"],
            "ssl.certificate.location": secure["KAFKA_TLS_CLIENT_CERT"],
            "ssl.key.location": secure["KAFKA_TLS_CLIENT_KEY"]}


@pytest.mark.parametrize(("listener", "client"), [
    ("SASL_SSL PLAIN", "confluent"), ("SASL_SSL SCRAM-SHA-512", "confluent"), ("mutual TLS", "confluent"),
    ("SASL_SSL PLAIN", "kafka-python"), ("SASL_SSL SCRAM-SHA-512", "kafka-python"), ("mutual TLS", "kafka-python"),
])
def test_the_connector_delivers_over_secure_listeners(
    stack: Any, secure: dict[str, str], new_topic: Any, group_id: str, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path, listener: str, client: str,
) -> None:
    topic, dlq = new_topic(partitions=2), new_topic(partitions=1, suffix="dlq")
    produce(generate(300, 30, seed=4, bad_ratio=0.02), stack.bootstrap, stack.registry_url, topic, progress=False)
    if listener == "mutual TLS":
        bootstrap, security = secure["KAFKA_SSL_BOOTSTRAP"], _mtls(secure)
    else:
        bootstrap, security = secure["KAFKA_SASL_SSL_BOOTSTRAP"], _sasl(secure, listener.split()[1])
    # The workload's "unknown-schema-id" records use an id that is never registered: dead-letter
    # them at once instead of waiting decode.unknown_schema_retry_s for it.
    config = connector_config(bootstrap=bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq,
                              decode={"unknown_schema_retry_s": 0})
    config["kafka"]["client"] = client
    config["kafka"]["config"].update(security)
    code, summary = run_in_process(write_config(tmp_path, config))
    assert code == 0, summary
    # Everything was either delivered or dead-lettered (the dead letters went over the same listener).
    assert summary["events_delivered"] + summary["dead_letters"] == 300, summary
    assert summary["dead_letters"] > 0
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends


@pytest.mark.parametrize(("case", "expected"), [
    ("wrong password", "SASL authentication failed"),
    ("untrusted certificate", "the broker's certificate is not trusted"),
    ("no client certificate", "refused our TLS client certificate"),
])
def test_wrong_credentials_and_untrusted_certificates_fail_fast_saying_which(
    stack: Any, secure: dict[str, str], group_id: str, emulator: Any, tracking_id: str, aws_env: None,
    tmp_path: Path, case: str, expected: str,
) -> None:
    if case == "wrong password":
        bootstrap, security = secure["KAFKA_SASL_SSL_BOOTSTRAP"], _sasl(secure, "SCRAM-SHA-512", password="nope")
    elif case == "untrusted certificate":
        bootstrap = secure["KAFKA_SASL_SSL_BOOTSTRAP"]
        security = _sasl(secure, "PLAIN", ca=secure["KAFKA_TLS_UNTRUSTED_CA"])
    else:
        bootstrap = secure["KAFKA_SSL_BOOTSTRAP"]
        security = {"security.protocol": "SSL", "ssl.ca.location": secure["KAFKA_TLS_CA"]}
    config = connector_config(bootstrap=bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=["never-read"], group_id=group_id, tracking_id=tracking_id)
    config["kafka"]["config"].update(security)
    result = run_cli(write_config(tmp_path, config), "--exit-when-idle", "1", timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("personalize-connector: cannot start: cannot use the Kafka cluster:"), last
    assert expected in last, last
    assert "nope" not in result.stderr  # the wrong password itself is never printed


@pytest.mark.parametrize("ca", ["local CA", "untrusted CA"])
def test_the_registry_over_https_with_a_custom_ca_bundle(
    stack: Any, secure: dict[str, str], new_topic: Any, group_id: str, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path, ca: str,
) -> None:
    topic, dlq = new_topic(partitions=1), new_topic(partitions=1, suffix="dlq")
    produce(generate(100, 10, seed=6), stack.bootstrap, stack.registry_url, topic, progress=False)
    bundle = secure["KAFKA_TLS_CA"] if ca == "local CA" else secure["KAFKA_TLS_UNTRUSTED_CA"]
    config = connector_config(bootstrap=stack.bootstrap, registry_url=secure["SCHEMA_REGISTRY_HTTPS_URL"],
                              emulator_url=emulator.url, topics=[topic], group_id=group_id,
                              tracking_id=tracking_id, dlq_topic=dlq)
    config["schema_registry"]["ca_location"] = bundle
    path = write_config(tmp_path, config)
    if ca == "local CA":
        code, summary = run_in_process(path, idle_s=3)
        assert code == 0, summary
        assert summary["events_delivered"] == 100
        return
    # An untrusted registry is an outage, not bad records: nothing is sent, nothing dead-lettered,
    # nothing committed (the partition waits and retries), and a batch run does not call itself idle
    # while its partition is held behind its end: it is stopped from outside here.
    from connector.app import build_worker
    from connector.config import load_settings

    worker = build_worker(load_settings(path))
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(worker.run(exit_when_idle_s=1)), daemon=True)
    runner.start()
    deadline = time.monotonic() + 60
    while not worker.assigned and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(8)  # several decode retries (5 s backoff) and idle windows of 1 s
    still_running = runner.is_alive()
    worker.request_stop()
    runner.join(60)
    summary = worker.metrics.summary()
    assert still_running, "a worker behind its end must not exit as idle"
    assert codes == [0], summary
    assert summary["events_delivered"] == 0 and summary["dead_letters"] == 0, summary
    committed, _ = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed[0] <= 0  # at most the first record: nothing past an undelivered one
