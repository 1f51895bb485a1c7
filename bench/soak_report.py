# ruff: noqa: RUF001  (the page uses the multiplication and minus signs on purpose)
"""The soak's section of docs/benchmarks.md, from a `bench.soak` result.

The section sits in the page's hand-written part (above `make bench`'s generated marker, which
keeps that part as it is) between its own begin/end markers: a new soak replaces only what is
between them. Re-render from a saved run:  python -m bench.soak_report SOAK.json [PAGE.md]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from bench.report import GENERATED_MARKER
from bench.settings import REPO_ROOT
from bench.soak_analysis import FLAT_TOLERANCE, WARM_UP_FRACTION

BEGIN_MARKER = "<!-- soak: begin (written by `make soak`, bench/soak.py; replaced by the next soak) -->"
END_MARKER = "<!-- soak: end -->"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def _num(x: float | None, fmt: str = ",.0f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _span(r: dict[str, Any], fault: str) -> float | None:
    """Seconds from a fault's start to its end, from the run's timeline."""
    times = {what: t for t, what in r["timeline"] if what.startswith(fault)}
    start, end = times.get(f"{fault} starts"), times.get(f"{fault} ends")
    return end - start if start is not None and end is not None else None


def _behind(r: dict[str, Any]) -> int:
    """Good events produced during the traffic minus events accepted by its end (per-minute counters)."""
    rows = r["per_minute"]
    produced = sum(int(row["produced"]) for row in rows) * (1 - float(r["settings"]["bad_ratio"]))
    return max(0, round(produced - sum(int(row["accepted_events"]) for row in rows)))


def render(r: dict[str, Any]) -> str:
    s, books, m = r["settings"], r["accounting"], r["machine"]
    minutes = s["minutes"]
    lines = [
        BEGIN_MARKER,
        "",
        f"## Soak: {minutes:g} minutes near the quota",
        "",
        f"`{r['command']}` ({m['date']}, {m['cores']} cores, load average {r['load_at_start'][0]:.1f} at the "
        f"start and {r['load_at_end'][0]:.1f} at the end of the traffic: a shared, busy machine). The real "
        f"`personalize-connector run` process with default settings apart from the quota "
        f"(`max_requests_per_second: {s['quota_rps']:g}`), a dead-letter topic and "
        "`decode.unknown_schema_retry_s: 0` (the default 60 s wait would hold a partition for a minute at the "
        f"first unknown schema id); the emulator enforces a quota of {s['quota_rps']:g} req/s. Live traffic: "
        f"{r['events_per_s']:,.0f} events/s in sessions of ~{s['session_length']} events (ideal calls = "
        f"{100 * s['load']:.0f} % of the quota), {100 * s['bad_ratio']:g} % bad records of every kind "
        f"(undecodable, unknown schema id, truncated, invalid for PutEvents), a throttling burst "
        f"({100 * s['burst_throttle_ratio']:.0f} % of calls answered ThrottlingException for {s['burst_s']:g} s) "
        f"every {s['burst_every_s']:g} s and one broker restart in the middle (stopped, {s['broker_down_s']:g} s "
        f"pause, started again on its data: away {_num(_span(r, 'broker restart'), '.0f')} s in all). "
        f"The worker used {100 * r['worker_cpu_share']:.0f} % of a core; it drained "
        f"{_num(r['drain_s'], '.0f')} s after the last record was produced.",
        "",
        "| check | measured | verdict |",
        "|---|---|---|",
    ]
    for res in r["resources"]:
        unit = f" {res['unit']}" if res["unit"] else ""
        lines.append(
            f"| {res['name']} flat (peak after warm-up ≤ {1 + FLAT_TOLERANCE:.2f} × reference) | reference "
            f"{_num(res['reference'])}{unit}, peak {_num(res['peak'])}{unit} ({_num(res['growth'], '.2f')}×), "
            f"end {_num(res['end'])}{unit} | {_verdict(res['flat'])} |"
        )
    lines += [
        f"| delivered + dead-lettered = produced | {books['delivered']:,} + {books['dead_lettered']:,} = "
        f"{books['delivered'] + books['dead_lettered']:,} of {books['produced']:,} (missing {books['missing']:,}, "
        f"dead letters expected {books['bad']:,}, unexpected {books['unexpected']:,}; redelivered: "
        f"{books['duplicates']:,} events, {books['dead_letter_duplicates']:,} dead letters) | "
        f"{_verdict(books['balanced'])} |",
        f"| calls per event vs ideal | {r['calls_per_event']:.4f} vs {r['ideal_calls_per_event']:.4f} "
        f"({r['accepted_calls']:,} accepted calls, ideal {r['ideal_calls']:,}: "
        f"{r['accepted_calls'] / max(1, r['ideal_calls']):.3f}×); {r['throttled_calls']:,} throttled calls "
        "retried | reported |",
        f"| kept up with the traffic | {_behind(r):,} events produced in the {minutes:g} minutes but not yet "
        f"accepted at the end of them; drained {_num(r['drain_s'], '.0f')} s later | reported |",
        f"| end-to-end latency (Kafka timestamp → emulator receivedAt) | p50 {_num(r['latency_p50_ms'])} ms, "
        f"p99 {_num(r['latency_p99_ms'])} ms, max {_num(r['latency_max_ms'])} ms | reported |",
        "",
        f"Warm-up is the first {100 * WARM_UP_FRACTION:.0f} % of the run; a resource's reference is its median "
        f"over the next {100 * WARM_UP_FRACTION:.0f} %, its end the median over the last "
        f"{100 * WARM_UP_FRACTION:.0f} %, sampled every {s['sample_interval_s']:g} s from /proc/PID "
        "(VmRSS and Threads from status, the entries of fd). The ideal is the fewest calls that keep every "
        "event within the default 1 s linger (sessions split greedily, ≤ 10 events per call). Latency: sentAt "
        "is stamped when the record is produced (its Kafka CreateTime, same millisecond).",
        "",
        "| minute | peak RSS (MB) | fds | threads | produced | accepted events | throttled calls | faults |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in r["per_minute"]:
        lo, hi = 60 * (row["minute"] - 1), 60 * row["minute"]
        faults = sorted({what.rsplit(" ", 1)[0] for t, what in r["timeline"] if lo <= t < hi and "starts" in what})
        lines.append(f"| {row['minute']} | {_num(row['rss_mb'])} | {row['fds']} | {row['threads']} | "
                     f"{row['produced']:,} | {row['accepted_events']:,} | {row['throttled_calls']:,} | "
                     f"{', '.join(faults)} |")
    lines += ["", END_MARKER]
    return "\n".join(lines)


def replace_section(page: str, section: str) -> str:
    """`page` with the soak section replaced, or inserted above the generated part (else at the end)."""
    if BEGIN_MARKER in page and END_MARKER in page:
        before, rest = page.split(BEGIN_MARKER, 1)
        after = rest.split(END_MARKER, 1)[1]
        return before + section + after
    if GENERATED_MARKER in page:
        before, after = page.split(GENERATED_MARKER, 1)
        return before.rstrip() + "\n\n" + section + "\n\n" + GENERATED_MARKER + after
    return page.rstrip() + "\n\n" + section + "\n"


def write_section(r: dict[str, Any], docs: Path) -> None:
    page = docs.read_text() if docs.exists() else ""
    docs.write_text(replace_section(page, render(r)))


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) not in (1, 2):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    target = Path(args[1]) if len(args) == 2 else REPO_ROOT / "docs" / "benchmarks.md"
    write_section(json.loads(Path(args[0]).read_text()), target)
    print(f"wrote {target}")
