"""`make bench`: start a private stack, produce the workloads once, run every stage, write the page.

    python -m bench.run          # everything (the memory stage last; BENCH_SKIP_RSS=1 skips it)

Parameters come from BENCH_* environment variables (bench/settings.py). Raw results go to
$BENCH_WORK_DIR/results.json; docs/benchmarks.md and docs/benchmarks/*.png are rewritten only when
every requested stage succeeded. Everything started here is stopped at the end, also on failure.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from types import FrameType
from typing import Any

from bench import decode_cost, group_quota, parallel_baseline, stages
from bench.procs import Cleanup, pin_pid, start_emulator, start_stack
from bench.report import write_page
from bench.settings import BenchSettings, command_line, machine_facts


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks, which stop everything


def run(s: BenchSettings) -> dict[str, Any]:
    results: dict[str, Any] = {"settings": s.as_dict(), "machine": machine_facts(),
                               "command": command_line()}
    print(json.dumps({"settings": results["settings"], "machine": results["machine"]}, indent=1), file=sys.stderr)
    started = time.time()
    cleanup = Cleanup()
    try:
        if s.pin:
            # The runner (producer of the live replay, /proc sampling) shares the service core.
            os.sched_setaffinity(0, {s.service_core})
        stack = start_stack(s, cleanup)
        if s.pin:
            for pid in stack.pids:
                pin_pid(pid, s.service_core)
        emulator = start_emulator(s, cleanup, "main", "--max-requests-per-second", "1e9",
                                  core=s.service_core if s.pin else None)
        ctx = stages.Context(s, stack, cleanup, emulator)
        results["workloads"] = stages.produce_workloads(ctx)
        if s.wants("throughput"):
            results["throughput"] = stages.stage_throughput(ctx)
        if s.wants("parallel_baseline"):
            results["parallel_baseline"] = parallel_baseline.stage_parallel_baseline(ctx)
        if s.wants("linger"):
            results["linger"] = stages.stage_linger(ctx, results.get("throughput"))
        if s.wants("quota"):
            results["quota"] = stages.stage_quota(ctx)
        if s.wants("group_quota"):
            results["group_quota"] = group_quota.stage_group_quota(ctx)
        if s.wants("profile"):
            results["profile"] = stages.stage_profile(ctx, results.get("throughput"))
        if s.wants("rss"):
            results["rss"] = stages.stage_rss(ctx)
        if s.wants("decode"):
            # In-memory, no stack needed; last, so the stack's processes are idle by now.
            results["decode"] = decode_cost.measure(s.decode_records, s.decode_repeats)
    finally:
        results["elapsed_s"] = time.time() - started
        results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        (s.work_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
        cleanup.run()
    return results


def main() -> int:
    s = BenchSettings.from_env()
    s.work_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        results = run(s)
    except Exception as exc:
        print(f"bench: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"bench: partial results and logs in {s.work_dir}; {s.docs} was not changed", file=sys.stderr)
        return 1
    # A run of some stages only would replace the page's other sections with "Not run.".
    docs = s.docs if set(s.stages) >= set(BenchSettings().stages) else s.work_dir / "benchmarks.md"
    write_page(results, docs)
    print(f"bench: wrote {docs} and its charts in {results['elapsed_s'] / 60:.1f} min; "
          f"raw results in {s.work_dir / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
