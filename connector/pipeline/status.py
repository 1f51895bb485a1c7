"""What the worker shows of itself each turn: the pkc_* gauges and the /readyz facts."""

from __future__ import annotations

from connector.observability import Health, Metrics
from connector.pipeline.partitions import Partitions
from connector.routes import RouteTable


def publish(metrics: Metrics, health: Health, *, partitions: Partitions, paused: int, routes: RouteTable,
            missing_topics: set[str]) -> None:
    stalled = partitions.stalled()
    metrics.records_buffered.set(partitions.tracker.total_in_flight())
    metrics.bytes_buffered.set(partitions.buffered_bytes())
    metrics.partitions_assigned.set(len(partitions))
    metrics.partitions_paused.set(paused)
    metrics.partitions_stalled.set(len(stalled))
    health.stalled = len(stalled)
    health.stall_reasons = {str(tp): reason for tp, reason in stalled.items()}
    health.systemic_error = systemic_error(routes)
    health.delivery_stalled = next(filter(None, (r.sink.unready_reason() for r in routes.routes)), None)
    health.assigned = len(partitions)
    health.missing_topics = tuple(sorted(missing_topics))
    metrics.source_topics_missing.set(len(missing_topics))
    metrics.systemic_failure.set(0 if health.systemic_error is None else 1)


def systemic_error(routes: RouteTable) -> str | None:
    """The first route's sink failure that is not the records' fault (unknown tracker, credentials)."""
    return next((r.sink.systemic_error for r in routes.routes if r.sink.systemic_error), None)
