"""One factory makes every Kafka client: `kafka.client` picks the library, `kafka.msk_iam_region`
reaches every client, whichever command builds it (run, check, dlq inspect, dlq replay, produce).

No network: the configurations are inspected as built; without AWS credentials each command stops
at the MSK IAM signature, before it would connect, which proves it went through the factory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.config import Settings, load_settings
from connector.kafka.auth import KafkaAuthError
from connector.kafka.clients import KafkaClients

CLIENTS = ("confluent", "kafka-python")
NOT_SIGNED = r"kafka.msk_iam_region: cannot sign an MSK IAM token"


def settings(tmp_path: Path, client: str, **kafka: Any) -> Settings:
    config = {
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["in"], "group_id": "g", "client": client,
                  "msk_iam_region": "eu-west-1", **kafka},
        "personalize": {"tracking_id": "t", "region": "us-east-1"},
        "schema_registry": {"url": "http://127.0.0.1:1"},  # never asked: Kafka comes first
        "dlq": {"topic": "in-dlq"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_settings(path, {})


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def carries_msk_iam(config: dict[str, Any], client: str) -> bool:
    """The client's SASL/OAUTHBEARER settings, with a callback that signs a token now."""
    if client == "kafka-python":
        token = config["sasl_oauth_token_provider"].token()
        protocol, mechanism = config["security_protocol"], config["sasl_mechanism"]
    else:
        token, _expiry = config["oauth_cb"]("")
        protocol, mechanism = config["security.protocol"], config["sasl.mechanism"]
    return bool(token) and (protocol, mechanism) == ("SASL_SSL", "OAUTHBEARER")


@pytest.mark.parametrize("client", CLIENTS)
def test_every_client_of_the_factory_carries_the_msk_iam_token_callback(
    tmp_path: Path, client: str, aws_credentials: None
) -> None:
    clients = KafkaClients.from_settings(settings(tmp_path, client))
    assert carries_msk_iam(clients.consumer_config(), client)  # run: the worker's source
    assert carries_msk_iam(clients.dead_letter_config(), client)  # run and replay: the dead-letter writer
    assert carries_msk_iam(clients.admin_config(5.0), client)  # check
    assert carries_msk_iam(clients.reader_config("g.dlq-replay"), client)  # dlq inspect, dlq replay
    # produce writes with librdkafka whatever kafka.client says; MSK IAM applies all the same.
    assert carries_msk_iam(clients.producer_config({"linger.ms": 10}), "confluent")


@pytest.mark.parametrize("client", CLIENTS)
def test_without_msk_iam_no_client_gets_sasl_settings(tmp_path: Path, client: str) -> None:
    clients = KafkaClients.from_settings(settings(tmp_path, client, msk_iam_region=None))
    built = [clients.consumer_config(), clients.dead_letter_config(), clients.admin_config(5.0),
             clients.reader_config("g"), clients.producer_config({})]
    assert not any(key in config for config in built for key in ("oauth_cb", "sasl_oauth_token_provider"))


@pytest.mark.parametrize("client", CLIENTS)
def test_the_factory_keeps_what_the_delivery_guarantee_depends_on(tmp_path: Path, client: str) -> None:
    clients = KafkaClients.from_settings(settings(tmp_path, client, msk_iam_region=None))
    consumer, reader, letters = clients.consumer_config(), clients.reader_config("g.r"), clients.dead_letter_config()
    if client == "kafka-python":
        assert consumer["enable_auto_commit"] is False and reader["enable_auto_commit"] is False
        assert (consumer["group_id"], reader["group_id"], reader["auto_offset_reset"]) == ("g", "g.r", "earliest")
        assert (letters["acks"], letters["enable_idempotence"]) == ("all", True)
    else:
        assert consumer["enable.auto.commit"] is False and reader["enable.auto.commit"] is False
        assert (consumer["group.id"], reader["group.id"], reader["auto.offset.reset"]) == ("g", "g.r", "earliest")
        assert (letters["acks"], letters["enable.idempotence"]) == ("all", True)


# ------------------------------------------------------------------ each command goes through it


@pytest.mark.parametrize("client", CLIENTS)
def test_run_builds_its_source_with_msk_iam(tmp_path: Path, client: str, no_aws_credentials: None) -> None:
    from connector.app import build_worker

    with pytest.raises(KafkaAuthError, match=NOT_SIGNED):
        build_worker(settings(tmp_path, client))


@pytest.mark.parametrize("client", CLIENTS)
def test_check_asks_the_cluster_with_msk_iam(tmp_path: Path, client: str, no_aws_credentials: None) -> None:
    from connector.tools.check import check_kafka

    [cluster, *rest] = check_kafka(settings(tmp_path, client), 1.0)
    assert (cluster.check, cluster.status) == ("kafka.cluster", "FAIL")
    assert cluster.detail.startswith("kafka.msk_iam_region: cannot sign an MSK IAM token for eu-west-1")
    assert {r.status for r in rest} == {"SKIP"}


@pytest.mark.parametrize("client", CLIENTS)
def test_dlq_inspect_reads_with_msk_iam(tmp_path: Path, client: str, no_aws_credentials: None) -> None:
    from connector.tools.replay import inspect_topic

    with pytest.raises(KafkaAuthError, match=NOT_SIGNED):
        inspect_topic(settings(tmp_path, client), "in-dlq", None)


@pytest.mark.parametrize("client", CLIENTS)
def test_dlq_replay_reads_with_msk_iam(tmp_path: Path, client: str, no_aws_credentials: None) -> None:
    from connector.tools.replay import dry_run, replay

    with pytest.raises(KafkaAuthError, match=NOT_SIGNED):
        replay(settings(tmp_path, client), "in-dlq", None)
    with pytest.raises(KafkaAuthError, match=NOT_SIGNED):
        dry_run(settings(tmp_path, client), "in-dlq", "g.dlq-replay", None, print)


@pytest.mark.parametrize("client", CLIENTS)
def test_produce_writes_with_msk_iam(tmp_path: Path, client: str, no_aws_credentials: None) -> None:
    from connector.tools.produce import produce
    from connector.tools.workload import generate

    config = settings(tmp_path, client)
    with pytest.raises(KafkaAuthError, match=NOT_SIGNED):
        produce(generate(1, 1, seed=1), "ignored:1", "mock://registry", "in", progress=False,
                clients=KafkaClients.from_settings(config))
