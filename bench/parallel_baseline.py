"""Stage `parallel_baseline`: one worker with default settings vs the one-event-per-call sink
played by N parallel senders (Kafka Connect's tasks), with the quota lifted.

A backlog of `parallel_events` events in sessions of 10 (20,000 = 2,000 sessions by default) is
produced once. Each repetition drains it with:
- one connector worker per client in `http_clients` (`personalize-connector run`), with default
  settings apart from the quota (`personalize.max_requests_per_second: 1e6`, as lifted as the
  emulator's) and the metrics server off; the default client's run is the verdict's;
- `bench.baseline --senders N`: N threads, each its own consumer of a partition subset, one
  PutEvents call and one sync commit per event through a default boto3 client.
Both pinned to the connector core. The figure is the ratio of first->last accepted call times
(the emulator's receivedAt), paired by repetition; target: the worker's <= half the senders'.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from bench import ratios
from bench.settings import default_http_client
from bench.stages import Context, Deliveries, check_exit, log, run_summary, start_connector, start_module
from bench.workload import full_session_records
from connector.tools.produce import produce

TARGET_RATIO = 0.5


def _config(ctx: Context, topic: str, tracking_id: str, http_client: str) -> Path:
    personalize: dict[str, Any] = {"tracking_id": tracking_id, "region": "us-east-1",
                                   "endpoint_url": ctx.emulator.url, "max_requests_per_second": 1e6}
    if http_client != default_http_client():
        personalize["http_client"] = http_client
    config = {
        "kafka": {"bootstrap_servers": ctx.stack.bootstrap, "group_id": ctx.name("group"), "topics": [topic]},
        "schema_registry": {"url": ctx.stack.registry_url},
        "personalize": personalize,
        "observability": {"metrics_port": 0},
    }
    path = ctx.s.work_dir / f"{tracking_id}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _connector(ctx: Context, topic: str, expected: int, http_client: str) -> dict[str, Any]:
    tracking = ctx.name(f"parallel-conn-{http_client}")
    ctx.emulator.reset()
    m = start_connector(ctx, _config(ctx, topic, tracking, http_client)).finish(timeout_s=60 + expected / 500)
    check_exit(m, f"connector ({tracking})")
    out = run_summary(m, Deliveries(ctx.emulator.received(tracking)), expected)
    out["http_client"] = http_client
    log(f"parallel baseline: connector [{http_client}] {out['active_s']:.1f} s first→last, "
        f"{out['events_per_s']:,.0f} events/s, {out['calls']:,} calls")
    return out


def _senders(ctx: Context, topic: str, expected: int) -> dict[str, Any]:
    tracking = ctx.name("parallel-senders")
    ctx.emulator.reset()
    senders = ctx.s.parallel_senders
    running = start_module(ctx, "bench.baseline", [
        "--bootstrap", ctx.stack.bootstrap, "--registry", ctx.stack.registry_url, "--topic", topic,
        "--group", ctx.name("group"), "--endpoint", ctx.emulator.url, "--tracking-id", tracking,
        "--max-events", str(expected), "--senders", str(senders),
    ], tracking)
    m = running.finish(timeout_s=120 + expected / 50)
    check_exit(m, "parallel baseline")
    out = run_summary(m, Deliveries(ctx.emulator.received(tracking)), expected)
    out["senders"] = senders
    log(f"parallel baseline: {senders} senders {out['active_s']:.1f} s first→last, "
        f"{out['events_per_s']:,.0f} events/s")
    return out


def stage_parallel_baseline(ctx: Context) -> dict[str, Any]:
    s = ctx.s
    started = time.monotonic()
    records = full_session_records(s.parallel_events, s.seed)
    topic = ctx.topic("parallel")
    produce(records, ctx.stack.bootstrap, ctx.stack.registry_url, topic, progress=False, total=len(records))
    expected = len(records)
    default = default_http_client()
    clients = list(s.http_clients)
    runs: dict[str, list[dict[str, Any]]] = {"senders": [], **{c: [] for c in clients}}
    for rep in range(s.parallel_repeats):
        log(f"parallel baseline repetition {rep + 1}/{s.parallel_repeats}")
        # Alternate who goes first, so a drift in machine load does not always hit the same side.
        order = ["senders", *clients] if rep % 2 == 0 else [*clients, "senders"]
        for who in order:
            runs[who].append(_senders(ctx, topic, expected) if who == "senders"
                             else _connector(ctx, topic, expected, who))
    verdict_client = default if default in clients else clients[0]
    ratio_runs = {c: ratios.paired(runs[c], runs["senders"], "active_s") for c in clients}
    return {
        "events": expected,
        "sessions": len({r.session_id for r in records}),
        "senders": s.parallel_senders,
        "repeats": s.parallel_repeats,
        "default_client": default,
        "verdict_client": verdict_client,
        "target_ratio": TARGET_RATIO,
        "runs": runs,
        "ratio_runs": ratio_runs,
        "ratio": {c: ratios.median(v) for c, v in ratio_runs.items()},
        "stage_s": time.monotonic() - started,  # what this stage adds to `make bench`
    }
