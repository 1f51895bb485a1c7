"""Builds the pipeline from the configuration and runs it (`personalize-connector run`)."""

from __future__ import annotations

import argparse
import importlib.resources
import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from connector.batcher import SessionBatcher
from connector.config import ConfigError, EntityRoute, EventsRoute, Settings, load_settings
from connector.decode import build_decoder
from connector.decode.base import RegistryUnavailable
from connector.dlq import ConfluentDeadLetterWriter, DeadLetterWriter
from connector.dlq_kafka_python import KafkaPythonDeadLetterWriter
from connector.entities import EntityMapper
from connector.events import EventMapper
from connector.logs import configure_logging
from connector.observability import Metrics, ObservabilityServer
from connector.ratelimit import AdaptiveRateLimiter
from connector.routes import Route
from connector.sink import PutEventsSink, make_client
from connector.source.auth import KafkaAuthError, confluent_auth_config
from connector.source.confluent import ConfluentSource, KafkaUnreachable, consumer_config
from connector.source.kafka_python import KafkaPythonSource
from connector.source.kafka_python import auth_config as kafka_python_auth_config
from connector.source.kafka_python import consumer_config as kafka_python_consumer_config
from connector.worker import Worker, WorkerSettings

log = logging.getLogger(__name__)


def registry_client_config(settings: Settings) -> dict[str, Any] | None:
    """confluent-kafka SchemaRegistryClient configuration for `schema_registry` (None: no registry)."""
    sr = settings.schema_registry
    if not sr.url:
        return None
    # A short timeout and one retry: lookups run on the poll loop, and a registry outage is handled
    # by the worker (the partition waits and retries) rather than by the client blocking it.
    conf: dict[str, Any] = {"url": sr.url, "timeout": 5, "max.retries": 1, "retries.wait.ms": 100}
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
    return conf


def registry_client(settings: Settings) -> Any:
    """confluent-kafka's SchemaRegistryClient (it caches schemas by id) for the configured registry."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    conf = registry_client_config(settings)
    return SchemaRegistryClient(conf) if conf is not None else None


def _reader_schema(route: EventsRoute | EntityRoute) -> Path | None:
    """The route's reader schema: configured, or the packaged one of its destination."""
    if route.reader_schema is not None or isinstance(route, EventsRoute):
        return route.reader_schema
    return Path(str(importlib.resources.files("avro_schemas") / f"{route.destination[:-1]}.avsc"))


def build_routes(settings: Settings, metrics: Metrics) -> list[Route]:
    p, b = settings.personalize, settings.batching
    # One boto3 client for all routes (clients are thread-safe); one rate limit per route.
    client = make_client(p.region, p.endpoint_url, b.max_in_flight_calls, http_client=p.http_client)
    registry = registry_client(settings)
    routes: list[Route] = []
    for route in settings.effective_routes():
        decode = settings.decode.model_copy(update={"reader_schema": _reader_schema(route)})
        decoder = build_decoder(settings.model_copy(update={"decode": decode}), registry)
        assert route.max_requests_per_second is not None  # effective_routes fills it in
        sink = PutEventsSink(client, AdaptiveRateLimiter(route.max_requests_per_second), metrics=metrics,
                             route=route.name, failure_log_interval_s=p.failure_log_interval_s,
                             unready_after_s=p.unready_after_s)
        mapper: EventMapper | EntityMapper
        if isinstance(route, EventsRoute):
            assert route.tracking_id is not None  # checked by Settings
            mapper = EventMapper(route.mapping, route.tracking_id, route=route.name)
            skip = False
        else:
            mapper = EntityMapper(route.destination, route.mapping, route.dataset_arn, route.name)
            skip = route.on_delete == "skip"
        routes.append(Route(route.name, route.destination, list(route.topics), decoder, mapper, sink,
                            route.dlq_topic, skip_deletes=skip))
    return routes


def build_worker(settings: Settings, metrics: Metrics | None = None) -> Worker:
    k, b = settings.kafka, settings.batching
    metrics = metrics or Metrics()
    routes = build_routes(settings, metrics)
    dlq_topics = [r.dlq_topic for r in routes if r.dlq_topic]
    source: ConfluentSource | KafkaPythonSource
    dead_letters: DeadLetterWriter | None
    if k.client == "kafka-python":
        # kafka.config stays librdkafka-style; untranslatable properties raise a ConfigError naming them.
        auth = kafka_python_auth_config(k.msk_iam_region)
        source = KafkaPythonSource(
            kafka_python_consumer_config(k.bootstrap_servers, k.group_id, k.auto_offset_reset, k.config, auth)
        )
        source.preflight()
        dead_letters = (
            KafkaPythonDeadLetterWriter(dlq_topics[0], k.bootstrap_servers, k.config, auth) if dlq_topics else None
        )
    else:
        client_config = {**k.config, **confluent_auth_config(k.msk_iam_region)}
        source = ConfluentSource(consumer_config(k.bootstrap_servers, k.group_id, k.auto_offset_reset, client_config))
        source.preflight()
        dead_letters = (
            ConfluentDeadLetterWriter(dlq_topics[0], k.bootstrap_servers, client_config) if dlq_topics else None
        )
    return Worker(
        WorkerSettings(
            topics=[topic for route in routes for topic in route.topics],
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
        routes=routes,
        batcher=SessionBatcher(b.max_events_per_call, b.linger_ms / 1000),
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
    configure_logging(
        args.log_format or settings.observability.log_format, args.log_level, settings.observability.log_payloads
    )
    log.info("starting with %s", json.dumps(settings.redacted(), default=str))
    try:
        worker = build_worker(settings)
    except ConfigError as exc:
        print(f"personalize-connector: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except (KafkaAuthError, KafkaUnreachable) as exc:
        print(f"personalize-connector: cannot start: {exc}", file=sys.stderr)
        return 1

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
    if worker.calls_in_flight:
        # Abandoned calls may sit in an HTTP read for up to botocore's timeout, and the interpreter
        # joins pool threads at exit; their records are uncommitted, so leave now.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code
