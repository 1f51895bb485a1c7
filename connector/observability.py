"""Prometheus metrics and the /healthz, /readyz endpoints, served on one port.

Metric updates happen at batch granularity on the hot path (one `inc(len(records))` per poll, one
observation per call), so instrumentation stays a small fraction of the per-event cost.
"""

from __future__ import annotations

import bisect
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Events per call: the API allows 1..10; these buckets give one bucket per possible size.
_EVENTS_PER_CALL_BUCKETS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800)


class BatchHistogram(Collector):
    """A histogram observed a batch at a time: what `Histogram` exposes, at a tenth of the cost.

    The end-to-end latency is observed per event; `Histogram.observe` takes two locks and walks
    the buckets for each, a sixth of what the loop spends applying a call's outcome. Here one lock
    per batch, and a binary search per value. Exposed like `Histogram` (cumulative `le` buckets,
    `_count`, `_sum`) through prometheus_client's custom-collector interface."""

    def __init__(self, name: str, documentation: str, buckets: Iterable[float], registry: CollectorRegistry) -> None:
        self._name, self._documentation = name, documentation
        self._bounds = sorted(float(b) for b in buckets if b != math.inf)
        self._counts = [0] * (len(self._bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self._sum = 0.0
        self._created = time.time()
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        """Count each value in the first bucket whose bound is >= it (Prometheus's `le`)."""
        bounds, counts, where = self._bounds, self._counts, bisect.bisect_left
        with self._lock:
            for value in values:
                counts[where(bounds, value)] += 1
                self._sum += value

    def collect(self) -> Iterable[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, count in zip([*self._bounds, math.inf], counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
        family = HistogramMetricFamily(self._name, self._documentation, buckets=buckets, sum_value=total)
        family.add_sample(f"{self._name}_created", {}, self._created)
        yield family

    def describe(self) -> Iterable[HistogramMetricFamily]:
        return self.collect()


class Metrics:
    """The connector's metrics, in their own registry (several workers can share a process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records_consumed = Counter("pkc_records_consumed", "Records polled from Kafka", ["topic"], registry=r)
        self.events_delivered = Counter("pkc_events_delivered", "Events accepted by PutEvents", registry=r)
        self.calls = Counter(
            "pkc_put_events_calls",
            "PutEvents calls by outcome (ok, throttled, invalid, transient, systemic, unknown_tracker)",
            ["outcome"], registry=r,
        )
        self.retries = Counter("pkc_put_events_retries", "PutEvents calls repeated after a failure", registry=r)
        self.dead_letters = Counter(
            "pkc_dead_letters", "Records written to the dead-letter topic", ["stage", "error_class"], registry=r
        )
        # A record may name any tracker: the tracking_id label is the tracker only when an allow-list
        # (personalize.allowed_tracking_ids) bounds the set, else "other"; never a raw id.
        self.unknown_tracker_dead_letters = Counter(
            "pkc_unknown_tracker_dead_letters",
            "Entries dead-lettered because the service does not know the tracker their record names "
            "(UnknownTracker), by route and tracker (the tracker only under an allow-list, else 'other')",
            ["route", "tracking_id"], registry=r,
        )
        self.events_per_call = Histogram(
            "pkc_events_per_call", "Events carried by each successful PutEvents call",
            buckets=_EVENTS_PER_CALL_BUCKETS, registry=r,
        )
        self.call_latency = Histogram(
            "pkc_put_events_call_seconds", "Latency of one PutEvents call", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.end_to_end_latency = BatchHistogram(
            "pkc_end_to_end_latency_seconds", "From the Kafka record timestamp to delivery at PutEvents",
            buckets=_E2E_BUCKETS, registry=r,
        )
        self.records_buffered = Gauge(
            "pkc_records_buffered", "Records polled but not yet delivered or dead-lettered", registry=r
        )
        self.bytes_buffered = Gauge("pkc_bytes_buffered", "Bytes of the buffered records", registry=r)
        self.partitions_assigned = Gauge("pkc_partitions_assigned", "Partitions owned by this worker", registry=r)
        self.partitions_stalled = Gauge(
            "pkc_partitions_stalled", "Partitions held after too many dead letters in a row", registry=r
        )
        self.partition_stalls = Counter(
            "pkc_partition_stalls", "Times a partition stalled, by reason (consecutive_failures: "
            "dlq.max_consecutive_failures; failure_ratio: dlq.max_failure_ratio)", ["reason"], registry=r,
        )
        self.records_skipped = Counter(
            "pkc_records_skipped", "Records skipped because the previous owner had delivered them", registry=r
        )
        self.deletes_skipped = Counter(
            "pkc_deletes_skipped",
            "Tombstones and delete markers skipped on items/users/actions routes (on_delete: skip)",
            ["route"], registry=r,
        )
        self.records_filtered = Counter(
            "pkc_records_filtered", "Records left out by the route's mapping.include/exclude (committed, not sent)",
            ["route"], registry=r,
        )
        self.entries_delivered = Counter(
            "pkc_entries_delivered",
            "Entries accepted by the route's call (PutEvents, PutItems, PutUsers, PutActions, PutActionInteractions)",
            ["route"], registry=r,
        )
        self.partitions_paused = Gauge("pkc_partitions_paused", "Assigned partitions currently paused", registry=r)
        self.watermark_lag = Gauge(
            "pkc_commit_watermark_lag", "Records polled but not committable yet, per partition",
            ["topic", "partition"], registry=r,
        )
        self.rebalances = Counter("pkc_rebalances", "Assignments, revocations and losses", ["kind"], registry=r)
        self.commits = Counter("pkc_commits", "Offset commits by result", ["result"], registry=r)
        self.offset_resets = Counter(
            "pkc_offset_resets", "Partitions whose offsets went backwards (log re-created, truncated or reset) "
            "and whose tracking restarted", ["topic"], registry=r,
        )
        self.source_topics_missing = Gauge(
            "pkc_source_topics_missing", "Subscribed topics the cluster does not have (deleted?)", registry=r
        )
        self.malformed_responses = Counter(
            "pkc_malformed_responses",
            "2xx answers whose body is not the API's (HTML, cut or non-object JSON): retried, never delivered",
            ["route"], registry=r,
        )
        self.seconds_since_last_delivery = Gauge(
            "pkc_seconds_since_last_delivery",
            "Seconds since the route's last successful call (since start-up before the first one)",
            ["route"], registry=r,
        )
        self.quota_share = Gauge(
            "pkc_quota_share",
            "Fraction of the route's request quota this worker uses: its share of the route's partitions",
            ["route"], registry=r,
        )
        self.systemic_failure = Gauge(
            "pkc_systemic_failure", "1 while PutEvents fails for a systemic reason (consumption paused)", registry=r
        )

    def summary(self) -> dict[str, Any]:
        """Totals for the end-of-run log line, the demo and tests, read back from the metrics."""
        def total(name: str) -> float:
            return sum(
                sample.value
                for metric in self.registry.collect()
                for sample in metric.samples
                if sample.name == name
            )

        by_reason: dict[str, int] = {}
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == "pkc_dead_letters_total" and sample.value:
                    by_reason[f"{sample.labels['stage']}/{sample.labels['error_class']}"] = int(sample.value)
        return {
            "records_consumed": int(total("pkc_records_consumed_total")),
            "records_skipped": int(total("pkc_records_skipped_total")),
            "events_delivered": int(total("pkc_events_delivered_total")),
            "calls": int(total("pkc_put_events_calls_total")),
            "retries": int(total("pkc_put_events_retries_total")),
            "dead_letters": sum(by_reason.values()),
            "dead_letters_by_reason": dict(sorted(by_reason.items())),
            "delivered_by_route": {
                sample.labels["route"]: int(sample.value)
                for metric in self.registry.collect()
                for sample in metric.samples
                if sample.name == "pkc_entries_delivered_total"
            },
            "deletes_skipped": int(total("pkc_deletes_skipped_total")),
            "records_filtered": int(total("pkc_records_filtered_total")),
            "rebalances": int(total("pkc_rebalances_total")),
            "commits": int(total("pkc_commits_total")),
        }


@dataclass(slots=True)
class Health:
    """What the probes report; the worker updates it from its loop."""

    last_turn: float = 0.0
    started: bool = False
    stopping: bool = False
    systemic_error: str | None = None
    assigned: int = 0
    stalled: int = 0
    # Stalled partition -> why (consecutive_failures | failure_ratio).
    stall_reasons: dict[str, str] = field(default_factory=dict)
    # Subscribed topics that do not exist (deleted): nothing can be read from them.
    missing_topics: tuple[str, ...] = ()
    # Set while a route's work has waited personalize.unready_after_s without a successful call.
    delivery_stalled: str | None = None
    liveness_timeout_s: float = 120.0

    def live(self, now: float) -> tuple[bool, dict[str, Any]]:
        age = now - self.last_turn if self.last_turn else 0.0
        return age < self.liveness_timeout_s, {"loop_age_s": round(age, 3)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        ok = (self.started and not self.stopping and self.systemic_error is None and not self.stalled
              and not self.missing_topics and self.delivery_stalled is None)
        return ok, {
            "delivery_stalled": self.delivery_stalled,
            "started": self.started,
            "stopping": self.stopping,
            "assigned_partitions": self.assigned,
            "stalled_partitions": self.stalled,
            "stall_reasons": dict(self.stall_reasons),
            "systemic_error": self.systemic_error,
            "missing_topics": list(self.missing_topics),
        }


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes every few seconds would flood the logs


class ObservabilityServer:
    """Serves /metrics, /healthz and /readyz from a daemon thread."""

    def __init__(self, metrics: Metrics, health: Health, host: str = "0.0.0.0", port: int = 9400) -> None:
        metrics_app = make_wsgi_app(metrics.registry)
        clock: Callable[[], float] = time.monotonic

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path in ("/healthz", "/readyz"):
                ok, detail = health.live(clock()) if path == "/healthz" else health.ready()
                body = json.dumps({"ok": ok, **detail}).encode()
                start_response("200 OK" if ok else "503 Service Unavailable",
                               [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
            if path == "/metrics":
                result: Iterable[bytes] = metrics_app(environ, start_response)
                return result
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics, /healthz or /readyz\n"]

        self._server: WSGIServer = make_server(host, port, app, handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="observability", daemon=True)

    def start(self) -> ObservabilityServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
