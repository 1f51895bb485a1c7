"""The one place Kafka clients are made: for the worker (`run`) and for every tool.

`KafkaClients.from_settings(settings)` reads the `kafka` section once: `kafka.client` picks the
library (confluent-kafka or kafka-python) and `kafka.msk_iam_region` adds the MSK IAM token
callback to every client it builds, so `check`, `dlq inspect`, `dlq replay` and `produce` reach
the cluster exactly as `run` does. The `*_config` methods return what a client is built from
(they sign an MSK IAM token once, and raise KafkaAuthError when that cannot work); the other
methods build the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from connector.config import KafkaConfig, Settings
from connector.dlq import DeadLetterFormat, DeadLetterWriter
from connector.kafka import confluent, kafka_python, kafka_python_config
from connector.kafka.auth import confluent_auth_config
from connector.kafka.base import ClusterAdmin, Source, TopicReader

if TYPE_CHECKING:
    from confluent_kafka import Producer

# What an admin client of kafka-python accepts of the translated `kafka.config`.
_KAFKA_PYTHON_ADMIN_KEYS = frozenset({
    "client_id", "security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
    "sasl_kerberos_service_name", "sasl_oauth_token_provider", "ssl_cafile", "ssl_certfile", "ssl_keyfile",
    "ssl_password", "ssl_crlfile", "ssl_check_hostname", "client_dns_lookup", "request_timeout_ms",
    "retry_backoff_ms", "reconnect_backoff_ms", "reconnect_backoff_max_ms", "metadata_max_age_ms",
    "connections_max_idle_ms", "receive_buffer_bytes", "send_buffer_bytes", "bootstrap_servers",
})


class KafkaClients:
    def __init__(self, kafka: KafkaConfig) -> None:
        self.kafka = kafka
        self._auth: dict[str, Any] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaClients:
        return cls(settings.kafka)

    @property
    def uses_kafka_python(self) -> bool:
        return self.kafka.client == "kafka-python"

    def _authentication(self) -> dict[str, Any]:
        """The MSK IAM properties of the configured client, signed once (KafkaAuthError if not possible)."""
        if self._auth is None:
            region = self.kafka.msk_iam_region
            self._auth = (kafka_python_config.auth_config(region) if self.uses_kafka_python
                          else confluent_auth_config(region))
        return self._auth

    def _librdkafka_properties(self) -> dict[str, Any]:
        return {**self.kafka.config, **self._authentication()}

    # ------------------------------------------------------------------ configurations

    def consumer_config(self, group_id: str | None = None, auto_offset_reset: str | None = None) -> dict[str, Any]:
        """The worker's consumer (default: the configured group and offset reset)."""
        k = self.kafka
        group, reset = group_id or k.group_id, auto_offset_reset or k.auto_offset_reset
        if self.uses_kafka_python:
            # kafka.config stays librdkafka-style; untranslatable properties raise a ConfigError naming them.
            return kafka_python_config.consumer_config(k.bootstrap_servers, group, reset, k.config,
                                                       self._authentication())
        return confluent.consumer_config(k.bootstrap_servers, group, reset, self._librdkafka_properties())

    def dead_letter_config(self) -> dict[str, Any]:
        """The dead-letter producer (idempotent, acks=all)."""
        k = self.kafka
        if self.uses_kafka_python:
            return kafka_python_config.producer_config(k.bootstrap_servers, k.config, self._authentication())
        return confluent.dead_letter_producer_config(k.bootstrap_servers, self._librdkafka_properties())

    def admin_config(self, timeout_s: float) -> dict[str, Any]:
        """`check`'s admin client; `timeout_s` bounds each request."""
        k = self.kafka
        if self.uses_kafka_python:
            translated = kafka_python_config.producer_config(k.bootstrap_servers, k.config, self._authentication())
            admin = {key: v for key, v in translated.items() if key in _KAFKA_PYTHON_ADMIN_KEYS}
            return {**admin, "request_timeout_ms": int(timeout_s * 1000),
                    "bootstrap_timeout_ms": int(timeout_s * 1000)}
        return {**confluent.producer_properties(self._librdkafka_properties()),
                "bootstrap.servers": k.bootstrap_servers, "socket.timeout.ms": int(timeout_s * 1000)}

    def reader_config(self, group_id: str) -> dict[str, Any]:
        """A tool's reader of a topic (from the log start when `group_id` has committed nothing)."""
        return self.consumer_config(group_id, "earliest")

    def producer_config(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """`produce`'s librdkafka producer: `defaults` under `kafka.config`, then MSK IAM.

        `produce` writes with confluent-kafka whatever `kafka.client` says (it is a load generator
        tuned with librdkafka properties); `kafka.msk_iam_region` applies all the same."""
        region = self.kafka.msk_iam_region
        return {**defaults, **self.kafka.config, **confluent_auth_config(region),
                "bootstrap.servers": self.kafka.bootstrap_servers}

    # ------------------------------------------------------------------ clients

    def source(self) -> Source:
        """The worker's consumer, with the cluster checked once (KafkaUnreachable naming the cause)."""
        source: confluent.ConfluentSource | kafka_python.KafkaPythonSource
        if self.uses_kafka_python:
            source = kafka_python.KafkaPythonSource(self.consumer_config())
        else:
            with confluent.librdkafka_config_errors():
                source = confluent.ConfluentSource(self.consumer_config())
        source.preflight()
        return source

    def dead_letter_writer(self, topic: str, fmt: DeadLetterFormat) -> DeadLetterWriter:
        if self.uses_kafka_python:
            from connector.kafka.kafka_python_writer import KafkaPythonDeadLetterWriter

            return KafkaPythonDeadLetterWriter(topic, self.dead_letter_config(), fmt=fmt)
        from connector.kafka.confluent_writer import ConfluentDeadLetterWriter

        with confluent.librdkafka_config_errors():
            return ConfluentDeadLetterWriter(topic, self.dead_letter_config(), fmt=fmt)

    def admin(self, timeout_s: float) -> ClusterAdmin:
        if self.uses_kafka_python:
            from connector.kafka.kafka_python_tools import KafkaPythonAdmin

            return KafkaPythonAdmin(self.admin_config(timeout_s))
        from connector.kafka.confluent_tools import ConfluentAdmin

        return ConfluentAdmin(self.admin_config(timeout_s))

    def reader(self, group_id: str) -> TopicReader:
        if self.uses_kafka_python:
            from connector.kafka.kafka_python_tools import KafkaPythonTopicReader

            return KafkaPythonTopicReader(self.reader_config(group_id))
        from connector.kafka.confluent_tools import ConfluentTopicReader

        return ConfluentTopicReader(self.reader_config(group_id))

    def producer(self, defaults: Mapping[str, Any]) -> Producer:
        from confluent_kafka import Producer

        return Producer(self.producer_config(defaults))
