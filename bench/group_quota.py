"""Stage `group_quota`: N = 1..4 workers of one consumer group, each configured with the whole
quota Q, drain a backlog into an emulator that enforces Q with 30 ms of latency.

The workers share Q through the group's assignment (connector.pipeline.quota_share): with 12
partitions every N divides them evenly. For each N the steady rate is measured over a window that
opens once every member logged its share, from the emulator's clock (receivedAt, stamped on
arrival); the figure is the ratio to Q, measured in the same run for every N.
"""

from __future__ import annotations

import time
from typing import Any

import yaml

from bench.procs import Running, aws_env, bin_path, start_emulator
from bench.stages import Context, log, sliding_max
from bench.workload import create_topic
from connector.tools.produce import produce
from connector.tools.workload import generate

QUOTA = 200  # requests per second per tracker
LATENCY_MS = 30
PARTITIONS = 12  # divisible by 1, 2, 3 and 4
EVENTS, SESSIONS = 30_000, 6_000  # ~5 events per call: ~30 s of backlog at the quota per run
WINDOW_S = 8.0
MEMBERS = (1, 2, 3, 4)


def _config(ctx: Context, topic: str, url: str, tracking_id: str, group: str) -> Any:
    config = {
        "kafka": {"bootstrap_servers": ctx.stack.bootstrap, "group_id": group, "topics": [topic]},
        "schema_registry": {"url": ctx.stack.registry_url},
        "personalize": {"tracking_id": tracking_id, "region": "us-east-1", "endpoint_url": url,
                        "max_requests_per_second": QUOTA, "http_client": ctx.s.http_client},
        "observability": {"metrics_port": 0, "log_format": "text"},
    }
    path = ctx.s.work_dir / f"{tracking_id}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _settled(workers: list[Running], n: int, timeout_s: float = 90.0) -> bool:
    line = f"quota shares: events {PARTITIONS // n}/{PARTITIONS} partitions"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(line in w.log_path.read_text(errors="replace") for w in workers):
            return True
        time.sleep(0.2)
    return False


def stage_group_quota(ctx: Context) -> dict[str, Any]:
    emulator = start_emulator(ctx.s, ctx.cleanup, "group-quota", "--max-requests-per-second", str(QUOTA))
    emulator.set_faults(latency_ms=LATENCY_MS)
    topic = f"bench-{ctx.run_id}-group-quota"
    create_topic(ctx.stack.bootstrap, topic, PARTITIONS)
    produce(generate(EVENTS, SESSIONS, seed=ctx.s.seed), ctx.stack.bootstrap, ctx.stack.registry_url, topic,
            progress=False)
    runs = []
    for n in MEMBERS:
        emulator.reset()
        tracking_id = ctx.name(f"group-{n}")
        config = _config(ctx, topic, emulator.url, tracking_id, ctx.name(f"group-{n}-members"))
        cmd = [bin_path("personalize-connector"), "run", "--config", str(config), "--log-format", "text"]
        workers = [Running(cmd, ctx.s.work_dir / f"{tracking_id}-w{i}.log", env=aws_env()) for i in range(n)]
        try:
            settled = _settled(workers, n)
            start = time.time()
            time.sleep(WINDOW_S)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.finish(timeout_s=60)
        calls = sorted({(t, session) for t, session, _, _ in emulator.received(tracking_id)})
        times = [t for t, _ in calls]
        in_window = [t for t in times if start <= t < start + WINDOW_S]
        stats = emulator.stats()
        run = {
            "members": n,
            "settled": settled,
            "steady_rps": len(in_window) / WINDOW_S,
            "share_of_quota": len(in_window) / WINDOW_S / QUOTA,
            "max_1s_window_calls": sliding_max(times),
            "accepted_calls": len(times),
            "throttled_calls": int(stats["throttled_calls"]),
        }
        log(f"group quota N={n}: {run['steady_rps']:.0f} req/s ({100 * run['share_of_quota']:.0f} % of {QUOTA}), "
            f"busiest 1 s {run['max_1s_window_calls']}, throttled {run['throttled_calls']}"
            + ("" if settled else " (the members never all logged their share)"))
        runs.append(run)
    return {"quota_rps": QUOTA, "latency_ms": LATENCY_MS, "partitions": PARTITIONS, "window_s": WINDOW_S,
            "runs": runs}
