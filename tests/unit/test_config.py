"""Settings: one YAML file, PKC_* variables on top, errors that name the key and what it allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import ConfigError, Settings, load_settings

MINIMAL = """
kafka:
  bootstrap_servers: localhost:9092
  topics: [interactions]
personalize:
  tracking_id: tracker-1
"""

REQUIRED_ENV = {
    "PKC_KAFKA__BOOTSTRAP_SERVERS": "broker:9092",
    "PKC_KAFKA__TOPICS": '["interactions"]',
    "PKC_PERSONALIZE__TRACKING_ID": "tracker-env",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), env or {})
    return str(caught.value)


def test_minimal_yaml_gets_the_documented_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL), {})
    assert s.kafka.bootstrap_servers == "localhost:9092"
    assert s.kafka.topics == ["interactions"]
    assert s.kafka.client == "confluent"
    assert s.kafka.group_id == "personalize-connector"
    assert s.kafka.auto_offset_reset == "earliest"
    assert s.decode.format == "confluent" and s.decode.reader_schema is None
    assert s.personalize.region == "us-east-1"
    assert s.batching.max_events_per_call == 10
    assert s.batching.max_buffered_bytes == 64 * 1024 * 1024
    assert s.dlq.topic is None
    assert s.shutdown.grace_period_s == 30
    assert s.observability.metrics_port == 9400
    assert s.mapping.session_id == "sessionId" and s.mapping.properties == "properties"


def test_full_yaml(tmp_path: Path) -> None:
    schema = tmp_path / "writer.avsc"
    schema.write_text("{}")
    s = load_settings(write(tmp_path, MINIMAL + f"""
decode:
  format: plain
  writer_schema: {schema}
kafka_extra_is_not_here: null
""".replace("kafka_extra_is_not_here: null\n", "") + """
batching: {max_events_per_call: 5, linger_ms: 0}
dlq: {topic: interactions-dlq}
mapping:
  session_id: session.id
  sent_at: ts
  property_fields: [numberOfRatings, stats.numberOfLikes]
"""), {})
    assert s.decode.writer_schema == schema
    assert s.batching.max_events_per_call == 5 and s.batching.linger_ms == 0
    assert s.dlq.topic == "interactions-dlq"
    assert s.mapping.session_id == "session.id"
    assert s.mapping.property_fields == ["numberOfRatings", "stats.numberOfLikes"]


def test_environment_overrides_yaml_key_by_key(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL + "batching: {linger_ms: 5}\n"), {
        "PKC_PERSONALIZE__TRACKING_ID": "from-env",
        "PKC_BATCHING__MAX_EVENTS_PER_CALL": "3",
        "NOT_OURS": "ignored",
    })
    assert s.personalize.tracking_id == "from-env"
    assert s.batching.max_events_per_call == 3
    assert s.batching.linger_ms == 5  # the YAML value of a sibling key survives
    assert s.kafka.bootstrap_servers == "localhost:9092"


def test_environment_alone_with_json_lists_and_dicts() -> None:
    s = load_settings(None, REQUIRED_ENV | {
        "PKC_KAFKA__TOPICS": '["a", "^b-.*"]',
        "PKC_KAFKA__CONFIG": '{"security.protocol": "SASL_SSL", "fetch.min.bytes": 1024}',
        "PKC_MAPPING__PROPERTY_FIELDS": '["numberOfRatings"]',
        "PKC_MAPPING__ITEM_ID": "null",
    })
    assert s.kafka.topics == ["a", "^b-.*"]
    assert s.kafka.config == {"security.protocol": "SASL_SSL", "fetch.min.bytes": 1024}
    assert s.mapping.property_fields == ["numberOfRatings"]
    assert s.mapping.item_id is None


def test_environment_variable_names_are_case_insensitive() -> None:
    s = load_settings(None, {k.lower(): v for k, v in REQUIRED_ENV.items()})
    assert s.personalize.tracking_id == "tracker-env"


@pytest.mark.parametrize(
    ("yaml_tail", "key", "allowed"),
    [
        ("batching: {max_events_per_call: 11}", "batching.max_events_per_call", "1..10"),
        ("batching: {max_events_per_call: 0}", "batching.max_events_per_call", "1..10"),
        ("batching: {linger_ms: -1}", "batching.linger_ms", "0..60000"),
        ("batching: {max_in_flight_calls: 257}", "batching.max_in_flight_calls", "1..256"),
        ("kafka_poll: null", "kafka_poll", "unknown key"),
        ("decode: {format: thrift}", "decode.format",
         "'confluent', 'plain', 'glue', 'json', 'json_schema' or 'protobuf'"),
        ("decode: {format: plain}", "decode.writer_schema", "is required when decode.format is 'plain'"),
        ("decode: {reader_schema: /nonexistent.avsc}", "decode.reader_schema", "file"),
        ("personalize: {tracking_id: ''}", "personalize.tracking_id", "1..256"),
        ("personalize: {tracking_id: t, max_requests_per_second: 0}",
         "personalize.max_requests_per_second", "> 0"),
        ("observability: {log_format: xml}", "observability.log_format", "'json' or 'text'"),
        ("observability: {metrics_port: 70000}", "observability.metrics_port", "0..65535"),
        ("mapping: {session_id: 'a..b'}", "mapping.session_id", "pattern"),
        ("mapping: {event_type: null}", "mapping.event_type_default", "is required when mapping.event_type"),
    ],
)
def test_each_invalid_value_names_its_key_and_what_is_allowed(
    tmp_path: Path, yaml_tail: str, key: str, allowed: str
) -> None:
    text = MINIMAL if yaml_tail.startswith("personalize") else MINIMAL + yaml_tail + "\n"
    if yaml_tail.startswith("personalize"):
        text = MINIMAL.replace("personalize:\n  tracking_id: tracker-1\n", yaml_tail + "\n")
    message = error_for(tmp_path, text)
    line = next((ln for ln in message.splitlines() if ln.strip().startswith(key + ":")), None)
    assert line is not None, message
    assert allowed in line, message


@pytest.mark.parametrize(
    ("yaml_tail", "key"),
    [
        ("kafka: {client: rdkafka, bootstrap_servers: b, topics: [t]}", "kafka.client"),
        ("kafka: {bootstrap_servers: b, topics: []}", "kafka.topics"),
        ("kafka: {bootstrap_servers: b, topics: ['^(']}", "kafka.topics"),
        ("kafka: {bootstrap_servers: b, topics: [t], auto_offset_reset: newest}", "kafka.auto_offset_reset"),
        ("kafka: {bootstrap_servers: b, topics: [t], poll_batch_size: 100001}", "kafka.poll_batch_size"),
        ("kafka: {bootstrap_servers: b, topics: [t], typo_key: 1}", "kafka.typo_key"),
        ("kafka: {topics: [t]}", "kafka.bootstrap_servers"),
    ],
)
def test_kafka_section_errors(tmp_path: Path, yaml_tail: str, key: str) -> None:
    text = yaml_tail + "\npersonalize: {tracking_id: t}\n"
    message = error_for(tmp_path, text)
    assert f"  {key}:" in message, message


def test_unknown_key_lists_the_allowed_keys(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + "batching: {max_events: 5}\n")
    assert "batching.max_events: unknown key" in message
    assert "max_events_per_call" in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + "batching: {max_events_per_call: 99, linger_ms: -5}\n")
    assert "batching.max_events_per_call" in message and "batching.linger_ms" in message


def test_invalid_environment_value_is_named_like_a_yaml_key(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL, {"PKC_BATCHING__MAX_EVENTS_PER_CALL": "20"})
    assert "batching.max_events_per_call" in message and "1..10" in message


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml", {})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "kafka: [unclosed"), {})
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_settings(write(tmp_path, "- a list"), {})


def test_a_config_file_that_is_not_utf8_is_a_config_error_without_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kafka: {sasl.password: 'caf\xe9-secret'}\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(invalid byte at position 27\)") as caught:
        load_settings(path, {})
    assert "secret" not in str(caught.value)


def test_secrets_never_print(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL), REQUIRED_ENV | {
        "PKC_SCHEMA_REGISTRY__BASIC_AUTH_USER": "alice",
        "PKC_SCHEMA_REGISTRY__BASIC_AUTH_PASSWORD": "hunter2-password",
        "PKC_SCHEMA_REGISTRY__BEARER_TOKEN": "hunter2-token",
        "PKC_KAFKA__CONFIG": '{"sasl.password": "hunter2-sasl", "sasl.username": "bob"}',
    })
    assert s.schema_registry.basic_auth_password is not None
    assert s.schema_registry.basic_auth_password.get_secret_value() == "hunter2-password"
    assert s.kafka.config["sasl.password"] == "hunter2-sasl"  # the client still gets the real value
    for text in (repr(s), str(s), str(s.redacted()), repr(s.kafka), str(s.schema_registry)):
        assert "hunter2" not in text
    assert s.redacted()["schema_registry"]["basic_auth_user"] == "alice"
    assert s.redacted()["kafka"]["config"]["sasl.username"] == "bob"


def test_secret_values_do_not_appear_in_errors(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + "schema_registry: {bearer_token: [hunter2]}\n")
    assert "schema_registry.bearer_token" in message and "hunter2" not in message


def test_settings_are_immutable(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL), {})
    with pytest.raises(Exception):  # noqa: B017  pydantic's ValidationError for frozen models
        s.batching.linger_ms = 5  # type: ignore[misc]
    assert isinstance(s, Settings)


def test_kafka_secrets_come_from_env_and_merge_with_the_yaml_config(tmp_path: Path) -> None:
    """The Helm chart passes SASL passwords as PKC_KAFKA__CONFIG__<property> from a Secret."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "kafka: {bootstrap_servers: b, topics: [t], config: {security.protocol: SASL_SSL, sasl.mechanism: PLAIN}}\n"
        "personalize: {tracking_id: t}\n"
    )
    env = {"PKC_KAFKA__CONFIG__sasl.username": "app", "PKC_KAFKA__CONFIG__sasl.password": 'p"w{1}'}
    settings = load_settings(path, env=env)
    assert settings.kafka.config == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                                     "sasl.username": "app", "sasl.password": 'p"w{1}'}
    assert 'p"w{1}' not in repr(settings) and 'p"w{1}' not in str(settings.redacted())


def test_dead_letter_context_headers_and_stacktrace(tmp_path: Path) -> None:
    defaults = load_settings(write(tmp_path, MINIMAL)).dlq
    assert (defaults.context_headers, defaults.include_stacktrace) == ("pkc", False)
    env = {**REQUIRED_ENV, "PKC_DLQ__CONTEXT_HEADERS": "connect", "PKC_DLQ__INCLUDE_STACKTRACE": "true"}
    s = load_settings(None, env)
    assert (s.dlq.context_headers, s.dlq.include_stacktrace) == ("connect", True)
    message = error_for(tmp_path, MINIMAL + "dlq: {context_headers: kafka-connect}")
    assert "dlq.context_headers" in message and "'pkc', 'connect' or 'both'" in message


def test_only_kafka_properties_known_to_be_safe_are_printed(tmp_path: Path) -> None:
    """An allow-list: secrets in keys no deny-list foresaw (a PEM key, OAUTHBEARER config, a typo)
    are masked too."""
    planted = {"ssl.key.pem": "hunter2-pem", "sasl.oauthbearer.config": "principal=x hunter2-oauth",
               "sasl.pasword": "hunter2-typo", "ssl.keystore.password": "hunter2-ks",
               "sasl.oauthbearer.client.secret": "hunter2-cs", "some.future.property": "hunter2-future"}
    import json

    env = {"PKC_KAFKA__CONFIG": json.dumps({**planted, "security.protocol": "SASL_SSL", "session.timeout.ms": 9000,
                                            "sasl.oauthbearer.token.endpoint.url": "https://id:hunter2-u@idp/x"})}
    s = load_settings(write(tmp_path, MINIMAL), env)
    shown = s.redacted()["kafka"]["config"]
    assert {k: shown[k] for k in planted} == dict.fromkeys(planted, "**********")
    assert shown["security.protocol"] == "SASL_SSL" and shown["session.timeout.ms"] == 9000
    assert shown["sasl.oauthbearer.token.endpoint.url"] == "https://***@idp/x"
    for text in (json.dumps(s.redacted()), repr(s), str(s.kafka)):
        assert "hunter2" not in text


def test_url_credentials_are_masked_in_every_url_of_the_dump(tmp_path: Path) -> None:
    text = MINIMAL.replace("tracking_id: tracker-1", "tracking_id: tracker-1\n  endpoint_url: http://a:hunter2@e:1")
    text += "schema_registry: {url: 'https://u:hunter2@registry/x'}\nglue: {endpoint_url: 'http://g:hunter2@g'}\n"
    dumped = str(load_settings(write(tmp_path, text), {}).redacted())
    assert "hunter2" not in dumped and dumped.count("://***@") == 3


@pytest.mark.parametrize(("name", "value", "field"), [
    ("PKC_KAFKA__CONFIG", "{bad", "kafka.config"),
    ("PKC_KAFKA__TOPICS", "[interactions", "kafka.topics"),
    ("PKC_ROUTES", "not json", "routes"),
    ("PKC_SCHEMA_REGISTRY", "{'url': 1}", "schema_registry"),
])
def test_invalid_json_in_a_variable_names_the_variable_and_not_its_value(
    tmp_path: Path, name: str, value: str, field: str
) -> None:
    message = error_for(tmp_path, MINIMAL, {name: value, "PKC_KAFKA__CONFIG__sasl.password": "{not-json-but-fine"})
    assert message.startswith(f"environment variable {name} (sets {field}) is not valid JSON: "), message
    assert value not in message and "\n" not in message
    assert "sasl.password" not in message  # a plain value, not JSON: not a suspect


def test_config_errors_mask_url_credentials(tmp_path: Path) -> None:
    message = error_for(tmp_path, MINIMAL + "observability: {log_format: 'http://u:hunter2@x'}\n")
    assert "observability.log_format" in message and "hunter2" not in message
