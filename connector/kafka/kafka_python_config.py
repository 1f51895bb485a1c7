"""kafka-python settings: the librdkafka-style `kafka.config` (shared with the confluent client)
translated to KafkaConsumer / KafkaProducer keyword arguments, plus MSK IAM and our fixed keys.

A property that cannot be translated is an error naming it, never silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from connector.config import ConfigError

Role = Literal["consumer", "producer"]


class KafkaPythonConfigError(ConfigError, ValueError):
    """`kafka.config` has a property (or value) the kafka-python backend cannot use."""


# ------------------------------------------------------------------ config translation


def _as_str(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def _as_upper(value: Any) -> str:
    return _as_str(value).upper()


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    raise ValueError(f"expected an integer, got {value!r}")


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _hostname_check(value: Any) -> bool:
    # librdkafka: "https" verifies the broker's hostname against its certificate, "none" does not.
    text = _as_str(value).strip().lower()
    if text == "https":
        return True
    if text == "none":
        return False
    raise ValueError(f"expected 'https' or 'none', got {value!r}")


def _assignors(value: Any) -> list[type]:
    """librdkafka's `partition.assignment.strategy` names -> kafka-python assignor classes."""
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    known: dict[str, type] = {
        "cooperative-sticky": CooperativeStickyAssignor,
        "range": RangePartitionAssignor,
        "roundrobin": RoundRobinPartitionAssignor,
    }
    names = [n.strip().lower() for n in _as_str(value).split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise ValueError(f"expected a comma-separated list of {', '.join(known)}; got {value!r}")
    if "cooperative-sticky" in names and len(set(names)) > 1:
        # kafka-python (like the Java client) refuses to mix cooperative and eager assignors.
        raise ValueError("cooperative-sticky cannot be combined with eager assignors (range, roundrobin)")
    return [known[n] for n in dict.fromkeys(names)]


@dataclass(frozen=True, slots=True)
class _Property:
    keyword: str  # the kafka-python KafkaConsumer / KafkaProducer keyword argument
    convert: Callable[[Any], Any]
    consumer_only: bool = False


# librdkafka (and Java) property names -> kafka-python keyword arguments.
PROPERTIES: dict[str, _Property] = {
    "client.id": _Property("client_id", _as_str),
    "security.protocol": _Property("security_protocol", _as_upper),
    "sasl.mechanism": _Property("sasl_mechanism", _as_upper),
    "sasl.mechanisms": _Property("sasl_mechanism", _as_upper),  # librdkafka's older alias
    "sasl.username": _Property("sasl_plain_username", _as_str),
    "sasl.password": _Property("sasl_plain_password", _as_str),
    "sasl.kerberos.service.name": _Property("sasl_kerberos_service_name", _as_str),
    "ssl.ca.location": _Property("ssl_cafile", _as_str),
    "ssl.certificate.location": _Property("ssl_certfile", _as_str),
    "ssl.key.location": _Property("ssl_keyfile", _as_str),
    "ssl.key.password": _Property("ssl_password", _as_str),
    "ssl.crl.location": _Property("ssl_crlfile", _as_str),
    "ssl.cipher.suites": _Property("ssl_ciphers", _as_str),
    "ssl.endpoint.identification.algorithm": _Property("ssl_check_hostname", _hostname_check),
    "client.dns.lookup": _Property("client_dns_lookup", _as_str),
    "request.timeout.ms": _Property("request_timeout_ms", _as_int),
    "socket.timeout.ms": _Property("request_timeout_ms", _as_int),  # librdkafka's name for it
    "retry.backoff.ms": _Property("retry_backoff_ms", _as_int),
    "reconnect.backoff.ms": _Property("reconnect_backoff_ms", _as_int),
    "reconnect.backoff.max.ms": _Property("reconnect_backoff_max_ms", _as_int),
    "metadata.max.age.ms": _Property("metadata_max_age_ms", _as_int),
    "connections.max.idle.ms": _Property("connections_max_idle_ms", _as_int),
    "socket.receive.buffer.bytes": _Property("receive_buffer_bytes", _as_int),
    "socket.send.buffer.bytes": _Property("send_buffer_bytes", _as_int),
    "allow.auto.create.topics": _Property("allow_auto_create_topics", _as_bool),
    # consumer only: not handed to the dead-letter producer
    "session.timeout.ms": _Property("session_timeout_ms", _as_int, consumer_only=True),
    "heartbeat.interval.ms": _Property("heartbeat_interval_ms", _as_int, consumer_only=True),
    "max.poll.interval.ms": _Property("max_poll_interval_ms", _as_int, consumer_only=True),
    "group.instance.id": _Property("group_instance_id", _as_str, consumer_only=True),
    "client.rack": _Property("client_rack", _as_str, consumer_only=True),
    "partition.assignment.strategy": _Property("partition_assignment_strategy", _assignors, consumer_only=True),
    "isolation.level": _Property("isolation_level", _as_str, consumer_only=True),
    "check.crcs": _Property("check_crcs", _as_bool, consumer_only=True),
    "fetch.min.bytes": _Property("fetch_min_bytes", _as_int, consumer_only=True),
    "fetch.wait.max.ms": _Property("fetch_max_wait_ms", _as_int, consumer_only=True),
    "fetch.max.wait.ms": _Property("fetch_max_wait_ms", _as_int, consumer_only=True),  # Java's name
    "fetch.max.bytes": _Property("fetch_max_bytes", _as_int, consumer_only=True),
    "max.partition.fetch.bytes": _Property("max_partition_fetch_bytes", _as_int, consumer_only=True),
    "fetch.message.max.bytes": _Property("max_partition_fetch_bytes", _as_int, consumer_only=True),
}

# Set by the connector itself, from its own settings, whatever `kafka.config` says (as with the
# confluent backend): accepted and dropped.
OVERRIDDEN = frozenset({
    "bootstrap.servers", "group.id", "auto.offset.reset",
    "enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof",
})


def translate_config(user_config: Mapping[str, Any], role: Role = "consumer") -> dict[str, Any]:
    """librdkafka-style properties -> kafka-python keyword arguments.

    Raises KafkaPythonConfigError naming every property it cannot translate (and every value it
    cannot convert), so a setting is never silently lost when switching clients. For the
    producer, consumer-only properties are dropped.
    """
    out: dict[str, Any] = {}
    unknown: list[str] = []
    invalid: list[str] = []
    for key, value in user_config.items():
        if key in OVERRIDDEN:
            continue
        prop = PROPERTIES.get(key)
        if prop is None:
            unknown.append(key)
            continue
        if prop.consumer_only and role == "producer":
            continue
        try:
            out[prop.keyword] = prop.convert(value)
        except ValueError as exc:
            invalid.append(f"{key}: {exc}")
    problems: list[str] = []
    if unknown:
        problems.append(
            "kafka.config has properties the kafka-python client cannot use: "
            + ", ".join(sorted(unknown))
            + ". Remove them or use kafka.client: confluent. Properties kafka-python understands: "
            + ", ".join(sorted(PROPERTIES))
        )
    if invalid:
        problems.append("kafka.config has values kafka-python cannot use: " + "; ".join(invalid))
    if problems:
        raise KafkaPythonConfigError("\n".join(problems))
    return out


def _bootstrap_list(bootstrap_servers: str) -> list[str]:
    return [s.strip() for s in bootstrap_servers.split(",") if s.strip()]


def auth_config(msk_iam_region: str | None) -> dict[str, Any]:
    """kafka-python keyword arguments for `kafka.msk_iam_region` (AWS MSK IAM over SASL/OAUTHBEARER).

    The same signer as the confluent backend (connector.kafka.auth), behind kafka-python's token
    provider interface; kafka-python asks for a token on every new connection.
    """
    if msk_iam_region is None:
        return {}
    from kafka.net.sasl.oauth import AbstractTokenProvider

    from connector.kafka.auth import KafkaAuthError, msk_iam_oauth_cb

    oauth_cb = msk_iam_oauth_cb(msk_iam_region)

    class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
        def token(self) -> str:
            return oauth_cb("")[0]

    provider = MskIamTokenProvider()
    try:
        provider.token()  # fail at start-up, with the reason, rather than on every connection
    except Exception as exc:
        raise KafkaAuthError(
            f"kafka.msk_iam_region: cannot sign an MSK IAM token for {msk_iam_region}: {type(exc).__name__}: {exc}"
        ) from None
    return {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": provider}


def consumer_config(
    bootstrap_servers: str,
    group_id: str,
    auto_offset_reset: str,
    user_config: Mapping[str, Any],
    auth: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """KafkaConsumer keyword arguments: our defaults, the translated `kafka.config`, `auth`
    (from auth_config), our fixed keys."""
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

    return {
        "partition_assignment_strategy": [CooperativeStickyAssignor],
        # kafka-python's default (True) makes its metadata requests re-create a deleted topic at
        # once, with the broker's default settings (seen: a 2-partition topic back with 1).
        "allow_auto_create_topics": False,
        **translate_config(user_config, "consumer"),
        **(auth or {}),
        "bootstrap_servers": _bootstrap_list(bootstrap_servers),
        "group_id": group_id,
        "auto_offset_reset": auto_offset_reset,
        # What the delivery guarantee depends on; `kafka.config` cannot override it.
        "enable_auto_commit": False,
    }


def producer_config(
    bootstrap_servers: str, user_config: Mapping[str, Any], auth: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """KafkaProducer keyword arguments for the dead-letter producer (idempotent, acks=all)."""
    return {
        **translate_config(user_config, "producer"),
        **(auth or {}),
        "bootstrap_servers": _bootstrap_list(bootstrap_servers),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
    }
