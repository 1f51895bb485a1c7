"""The measurements. Each stage returns a JSON-ready dict; `bench.run` strings them together.

Every connector run is the real console script (`personalize-connector run --exit-when-idle`) in a
subprocess pinned to its own core, sampled from /proc; deliveries are read back from the emulator
(per event: receivedAt, sessionId, sentAt, eventId), reset between runs.
"""

from __future__ import annotations

import http.client
import itertools
import json
import math
import socket
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import ratios
from bench.procs import (
    Cleanup,
    Emulator,
    Measured,
    Running,
    StackInfo,
    aws_env,
    bin_path,
    pinned,
    start_emulator,
    tail,
)
from bench.settings import REPO_ROOT, BenchSettings, default_http_client
from bench.workload import (
    LiveReplay,
    create_topic,
    default_records,
    describe,
    full_session_records,
    ideal_backlog_calls,
    ideal_live_calls,
)
from connector.tools.produce import produce
from connector.tools.workload import SampleRecord

PROFILE_EVENTS = 20_000


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[k])


@dataclass
class Context:
    s: BenchSettings
    stack: StackInfo
    cleanup: Cleanup
    emulator: Emulator  # quota lifted, pinned to the service core
    run_id: str = field(default_factory=lambda: time.strftime("%H%M%S") + "-" + uuid.uuid4().hex[:4])
    topics: dict[str, str] = field(default_factory=dict)
    workloads: dict[str, dict[str, Any]] = field(default_factory=dict)
    ideal_backlog: dict[str, int] = field(default_factory=dict)
    live_records: list[SampleRecord] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def connector_core(self) -> int | None:
        return self.s.connector_core if self.s.pin else None

    @property
    def service_core(self) -> int | None:
        return self.s.service_core if self.s.pin else None

    def name(self, what: str) -> str:
        return f"bench-{self.run_id}-{what}-{next(self._ids)}"

    def topic(self, what: str) -> str:
        name = f"bench-{self.run_id}-{what}"
        create_topic(self.stack.bootstrap, name, self.s.partitions)
        self.topics[what] = name
        return name


# ------------------------------------------------------------------------------ setup


def produce_workloads(ctx: Context) -> dict[str, Any]:
    """Generate and produce the backlog workloads once; compute their ideal call counts."""
    s = ctx.s
    out: dict[str, Any] = {}
    for what, records in (
        ("default", default_records(s.events, s.seed)),
        ("full", full_session_records(s.events, s.seed)),
        ("profile", default_records(min(PROFILE_EVENTS, s.events), s.seed)),
    ):
        topic = ctx.topic(what)
        summary = produce(records, ctx.stack.bootstrap, ctx.stack.registry_url, topic, progress=False,
                          total=len(records))
        ctx.workloads[what] = describe(records)
        ctx.ideal_backlog[what] = ideal_backlog_calls(records)
        out[what] = {"topic": topic, "produced": summary.produced, "produce_s": round(summary.elapsed_s, 2),
                     "ideal_backlog_calls": ctx.ideal_backlog[what], **ctx.workloads[what]}
        log(f"produced {summary.produced:,} {what} events to {topic} in {summary.elapsed_s:.1f}s")
    ctx.live_records = default_records(s.live_events, s.seed)
    ctx.workloads["live"] = describe(ctx.live_records)
    out["live"] = ctx.workloads["live"]
    return out


# ------------------------------------------------------------------------------ connector runs


def connector_config(
    ctx: Context,
    *,
    topic: str,
    emulator: Emulator,
    tracking_id: str,
    linger_ms: int = 1000,
    in_flight: int | None = None,
    max_rps: float = 1_000_000.0,
    metrics_port: int = 0,
    http_client: str | None = None,
) -> Path:
    config = {
        "kafka": {"bootstrap_servers": ctx.stack.bootstrap, "group_id": ctx.name("group"), "topics": [topic]},
        "schema_registry": {"url": ctx.stack.registry_url},
        "personalize": {"tracking_id": tracking_id, "region": "us-east-1", "endpoint_url": emulator.url,
                        "max_requests_per_second": max_rps, "http_client": http_client or ctx.s.http_client},
        # in_flight None: the connector's default (auto-sized from the quota and the latency).
        "batching": {"linger_ms": linger_ms, **({} if in_flight is None else {"max_in_flight_calls": in_flight})},
        "observability": {"metrics_port": metrics_port, "log_format": "text"},
    }
    path = ctx.s.work_dir / f"{tracking_id}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_connector(ctx: Context, config: Path, *, interval_s: float = 0.1,
                    on_sample: Callable[[Any], None] | None = None) -> Running:
    cmd = [bin_path("personalize-connector"), "run", "--config", str(config),
           "--exit-when-idle", str(ctx.s.idle_exit_s), "--log-format", "text"]
    return Running(pinned(cmd, ctx.connector_core), config.with_suffix(".log"), env=aws_env(),
                   interval_s=interval_s, on_sample=on_sample)


def start_module(ctx: Context, module: str, args: Sequence[str], log_name: str) -> Running:
    env = aws_env()
    env["PYTHONPATH"] = str(REPO_ROOT) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", module, *args]
    return Running(pinned(cmd, ctx.connector_core), ctx.s.work_dir / f"{log_name}.log", env=env)


def check_exit(m: Measured, what: str) -> None:
    if m.returncode != 0:
        raise RuntimeError(f"{what} exited with {m.returncode}; log {m.log_path}:\n{tail(m.log_path)}")


@dataclass
class Deliveries:
    """What the emulator accepted for one tracking id."""

    received: list[tuple[float, str, float, str | None]]

    @property
    def events(self) -> int:
        return len(self.received)

    @property
    def call_times(self) -> list[float]:
        # One receivedAt per call (time.time() at the call's arrival), shared by its events.
        return sorted(t for t, _ in {(r[0], r[1]) for r in self.received})

    @property
    def calls(self) -> int:
        return len({(r[0], r[1]) for r in self.received})

    @property
    def first(self) -> float:
        return min(r[0] for r in self.received)

    @property
    def last(self) -> float:
        return max(r[0] for r in self.received)

    @property
    def duplicates(self) -> int:
        ids = [r[3] for r in self.received if r[3] is not None]
        return len(ids) - len(set(ids))


def run_summary(m: Measured, d: Deliveries, expected: int) -> dict[str, Any]:
    """Throughput over the active window (first to last accepted call) and CPU within it."""
    window = max(1e-6, d.last - d.first)
    cpu = m.cpu_between(d.first, d.last)
    return {
        "events": d.events,
        "expected": expected,
        "duplicates": d.duplicates,
        "calls": d.calls,
        "calls_per_1000": 1000 * d.calls / d.events if d.events else float("nan"),
        "active_s": window,
        "events_per_s": d.events / window,
        "cpu_window_s": cpu,
        "cpu_ms_per_1000": 1000 * 1000 * cpu / d.events if d.events else float("nan"),
        "cpu_us_per_call": 1e6 * cpu / d.calls if d.calls else float("nan"),
        "cpu_total_s": m.cpu_total_s,
        "wall_s": m.wall_s,
        "maxrss_mb": m.maxrss_kb / 1024,
        "cpu_util_in_window": cpu / window,
    }


def connector_backlog_run(ctx: Context, what: str, *, linger_ms: int = 1000, label: str = "",
                          http_client: str | None = None) -> dict[str, Any]:
    client = http_client or ctx.s.http_client
    tracking = ctx.name(label or f"conn-{what}-l{linger_ms}-{client}")
    ctx.emulator.reset()
    config = connector_config(ctx, topic=ctx.topics[what], emulator=ctx.emulator, tracking_id=tracking,
                              linger_ms=linger_ms, http_client=client)
    expected = ctx.workloads[what]["events"]
    m = start_connector(ctx, config).finish(timeout_s=60 + expected / 500)
    check_exit(m, f"connector ({tracking})")
    d = Deliveries(ctx.emulator.received(tracking))
    out = run_summary(m, d, expected)
    out["ideal_calls"] = ctx.ideal_backlog[what]
    out["linger_ms"] = linger_ms
    out["http_client"] = client
    log(f"connector [{client}] {what} linger={linger_ms}ms: {out['events_per_s']:,.0f} events/s, "
        f"{out['cpu_ms_per_1000']:.0f} ms CPU/1000 events, {out['calls']:,} calls (ideal {out['ideal_calls']:,})")
    if d.events != expected or d.duplicates:
        log(f"WARNING: delivered {d.events} of {expected} events, {d.duplicates} duplicate ids")
    return out


def baseline_run(ctx: Context) -> dict[str, Any]:
    tracking = ctx.name("baseline")
    ctx.emulator.reset()
    n = min(ctx.s.baseline_events, ctx.workloads["default"]["events"])
    running = start_module(ctx, "bench.baseline", [
        "--bootstrap", ctx.stack.bootstrap, "--registry", ctx.stack.registry_url,
        "--topic", ctx.topics["default"], "--group", ctx.name("group"),
        "--endpoint", ctx.emulator.url, "--tracking-id", tracking, "--max-events", str(n),
    ], tracking)
    m = running.finish(timeout_s=120 + n / 20)
    check_exit(m, "baseline")
    d = Deliveries(ctx.emulator.received(tracking))
    out = run_summary(m, d, n)
    log(f"baseline: {out['events_per_s']:,.0f} events/s, {out['cpu_ms_per_1000']:.0f} ms CPU/1000 events")
    return out


def ceiling_run(ctx: Context) -> dict[str, Any]:
    tracking = ctx.name("ceiling")
    config = connector_config(ctx, topic=ctx.topics["default"], emulator=ctx.emulator, tracking_id=tracking)
    n = ctx.workloads["default"]["events"]
    m = start_module(ctx, "bench.ceiling", ["--config", str(config), "--events", str(n)], tracking).finish(
        timeout_s=120 + n / 1000
    )
    check_exit(m, "ceiling")
    r = json.loads(m.stdout.strip().splitlines()[-1])
    out = {
        "events": r["events"],
        "events_per_s": r["events"] / max(1e-6, r["wall_s"]),
        "cpu_window_s": r["cpu_s"],
        "cpu_ms_per_1000": 1000 * 1000 * r["cpu_s"] / max(1, r["events"]),
        "cpu_total_s": m.cpu_total_s,
        "wall_s": m.wall_s,
        "maxrss_mb": m.maxrss_kb / 1024,
    }
    log(f"ceiling (consume+decode+map): {out['events_per_s']:,.0f} events/s, "
        f"{out['cpu_ms_per_1000']:.0f} ms CPU/1000 events")
    return out


# ------------------------------------------------------------------------------ stages


def stage_throughput(ctx: Context) -> dict[str, Any]:
    """The connector with each client of `http_clients`, the baseline and the ceiling, side by side.

    runs["connector:CLIENT"] / ["connector_full:CLIENT"] per client; runs["connector"] /
    ["connector_full"], "median" and the top-level ratios are the headline client's: the default
    `personalize.http_client` (what a user gets) when it was measured.
    """
    clients = list(ctx.s.http_clients)
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    for what, key in (("default", "connector"), ("full", "connector_full")):
        steps += [(f"{key}:{c}", lambda what=what, c=c: connector_backlog_run(ctx, what, http_client=c))
                  for c in clients]
    steps += [("baseline", lambda: baseline_run(ctx)), ("ceiling", lambda: ceiling_run(ctx))]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in steps}
    for rep in range(ctx.s.repeats):
        log(f"throughput repetition {rep + 1}/{ctx.s.repeats}")
        # Rotate the order so a drift in machine load does not always hit the same contender.
        for name, step in steps[rep % len(steps):] + steps[: rep % len(steps)]:
            runs[name].append(step())
    default = default_http_client()
    headline = default if default in clients else clients[0]
    by_client = {c: client_ratios(runs, c) for c in clients}
    runs["connector"], runs["connector_full"] = runs[f"connector:{headline}"], runs[f"connector_full:{headline}"]
    med = {name: {k: median([r[k] for r in rs]) for k in ("events_per_s", "cpu_ms_per_1000")}
           for name, rs in runs.items()}
    return {
        "runs": runs,
        "median": med,
        "default_client": default,
        "headline_client": headline,
        "clients": by_client,
        "vs_default_client": {c: client_vs(runs, c, headline) for c in clients if c != headline},
        "speedup_vs_baseline": by_client[headline]["speedup_vs_baseline"],
        "speedup_vs_baseline_runs": by_client[headline]["speedup_vs_baseline_runs"],
        "cpu_vs_ceiling": by_client[headline]["cpu_vs_ceiling"],
        "cpu_vs_ceiling_runs": by_client[headline]["cpu_vs_ceiling_runs"],
        # Issue 17's figure: 10-event sessions (one full call per session) against the same ceiling.
        "cpu_vs_ceiling_sessions10": by_client[headline]["cpu_vs_ceiling_full"],
    }


def client_ratios(runs: dict[str, list[dict[str, Any]]], client: str) -> dict[str, Any]:
    """One client's headline ratios, each paired by repetition with the baseline or the ceiling."""
    default_wl, full = runs[f"connector:{client}"], runs[f"connector_full:{client}"]
    out: dict[str, Any] = {
        "speedup_vs_baseline_runs": ratios.paired(default_wl, runs["baseline"], "events_per_s"),
        "cpu_vs_ceiling_runs": ratios.paired(default_wl, runs["ceiling"], "cpu_ms_per_1000"),
        "cpu_vs_ceiling_full_runs": ratios.paired(full, runs["ceiling"], "cpu_ms_per_1000"),
    }
    out |= {k.removesuffix("_runs"): ratios.median(v) for k, v in list(out.items())}
    for key, rs in (("connector", default_wl), ("connector_full", full)):
        out[key] = {k: median([r[k] for r in rs]) for k in ("events_per_s", "cpu_ms_per_1000", "cpu_us_per_call")}
    return out


def client_vs(runs: dict[str, list[dict[str, Any]]], client: str, other: str) -> dict[str, Any]:
    """`client` / `other`, paired by repetition: events/s and CPU per call on both workloads."""
    out: dict[str, Any] = {}
    for key in ("connector", "connector_full"):
        for figure in ("events_per_s", "cpu_us_per_call"):
            paired = ratios.paired(runs[f"{key}:{client}"], runs[f"{key}:{other}"], figure)
            out[f"{key}.{figure}_runs"] = paired
            out[f"{key}.{figure}"] = ratios.median(paired)
    return out


def metrics_value(port: int, name: str) -> float | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
        conn.close()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def live_run(ctx: Context, linger_ms: int) -> dict[str, Any]:
    tracking = ctx.name(f"live-l{linger_ms}")
    topic = ctx.topic(f"live-l{linger_ms}")
    ctx.emulator.reset()
    port = free_port()
    config = connector_config(ctx, topic=topic, emulator=ctx.emulator, tracking_id=tracking, linger_ms=linger_ms,
                              metrics_port=port)
    running = start_connector(ctx, config)
    deadline = time.monotonic() + 90
    while (metrics_value(port, "pkc_partitions_assigned") or 0) < 1:
        if time.monotonic() > deadline or not running.alive():
            running.terminate()
            m = running.finish(30)
            raise RuntimeError(f"live connector never got its partitions; log:\n{tail(m.log_path)}")
        time.sleep(0.2)
    replay = LiveReplay(ctx.live_records, ctx.s.live_seconds)
    # linger.ms=1: a live producer sends about as soon as the event happens.
    produce(replay, ctx.stack.bootstrap, ctx.stack.registry_url, topic, progress=False,
            extra_config={"linger.ms": 1}, total=len(ctx.live_records))
    m = running.finish(timeout_s=120)
    check_exit(m, f"live connector ({tracking})")
    d = Deliveries(ctx.emulator.received(tracking))
    latencies = sorted(max(0.0, r[0] - r[2]) for r in d.received)
    out = run_summary(m, d, len(ctx.live_records))
    out.update(
        linger_ms=linger_ms,
        ideal_calls=ideal_live_calls(replay.produced_at, linger_ms / 1000),
        replay_s=replay.finished - replay.started,
        compression=replay.compression,
        offered_events_per_s=len(ctx.live_records) / max(1e-6, replay.finished - replay.started),
        latency_p50_ms=1000 * percentile(latencies, 50),
        latency_p99_ms=1000 * percentile(latencies, 99),
        latency_max_ms=1000 * latencies[-1] if latencies else float("nan"),
    )
    log(f"live linger={linger_ms}ms: {out['calls']:,} calls (ideal {out['ideal_calls']:,}), "
        f"latency p50 {out['latency_p50_ms']:.0f} ms, p99 {out['latency_p99_ms']:.0f} ms")
    return out


def stage_linger(ctx: Context, throughput: dict[str, Any] | None) -> dict[str, Any]:
    backlog: list[dict[str, Any]] = []
    for linger in ctx.s.lingers_ms:
        # The throughput stage's runs with this stage's client, if it measured that one.
        reuse = throughput["runs"].get(f"connector:{ctx.s.http_client}") if throughput and linger == 1000 else None
        if reuse:
            row = dict(reuse[0])
            row["calls"] = int(median([r["calls"] for r in reuse]))
            row["calls_per_1000"] = median([r["calls_per_1000"] for r in reuse])
            row["events_per_s"] = median([r["events_per_s"] for r in reuse])
            row["reused_from"] = "throughput"
        else:
            row = connector_backlog_run(ctx, "default", linger_ms=linger)
        backlog.append(row)
    live = [live_run(ctx, linger) for linger in ctx.s.lingers_ms]
    return {"backlog": backlog, "live": live, "ideal_backlog_calls": ctx.ideal_backlog["default"],
            "events": ctx.workloads["default"]["events"]}


def sliding_max(times: Sequence[float], window_s: float = 1.0) -> int:
    best = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] < t - window_s + 1e-9:
            j += 1
        best = max(best, i - j + 1)
    return best


def stage_quota(ctx: Context) -> dict[str, Any]:
    s = ctx.s
    emu = start_emulator(s, ctx.cleanup, "quota", "--max-requests-per-second", str(s.quota_rps),
                         core=ctx.service_core)
    emu.set_faults(latency_ms=s.quota_latency_ms)
    tracking = ctx.name("quota")
    # 10-event sessions: a backlog where every call is a full one (the workload).
    config = connector_config(ctx, topic=ctx.topics["full"], emulator=emu, tracking_id=tracking,
                              in_flight=s.quota_in_flight, max_rps=s.quota_rps)
    timeline: list[tuple[float, int, int]] = []
    stop = threading.Event()

    def poll_stats() -> None:
        while not stop.wait(0.5):
            try:
                st = emu.stats()
            except OSError:
                continue
            timeline.append((time.time(), int(st["calls"]), int(st["throttled_calls"])))

    poller = threading.Thread(target=poll_stats, daemon=True)
    poller.start()
    expected = ctx.workloads["full"]["events"]
    try:
        m = start_connector(ctx, config).finish(timeout_s=120 + expected / 200)
    finally:
        stop.set()
        poller.join()
    check_exit(m, "quota connector")
    stats = emu.stats()
    d = Deliveries(emu.received(tracking))
    calls = d.call_times
    out = run_summary(m, d, expected)
    window = max(1e-6, calls[-1] - calls[0]) if calls else 1e-6
    # Steady state: drop the first and last second (group join ramp-up, the drain's tail).
    steady = [t for t in calls if calls[0] + 1 <= t <= calls[-1] - 1]
    steady_rate = len(steady) / max(1e-6, (calls[-1] - 1) - (calls[0] + 1)) if len(calls) > 2 else float("nan")
    per_second: dict[int, int] = {}
    for t in calls:
        per_second[int(t - calls[0])] = per_second.get(int(t - calls[0]), 0) + 1
    out.update(
        quota_rps=s.quota_rps,
        latency_ms=s.quota_latency_ms,
        in_flight=s.quota_in_flight if s.quota_in_flight is not None else "auto",
        # Calls that arrived within less than the latency of each other were in flight together.
        most_in_flight_seen=sliding_max(calls, 0.75 * s.quota_latency_ms / 1000) if calls else 0,
        accepted_calls=len(calls),
        achieved_rps=len(calls) / window,
        steady_rps=steady_rate,
        max_1s_window_calls=sliding_max(calls),
        throttled_calls=int(stats["throttled_calls"]),
        emulator_calls=int(stats["calls"]),
        per_second=[per_second.get(i, 0) for i in range(max(per_second) + 1)] if per_second else [],
        timeline=timeline,
    )
    log(f"quota: steady {steady_rate:,.0f} req/s (mean {out['achieved_rps']:,.0f}), max 1 s window "
        f"{out['max_1s_window_calls']}, throttled {out['throttled_calls']}, in flight >= {out['most_in_flight_seen']}")
    return out


def stage_profile(ctx: Context, throughput: dict[str, Any] | None) -> dict[str, Any]:
    ctx.emulator.reset()
    tracking = ctx.name("profile")
    config = connector_config(ctx, topic=ctx.topics["profile"], emulator=ctx.emulator, tracking_id=tracking)
    out_path = ctx.s.work_dir / "profile.json"
    pstats_path = ctx.s.work_dir / "profile.pstats"
    m = start_module(ctx, "bench.cpu_profile", ["--config", str(config), "--out", str(out_path),
                                                "--pstats", str(pstats_path)], tracking).finish(timeout_s=900)
    check_exit(m, "profile run")
    result: dict[str, Any] = json.loads(out_path.read_text())
    result["pstats_file"] = str(pstats_path)
    # The top item, measured without a profiler: client CPU per PutEvents call, as configured
    # today and with botocore's parameter validation off (the mapper already validates).
    ctx.emulator.reset()
    m2 = start_module(ctx, "bench.botocall", ["--endpoint", ctx.emulator.url, "--calls", "3000"], "botocall").finish(
        timeout_s=300
    )
    check_exit(m2, "botocall")
    result["client_call_cpu"] = json.loads(m2.stdout.strip().splitlines()[-1])
    profiled = f"connector:{ctx.s.http_client}"  # the throughput runs with the client profiled here
    if throughput and profiled in throughput["median"]:
        result["unprofiled_cpu_ms_per_1000"] = throughput["median"][profiled]["cpu_ms_per_1000"]
    log("profile: " + ", ".join(f"{k} {v:.1f}s" for k, v in list(result["stages_cpu_s"].items())[:4]))
    return result


def stage_rss(ctx: Context) -> dict[str, Any]:
    s = ctx.s
    records = default_records(s.rss_events, s.seed)
    topic = ctx.topic("rss")
    summary = produce(records, ctx.stack.bootstrap, ctx.stack.registry_url, topic, progress=False,
                      total=len(records))
    del records
    log(f"produced {summary.produced:,} events for the memory run in {summary.elapsed_s:.0f}s")
    # A disk-backed emulator: a million stored events must not fill this machine's memory.
    emu = start_emulator(s, ctx.cleanup, "rss", "--max-requests-per-second", "1e9", "--db",
                         str(s.work_dir / "rss-emulator.sqlite"), core=ctx.service_core)
    tracking = ctx.name("rss")
    config = connector_config(ctx, topic=topic, emulator=emu, tracking_id=tracking)
    progress: list[tuple[float, int]] = []
    stop = threading.Event()

    def poll_stats() -> None:
        while not stop.wait(1.0):
            try:
                progress.append((time.time(), int(emu.stats()["accepted_events"])))
            except OSError:
                continue

    poller = threading.Thread(target=poll_stats, daemon=True)
    poller.start()
    try:
        m = start_connector(ctx, config, interval_s=0.5).finish(timeout_s=300 + s.rss_events / 300)
    finally:
        stop.set()
        poller.join()
    check_exit(m, "rss connector")
    delivered = int(emu.stats()["accepted_events"])
    samples = [(x.t, x.rss_kb / 1024) for x in m.samples]
    active = [p for p in progress if p[1] > 0]
    t_first = active[0][0] if active else m.samples[0].t
    t_last = next((t for t, n in progress if n >= delivered), m.samples[-1].t)

    def rss_when(fraction: float) -> float:
        target = delivered * fraction
        t = next((t for t, n in progress if n >= target), t_last)
        return max((mb for ts, mb in samples if ts <= t), default=0.0)

    out = {
        "events": s.rss_events,
        "delivered": delivered,
        "peak_rss_mb": m.maxrss_kb / 1024,  # VmHWM, sampled every 0.5 s
        "rss_at_10pct_mb": rss_when(0.1),
        "rss_at_50pct_mb": rss_when(0.5),
        "rss_at_100pct_mb": rss_when(1.0),
        "events_per_s": delivered / max(1e-6, t_last - t_first),
        "wall_s": m.wall_s,
        "cpu_total_s": m.cpu_total_s,
        "samples": [(round(t - m.samples[0].t, 2), round(mb, 1)) for t, mb in samples],
        "progress": [(round(t - m.samples[0].t, 2), n) for t, n in progress],
    }
    log(f"memory: peak RSS {out['peak_rss_mb']:.0f} MB over {delivered:,} events "
        f"(at 10% {out['rss_at_10pct_mb']:.0f} MB, 50% {out['rss_at_50pct_mb']:.0f} MB)")
    return out
