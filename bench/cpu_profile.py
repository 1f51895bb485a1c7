"""Where the connector's CPU goes per event: cProfile of an in-process worker run, by stage.

The worker is built exactly as `personalize-connector run` builds it (`build_worker`) and run until
idle. The main thread (poll, decode, map, batch, offsets, commit) and every PutEvents pool thread
get their own cProfile.Profile with a per-thread CPU clock (time.thread_time), so time a thread
spends blocked (waiting for the broker, the emulator's answer or the rate limiter) is not counted.

Stage times are cumulative times of each stage's entry functions, minus the time of other entry
functions they call directly, so no CPU is counted twice. What no entry covers is "worker loop and
other" (main thread) or "sink other" (pool threads).

    python -m bench.cpu_profile --config connector.yaml --out profile.json [--pstats FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

MAIN_OTHER = "worker loop and other (main thread)"
POOL_OTHER = "sink other (rate limiter, metrics, pool)"
# (path suffix, function name) -> stage; paths are matched with "/" separators.
MAIN_ENTRIES: dict[tuple[str, str], str] = {
    ("connector/kafka/confluent.py", "poll"): "consume (librdkafka consume -> SourceRecord)",
    ("connector/decode/confluent_wire.py", "decode"): "decode (Avro, fastavro)",
    ("connector/destinations/events.py", "to_event"): "map + validate (EventMapper)",
    ("connector/pipeline/batcher.py", "add"): "batch (SessionBatcher)",
    ("connector/pipeline/batcher.py", "due"): "batch (SessionBatcher)",
    ("connector/pipeline/batcher.py", "next_due_in"): "batch (SessionBatcher)",
    ("connector/pipeline/offsets.py", "track"): "offsets (track / done)",
    # The worker's stages moved to connector/pipeline/ (the worker.py entries matched nothing since,
    # so their time was reported as "worker loop and other").
    ("connector/pipeline/offsets.py", "done"): "offsets (track / done)",
    ("connector/pipeline/partitions.py", "leave"): "offsets (track / done)",
    ("connector/pipeline/dead_letters.py", "passed"): "per-record partition state (dead-letter runs)",
    ("connector/pipeline/dispatch.py", "submit"): "hand-off to the call pool",
    ("connector/pipeline/dispatch.py", "settle"): "completion (outcomes back, metrics)",
    ("connector/pipeline/committer.py", "commit"): "commit (sync commit + metadata)",
}
POOL_ENTRIES: dict[tuple[str, str], str] = {
    ("botocore/client.py", "_api_call"): "PutEvents call (boto3/botocore/urllib3)",
    # The default client's call: without this entry its whole cost (serialise, sign, send) was
    # counted as "sink other", which is how "sink other" came to be 57 % of the profile.
    ("connector/personalize/lean_client.py", "_call"): "PutEvents call (lean client: JSON, SigV4, keep-alive pool)",
    ("connector/personalize/sink.py", "_deliver"): POOL_OTHER,
}

Key = tuple[str, int, str]


def _entry(key: Key, entries: dict[tuple[str, str], str]) -> str | None:
    filename, _, func = key
    path = filename.replace("\\", "/")
    for (suffix, name), stage in entries.items():
        if func == name and path.endswith(suffix):
            return stage
    return None


def stage_times(stats: pstats.Stats, entries: dict[tuple[str, str], str], other: str) -> dict[str, float]:
    """CPU seconds per stage: entry cumtime minus the entry functions it calls directly."""
    raw: dict[Key, Any] = stats.stats  # type: ignore[attr-defined]
    entry_of = {key: _entry(key, entries) for key in raw}
    out: dict[str, float] = defaultdict(float)
    for key, (_cc, _nc, _tt, ct, _callers) in raw.items():
        stage = entry_of[key]
        if stage is None:
            continue
        out[stage] += ct
        # Subtract the time of this entry when called directly from another entry (already counted).
        for caller, caller_stats in raw[key][4].items():
            caller_stage = entry_of.get(caller)
            if caller_stage is not None:
                out[caller_stage] -= caller_stats[3]
    total = float(stats.total_tt)  # type: ignore[attr-defined]
    rest = total - sum(out.values())
    out[other] = out.get(other, 0.0) + rest
    return dict(out)


def package_of(filename: str, func: str) -> str:
    path = filename.replace("\\", "/")
    if filename == "~":
        if "cimpl" in func:
            return "confluent_kafka (C)"
        return "builtins"
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/connector/" in path:
        return "connector/" + path.split("/connector/", 1)[1]
    if "/lib/python" in path:
        return "stdlib:" + path.rsplit("/", 1)[1].removesuffix(".py")
    return path


def top_functions(stats: pstats.Stats, n: int = 25) -> list[dict[str, Any]]:
    raw: dict[Key, Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    return [
        {
            "function": f"{package_of(f, fn)}:{line}({fn})" if f != "~" else fn,
            "package": package_of(f, fn),
            "calls": nc,
            "tottime_s": tt,
            "cumtime_s": ct,
        }
        for (f, line, fn), (_cc, nc, tt, ct, _callers) in rows
    ]


def by_package(stats: pstats.Stats) -> dict[str, float]:
    raw: dict[Key, Any] = stats.stats  # type: ignore[attr-defined]
    out: dict[str, float] = defaultdict(float)
    for (f, _line, fn), (_cc, _nc, tt, _ct, _callers) in raw.items():
        out[package_of(f, fn)] += tt
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _sinks(worker: Any) -> list[Any]:
    """The worker's PutEvents sinks (one per route, or the single `_sink` of older workers)."""
    routes = getattr(getattr(worker, "_routes", None), "routes", None)
    if routes:
        return list({id(r.sink): r.sink for r in routes}.values())
    return [worker._sink]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_profile")
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--pstats", help="also dump the merged profile (for snakeviz, pstats)")
    parser.add_argument("--idle-s", type=float, default=3.0)
    args = parser.parse_args(argv)

    import logging

    from connector.app import build_worker
    from connector.config import load_settings

    logging.basicConfig(level=logging.WARNING)
    worker = build_worker(load_settings(args.config))
    local = threading.local()
    pool_profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def profiled(send: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def profiled_send(batch: Any) -> Any:
            prof = getattr(local, "prof", None)
            if prof is None:
                prof = local.prof = cProfile.Profile(time.thread_time)
                with lock:
                    pool_profiles.append(prof)
            prof.enable()
            try:
                return send(batch)
            finally:
                prof.disable()

        return profiled_send

    for sink in _sinks(worker):
        sink.send = profiled(sink.send)
    main_prof = cProfile.Profile(time.thread_time)
    cpu0, wall0 = time.process_time(), time.time()
    main_prof.enable()
    code = worker.run(exit_when_idle_s=args.idle_s)
    main_prof.disable()
    cpu1, wall1 = time.process_time(), time.time()
    summary = worker.metrics.summary()

    main_stats = pstats.Stats(main_prof)
    pool_stats = pstats.Stats(pool_profiles[0]) if pool_profiles else None
    if pool_stats is not None:
        for prof in pool_profiles[1:]:
            pool_stats.add(prof)
    stages = stage_times(main_stats, MAIN_ENTRIES, MAIN_OTHER)
    if pool_stats is not None:
        stages.update(stage_times(pool_stats, POOL_ENTRIES, POOL_OTHER))
    combined = pstats.Stats(main_prof)
    for prof in pool_profiles:
        combined.add(prof)
    if args.pstats:
        combined.dump_stats(args.pstats)
    result = {
        "exit_code": code,
        "summary": summary,
        "events": summary["events_delivered"],
        "process_cpu_s": cpu1 - cpu0,
        "wall_s": wall1 - wall0,
        "profiled_main_cpu_s": float(main_stats.total_tt),  # type: ignore[attr-defined]
        "profiled_pool_cpu_s": float(pool_stats.total_tt) if pool_stats is not None else 0.0,  # type: ignore[attr-defined]
        "pool_threads": len(pool_profiles),
        "stages_cpu_s": dict(sorted(stages.items(), key=lambda kv: -kv[1])),
        "by_package_cpu_s": by_package(combined),
        "top_functions": top_functions(combined),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return code


if __name__ == "__main__":
    sys.exit(main())
