"""Translating the librdkafka-style `kafka.config` into kafka-python keyword arguments."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from connector.config import ConfigError
from connector.kafka.kafka_python_config import (
    PROPERTIES,
    KafkaPythonConfigError,
    consumer_config,
    producer_config,
    translate_config,
)

SECURE = {
    "security.protocol": "sasl_ssl",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "connector",
    "sasl.password": "s3cret",
    "ssl.ca.location": "/etc/kafka/ca.pem",
    "ssl.certificate.location": "/etc/kafka/client.pem",
    "ssl.key.location": "/etc/kafka/client.key",
    "ssl.key.password": "keypass",
    "ssl.endpoint.identification.algorithm": "https",
}


def test_security_properties_map_to_kafka_python_names() -> None:
    assert translate_config(SECURE) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "connector",
        "sasl_plain_password": "s3cret",
        "ssl_cafile": "/etc/kafka/ca.pem",
        "ssl_certfile": "/etc/kafka/client.pem",
        "ssl_keyfile": "/etc/kafka/client.key",
        "ssl_password": "keypass",
        "ssl_check_hostname": True,
    }


def test_numbers_and_booleans_accept_strings_as_yaml_and_env_vars_give_them() -> None:
    got = translate_config({"session.timeout.ms": "10000", "max.poll.interval.ms": 600000,
                            "fetch.wait.max.ms": 250, "fetch.min.bytes": "1", "fetch.max.bytes": 1048576,
                            "max.partition.fetch.bytes": "262144", "check.crcs": "false", "client.id": "pkc",
                            "heartbeat.interval.ms": 1000.0, "ssl.endpoint.identification.algorithm": "none"})
    assert got == {"session_timeout_ms": 10000, "max_poll_interval_ms": 600000, "fetch_max_wait_ms": 250,
                   "fetch_min_bytes": 1, "fetch_max_bytes": 1048576, "max_partition_fetch_bytes": 262144,
                   "check_crcs": False, "client_id": "pkc", "heartbeat_interval_ms": 1000,
                   "ssl_check_hostname": False}


def test_an_untranslatable_property_is_an_error_naming_it() -> None:
    with pytest.raises(KafkaPythonConfigError) as info:
        translate_config({**SECURE, "queued.max.messages.kbytes": 1024, "statistics.interval.ms": 5000})
    message = str(info.value)
    assert "queued.max.messages.kbytes, statistics.interval.ms" in message
    assert "kafka.client: confluent" in message
    assert "s3cret" not in message  # values of other properties never leak into the error
    # It is a ConfigError (the CLI reports it and exits 2) and a ValueError.
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


def test_a_value_that_cannot_be_converted_is_an_error_naming_the_property() -> None:
    with pytest.raises(KafkaPythonConfigError, match=r"session\.timeout\.ms: expected an integer, got 'soon'"):
        translate_config({"session.timeout.ms": "soon"})
    with pytest.raises(KafkaPythonConfigError, match=r"ssl\.endpoint\.identification\.algorithm"):
        translate_config({"ssl.endpoint.identification.algorithm": "maybe"})


def test_assignment_strategies_map_to_assignor_classes() -> None:
    assert translate_config({"partition.assignment.strategy": "cooperative-sticky"}) == {
        "partition_assignment_strategy": [CooperativeStickyAssignor]}
    assert translate_config({"partition.assignment.strategy": "range, roundrobin"}) == {
        "partition_assignment_strategy": [RangePartitionAssignor, RoundRobinPartitionAssignor]}
    with pytest.raises(KafkaPythonConfigError, match="cannot be combined"):
        translate_config({"partition.assignment.strategy": "cooperative-sticky,range"})
    with pytest.raises(KafkaPythonConfigError, match=r"partition\.assignment\.strategy"):
        translate_config({"partition.assignment.strategy": "sticky-ish"})


def test_consumer_config_fixes_what_the_delivery_guarantee_depends_on() -> None:
    config = consumer_config("b1:9092, b2:9092", "group", "earliest",
                             {"enable.auto.commit": True, "group.id": "other", "bootstrap.servers": "x:1",
                              "auto.offset.reset": "latest", "session.timeout.ms": 10000})
    assert config["enable_auto_commit"] is False
    assert config["group_id"] == "group"
    assert config["auto_offset_reset"] == "earliest"
    assert config["bootstrap_servers"] == ["b1:9092", "b2:9092"]
    assert config["session_timeout_ms"] == 10000
    assert config["partition_assignment_strategy"] == [CooperativeStickyAssignor]  # the default


def test_the_dead_letter_producer_gets_only_what_a_producer_understands() -> None:
    config = producer_config("b:9092", {**SECURE, "session.timeout.ms": 10000, "group.instance.id": "x",
                                        "fetch.min.bytes": 1, "client.id": "pkc"})
    assert "session_timeout_ms" not in config and "group_instance_id" not in config
    assert config["sasl_plain_password"] == "s3cret" and config["client_id"] == "pkc"
    assert config["acks"] == "all" and config["enable_idempotence"] is True


@pytest.mark.parametrize("role", ["consumer", "producer"])
def test_every_translated_keyword_is_one_kafka_python_accepts(role: str) -> None:
    accepted = (KafkaConsumer if role == "consumer" else KafkaProducer).DEFAULT_CONFIG
    for name, prop in PROPERTIES.items():
        if role == "producer" and prop.consumer_only:
            continue
        assert prop.keyword in accepted, f"{name} -> {prop.keyword} is not a {role} argument"


def test_auth_keywords_override_translated_properties() -> None:
    token_provider: Any = object()
    config = consumer_config("b:9092", "g", "earliest", {"security.protocol": "PLAINTEXT"},
                             {"security_protocol": "SASL_SSL", "sasl_oauth_token_provider": token_provider})
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_oauth_token_provider"] is token_provider
