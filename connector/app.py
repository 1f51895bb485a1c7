"""Builds the pipeline from the configuration and runs it (`personalize-connector run`)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import importlib.resources
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from connector.config import ActionInteractionsRoute, AnyRoute, ConfigError, EventsRoute, Settings, load_settings
from connector.decode import build_decoder
from connector.decode.base import RegistryUnavailable
from connector.destinations.base import Destination
from connector.destinations.registry import DESTINATIONS
from connector.dlq import DeadLetterFormat, DeadLetterWriter
from connector.kafka.auth import KafkaAuthError
from connector.kafka.base import KafkaUnreachable
from connector.kafka.clients import KafkaClients
from connector.logs import configure_logging, register_secrets
from connector.memory import release_freed_memory
from connector.observability import Health, Metrics, ObservabilityServer
from connector.personalize.quotas import Quotas
from connector.personalize.sink import PutEventsSink, make_client
from connector.personalize.tenants import TenantTrackers
from connector.pipeline.batcher import SessionBatcher
from connector.pipeline.flow import buffer_bound
from connector.pipeline.inflight import AUTO_HIGHEST, AUTO_LOWEST, InFlightLimit
from connector.pipeline.quota_share import QuotaShare
from connector.records import TopicPartition
from connector.routes import Route, RouteTable
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


def _reader_schema(route: AnyRoute, packaged: str | None) -> Path | None:
    """The route's reader schema: configured, else the packaged one of its destination (if any)."""
    if route.reader_schema is not None or packaged is None:
        return route.reader_schema
    return Path(str(importlib.resources.files("avro_schemas") / packaged))


def _tenant_trackers(route: AnyRoute) -> TenantTrackers:
    """What the route's sink must know to tell its own tracker from those records name."""
    if isinstance(route, EventsRoute | ActionInteractionsRoute):
        return TenantTrackers(route.tracking_id, route.allowed_tracking_ids)
    return TenantTrackers()  # a dataset route: no tracker of its own, none named by records


def build_routes(settings: Settings, metrics: Metrics, quotas: Quotas | None = None) -> list[Route]:
    """`quotas`: the rate buckets the sinks share (default: new ones)."""
    p = settings.personalize
    # One boto3 client for all routes (clients are thread-safe); one rate bucket per quota.
    client = make_client(p.region, p.endpoint_url, in_flight_limit(settings).highest, http_client=p.http_client)
    registry = registry_client(settings)
    configured = settings.effective_routes()
    quotas = quotas or route_quotas(configured)
    routes: list[Route] = []
    for route in configured:
        destination = DESTINATIONS[route.destination]
        decode = settings.decode.model_copy(update={"reader_schema": _reader_schema(route, destination.reader_schema)})
        decoder = build_decoder(settings.model_copy(update={"decode": decode}), registry)
        metrics.quota_share.labels(route.name).set_function(functools.partial(quotas.share, route.name))
        sink = PutEventsSink(client, quotas, metrics=metrics,
                             route=route.name, failure_log_interval_s=p.failure_log_interval_s,
                             unready_after_s=p.unready_after_s, tenants=_tenant_trackers(route))
        routes.append(Route(route.name, list(route.topics), decoder, destination.build(route), sink, route.dlq_topic))
    return routes


def in_flight_limit(settings: Settings, quotas: Quotas | None = None) -> InFlightLimit:
    """batching.max_in_flight_calls: a fixed bound, or "auto" sized from the quotas' total rate."""
    configured = settings.batching.max_in_flight_calls
    if configured != "auto":
        return InFlightLimit.fixed(configured)
    return InFlightLimit(AUTO_LOWEST, AUTO_HIGHEST, quota_rate=quotas.total_rate if quotas else lambda: 0.0)


def route_quotas(routes: list[AnyRoute]) -> Quotas:
    rates = {}
    for route in routes:
        assert route.max_requests_per_second is not None  # effective_routes fills it in
        rates[route.name] = route.max_requests_per_second
    return Quotas(rates)


def build_worker(
    settings: Settings,
    metrics: Metrics | None = None,
    health: Health | None = None,
    *,
    replaying: bool = False,
    stop_at: dict[TopicPartition, int] | None = None,
    wrap_destination: Callable[[Destination], Destination] | None = None,
) -> Worker:
    """`replaying`: the source is a dead-letter topic (`dlq replay`), whose pkc.source.* headers
    name the original positions that new dead letters must keep (connector.dlq.DeadLetterFormat).
    `stop_at`: the worker stops once it has reached these offsets (WorkerSettings.stop_at).
    `wrap_destination`: applied to every route's destination (a replay maps with the original positions)."""
    k, b = settings.kafka, settings.batching
    metrics = metrics or Metrics()
    if settings.decode.format in ("confluent", "json_schema", "protobuf") and not settings.schema_registry.url:
        raise ConfigError(f"schema_registry.url: is required when decode.format is '{settings.decode.format}'"
                          + (" (the default)" if settings.decode.format == "confluent" else ""))
    quotas = route_quotas(settings.effective_routes())
    routes = build_routes(settings, metrics, quotas)
    if wrap_destination is not None:
        routes = [dataclasses.replace(route, destination=wrap_destination(route.destination)) for route in routes]
    dlq_topics = [r.dlq_topic for r in routes if r.dlq_topic]
    letter_format = DeadLetterFormat(settings.dlq.context_headers, settings.dlq.include_stacktrace, replaying)
    clients = KafkaClients.from_settings(settings)
    source = clients.source()
    # A replay reads a dead-letter topic, not the routes' partitions: it keeps the whole quota.
    share = None if replaying else QuotaShare(source, RouteTable(routes), quotas)
    dead_letters: DeadLetterWriter | None = None
    if dlq_topics:
        try:
            dead_letters = clients.dead_letter_writer(dlq_topics[0], letter_format)
        except ConfigError:
            source.close()
            raise
    return Worker(
        WorkerSettings(
            topics=[topic for route in routes for topic in route.topics],
            poll_batch_size=k.poll_batch_size,
            poll_timeout_s=k.poll_timeout_ms / 1000,
            commit_interval_s=k.commit_interval_ms / 1000,
            max_buffered_records=(buffer_bound(quotas.configured_rate, b.max_events_per_call, b.linger_ms / 1000)
                                  if b.max_buffered_records == "auto" else b.max_buffered_records),
            max_buffered_bytes=b.max_buffered_bytes,
            grace_period_s=settings.shutdown.grace_period_s,
            revoke_timeout_s=min(10.0, settings.shutdown.grace_period_s),
            retryable_decode_errors=(RegistryUnavailable,),
            commit_metadata=k.commit_metadata,
            max_consecutive_failures=settings.dlq.max_consecutive_failures,
            max_failure_ratio=settings.dlq.max_failure_ratio,
            failure_ratio_window=settings.dlq.failure_ratio_window,
            stall_retry_s=settings.dlq.stall_retry_s,
            stop_at=stop_at,
        ),
        source=source,
        routes=routes,
        batcher=SessionBatcher(b.max_events_per_call, b.linger_ms / 1000),
        dead_letters=dead_letters,
        max_in_flight_calls=in_flight_limit(settings, quotas),
        metrics=metrics,
        health=health,
        quota_share=share,
    )


def _stop_with(message: str, code: int) -> int:
    """Print why start-up stopped as the last line of stderr (after the log lines still held, such
    as a coalesced summary of librdkafka's connection errors), and return the exit code."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    print(f"personalize-connector: {message}", file=sys.stderr, flush=True)
    return code


# Signals that drain the worker like Kubernetes' SIGTERM: SIGINT (Ctrl-C) and SIGHUP (a closed
# terminal, or `kill -HUP`, which would otherwise end the process without a commit).
DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# How long a thread may hold the interpreter while others wait for it (CPython's default: 5 ms).
# An answered call's thread waits for the loop to let go before it can hand its outcome back; with
# 60 calls of 50 ms in flight at 1,000 calls/s, waits of up to 5 ms left part of the quota unused.
SWITCH_INTERVAL_S = 0.001
# The cyclic garbage collector's youngest-generation threshold (CPython's default: 700 allocations).
# The worker allocates some 50 containers per event, nearly all freed by reference counting (no
# cycles), so the default ran a young collection every ~14 events and promoted every buffered record
# into the older generations, whose full scans walked the whole heap. See `tune_interpreter`.
GC_YOUNGEST_THRESHOLD = 50_000


def tune_interpreter() -> None:
    """Interpreter settings for the worker process, measured with `make bench`'s quota stage (1,000
    calls/s of 50 ms, one core): the 1 ms switch interval and the collector's settings took it from
    84 % to 91 % of the quota, and the CPU per call from ~1,050 to ~850 us (docs/benchmarks.md)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # What exists once the worker is built (botocore's service model, the schemas, the modules) lives
    # as long as the process: frozen, later full collections no longer walk it.
    gc.freeze()
    gc.set_threshold(GC_YOUNGEST_THRESHOLD, 20, 100)


def run_from_cli(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"personalize-connector: invalid configuration: {exc}", file=sys.stderr)
        return 2
    obs = settings.observability
    configure_logging(args.log_format or obs.log_format, args.log_level, obs.log_payloads, obs.log_coalesce_window_s)
    register_secrets(settings.secret_values())
    log.info("starting with %s", json.dumps(settings.redacted(), default=str))
    metrics, health = Metrics(), Health()
    server = None
    if obs.metrics_port:
        # Bound before any Kafka client exists, so a port in use stops start-up at once and cleanly.
        try:
            server = ObservabilityServer(metrics, health, port=obs.metrics_port).start()
        except OSError as exc:
            return _stop_with(f"cannot start: observability.metrics_port {obs.metrics_port} cannot be used "
                              f"({exc.strerror or exc}); free it or choose another port (0 disables the server)", 1)
        log.info("metrics and health on :%d (/metrics, /healthz, /readyz)", server.port)
    try:
        return _run_worker(settings, metrics, health, args.exit_when_idle)
    finally:
        if server is not None:
            server.stop()


@contextmanager
def _quit_on_signal_during_start_up() -> Iterator[None]:
    """SIGINT, SIGTERM or SIGHUP while the clients are built exits at once with 128 + the signal
    (130 for Ctrl-C), without a traceback. Nothing is subscribed, consumed or committed yet, so there
    is nothing to drain; and the broker preflight blocks inside librdkafka for up to 10 s, where a
    Python signal handler would not run until it returns. The C-level handler writes the signal
    number to a wakeup pipe immediately, which a daemon thread reads."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = {signum: signal.signal(signum, lambda _s, _f: None) for signum in DRAIN_SIGNALS}
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    done = threading.Event()

    def watch() -> None:
        try:
            data = os.read(read_fd, 1)
        except OSError:
            return
        if done.is_set() or not data:
            return
        name = signal.Signals(data[0]).name
        os.write(2, f"personalize-connector: {name} during start-up; exiting (nothing was consumed)\n".encode())
        os._exit(128 + data[0])

    threading.Thread(target=watch, name="start-up-signals", daemon=True).start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(write_fd)  # ends the watcher's read
        os.close(read_fd)


def _run_worker(settings: Settings, metrics: Metrics, health: Health, exit_when_idle: float | None) -> int:
    try:
        with _quit_on_signal_during_start_up():
            worker = build_worker(settings, metrics, health)
    except ConfigError as exc:
        return _stop_with(f"invalid configuration: {exc}", 2)
    except (KafkaAuthError, KafkaUnreachable) as exc:
        return _stop_with(f"cannot start: {exc}", 1)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; draining", signal.Signals(signum).name)
        worker.request_stop()

    for signum in DRAIN_SIGNALS:
        signal.signal(signum, stop)
    tune_interpreter()
    release_freed_memory(threading.Event())  # a daemon thread: it ends with the process
    code = worker.run(exit_when_idle)
    log.info("summary %s", json.dumps(worker.metrics.summary()))
    if worker.calls_in_flight:
        # Abandoned calls may sit in an HTTP read for up to botocore's timeout, and the interpreter
        # joins pool threads at exit; their records are uncommitted, so leave now.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code
