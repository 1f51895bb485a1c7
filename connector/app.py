"""Builds the pipeline from the configuration and runs it (`personalize-connector run`)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from types import FrameType
from typing import Any

from connector.batcher import SessionBatcher
from connector.config import ConfigError, Settings, load_settings
from connector.decode import build_decoder
from connector.decode.base import RegistryUnavailable
from connector.dlq import ConfluentDeadLetterWriter
from connector.events import EventMapper
from connector.logs import configure_logging
from connector.observability import Metrics, ObservabilityServer
from connector.ratelimit import AdaptiveRateLimiter
from connector.sink import PutEventsSink, make_client
from connector.source.confluent import ConfluentSource, consumer_config
from connector.worker import Worker, WorkerSettings

log = logging.getLogger(__name__)


def registry_client(settings: Settings) -> Any:
    """confluent-kafka's SchemaRegistryClient (it caches schemas by id) for the configured registry."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    sr = settings.schema_registry
    if not sr.url:
        return None
    conf: dict[str, Any] = {"url": sr.url}
    if sr.basic_auth_user is not None:
        password = sr.basic_auth_password.get_secret_value() if sr.basic_auth_password else ""
        conf["basic.auth.user.info"] = f"{sr.basic_auth_user}:{password}"
    if sr.bearer_token is not None:
        conf["bearer.auth.credentials.source"] = "STATIC_TOKEN"
        conf["bearer.auth.token"] = sr.bearer_token.get_secret_value()
        conf["bearer.auth.logical.cluster"] = "-"
        conf["bearer.auth.identity.pool.id"] = "-"
    if sr.ca_location is not None:
        conf["ssl.ca.location"] = str(sr.ca_location)
    return SchemaRegistryClient(conf)


def build_worker(settings: Settings, metrics: Metrics | None = None) -> Worker:
    k, b, p = settings.kafka, settings.batching, settings.personalize
    metrics = metrics or Metrics()
    if k.client != "confluent":
        raise ConfigError(f"kafka.client: {k.client!r} is not available yet; allowed: 'confluent'")
    source = ConfluentSource(consumer_config(k.bootstrap_servers, k.group_id, k.auto_offset_reset, k.config))
    dead_letters = (
        ConfluentDeadLetterWriter(settings.dlq.topic, k.bootstrap_servers, k.config) if settings.dlq.topic else None
    )
    sink = PutEventsSink(
        make_client(p.region, p.endpoint_url, max_pool_connections=b.max_in_flight_calls),
        AdaptiveRateLimiter(p.max_requests_per_second),
        metrics=metrics,
    )
    return Worker(
        WorkerSettings(
            topics=list(k.topics),
            poll_batch_size=k.poll_batch_size,
            poll_timeout_s=k.poll_timeout_ms / 1000,
            commit_interval_s=k.commit_interval_ms / 1000,
            max_buffered_records=b.max_buffered_records,
            max_buffered_bytes=b.max_buffered_bytes,
            grace_period_s=settings.shutdown.grace_period_s,
            revoke_timeout_s=min(10.0, settings.shutdown.grace_period_s),
            retryable_decode_errors=(RegistryUnavailable,),
            commit_metadata=k.commit_metadata,
            max_consecutive_failures=settings.dlq.max_consecutive_failures,
            stall_retry_s=settings.dlq.stall_retry_s,
        ),
        source=source,
        decoder=build_decoder(settings, registry_client(settings)),
        mapper=EventMapper(settings.mapping, p.tracking_id),
        batcher=SessionBatcher(b.max_events_per_call, b.linger_ms / 1000),
        sink=sink,
        dead_letters=dead_letters,
        max_in_flight_calls=b.max_in_flight_calls,
        metrics=metrics,
    )


def run_from_cli(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"personalize-connector: invalid configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_format or settings.observability.log_format, args.log_level)
    log.info("starting with %s", json.dumps(settings.redacted(), default=str))
    try:
        worker = build_worker(settings)
    except ConfigError as exc:
        print(f"personalize-connector: invalid configuration: {exc}", file=sys.stderr)
        return 2

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; draining", signal.Signals(signum).name)
        worker.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = None
    if settings.observability.metrics_port:
        server = ObservabilityServer(worker.metrics, worker.health, port=settings.observability.metrics_port).start()
        log.info("metrics and health on :%d (/metrics, /healthz, /readyz)", server.port)
    try:
        code = worker.run(args.exit_when_idle)
    finally:
        if server is not None:
            server.stop()
    log.info("summary %s", json.dumps(worker.summary()))
    return code
