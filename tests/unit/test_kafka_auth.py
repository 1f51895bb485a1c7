"""MSK IAM auth: the OAUTHBEARER token is a SigV4-presigned kafka-cluster:Connect URL, made locally."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlparse

import pytest

from connector.kafka.auth import KafkaAuthError, confluent_auth_config


def test_no_msk_region_adds_nothing() -> None:
    assert confluent_auth_config(None) == {}


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


def test_msk_iam_gives_sasl_ssl_oauthbearer_with_a_signed_token(aws_credentials: None) -> None:
    config = confluent_auth_config("eu-west-1")
    assert config["security.protocol"] == "SASL_SSL" and config["sasl.mechanism"] == "OAUTHBEARER"
    token, expiry = config["oauth_cb"]("")
    url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    query = parse_qs(url.query)
    assert url.hostname == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    assert "X-Amz-Signature" in query
    assert time.time() < expiry < time.time() + 3600


def test_without_aws_credentials_start_up_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(KafkaAuthError, match=r"kafka.msk_iam_region: cannot sign an MSK IAM token"):
        confluent_auth_config("eu-west-1")


def test_the_consumer_accepts_the_callback(aws_credentials: None) -> None:
    """librdkafka takes the callback at construction (nothing connects until poll)."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": "localhost:1", "group.id": "g", **confluent_auth_config("us-east-1")})
    consumer.close()
