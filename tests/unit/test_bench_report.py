# ruff: noqa: RUF001  (the page uses the multiplication sign on purpose)
"""The pure parts of `make bench`: paired ratios, verdicts, and the sections that show both HTTP
clients, the one-event-per-call senders and the decoders (rendered from made-up results)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench import ratios
from bench.report import _clients_section, _decode_section, _parallel_section, targets
from bench.settings import BenchSettings, default_http_client
from bench.stages import client_ratios, client_vs
from connector.config.models import PersonalizeConfig


def _lines(section: Any, data: Any) -> str:
    out: list[str] = []
    section(data, out.append)
    return "\n".join(out)


def test_ratios_are_paired_by_repetition() -> None:
    a = [{"t": 2.0}, {"t": 9.0}]
    b = [{"t": 4.0}, {"t": 10.0}]
    assert ratios.paired(a, b, "t") == [0.5, 0.9]
    assert ratios.paired(a, [{"u": 1.0}, {"u": 3.0}], "t", "u") == [2.0, 3.0]
    with pytest.raises(ValueError):  # a missing repetition is a bug, not a shorter list
        ratios.paired(a, b[:1], "t")
    assert ratios.median([3.0, 1.0, 2.0]) == 2.0
    assert math.isnan(ratios.median([]))


def test_at_most_verdicts() -> None:
    assert ratios.at_most(0.4, 0.5) == ("PASS", "-20.0 %")
    assert ratios.at_most(0.5, 0.5) == ("PASS", "+0.0 %")
    assert ratios.at_most(0.6, 0.5) == ("MISS", "+20.0 %")
    assert ratios.at_most(float("nan"), 0.5) == ("MISS", "n/a")


def test_the_default_client_is_read_from_the_config_model() -> None:
    assert default_http_client() == PersonalizeConfig().http_client


def test_clients_and_parallel_knobs_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_HTTP_CLIENTS", " lean , boto3 ")
    monkeypatch.setenv("BENCH_PARALLEL_REPEATS", "0")
    monkeypatch.setenv("BENCH_STAGES", "parallel_baseline,decode")
    s = BenchSettings.from_env()
    assert s.http_clients == ("lean", "boto3")
    assert s.parallel_repeats == 1
    assert s.stages == ("parallel_baseline", "decode")
    assert BenchSettings().http_clients == ("boto3", "lean")


def _run(eps: float, cpu_ms: float, us_per_call: float) -> dict[str, float]:
    return {"events_per_s": eps, "cpu_ms_per_1000": cpu_ms, "cpu_us_per_call": us_per_call}


RUNS = {
    "connector:boto3": [_run(8000, 100, 600), _run(9000, 90, 540)],
    "connector_full:boto3": [_run(10000, 80, 800), _run(11000, 70, 700)],
    "connector:lean": [_run(12000, 60, 360), _run(12000, 54, 324)],
    "connector_full:lean": [_run(16000, 50, 500), _run(18000, 42, 420)],
    "baseline": [_run(100, 900, 900), _run(150, 900, 900)],
    "ceiling": [_run(70000, 20, 0), _run(70000, 14, 0)],
}


def test_client_ratios_pair_each_client_with_the_same_repetitions_baseline_and_ceiling() -> None:
    c = client_ratios(RUNS, "boto3")
    assert c["speedup_vs_baseline_runs"] == [80.0, 60.0]
    assert c["speedup_vs_baseline"] == 70.0
    assert c["cpu_vs_ceiling_runs"] == [5.0, 90 / 14]
    assert c["cpu_vs_ceiling_full_runs"] == [4.0, 5.0]
    assert c["connector_full"]["cpu_us_per_call"] == 750.0
    vs = client_vs(RUNS, "lean", "boto3")
    assert vs["connector_full.cpu_us_per_call_runs"] == [0.625, 0.6]
    assert vs["connector.events_per_s_runs"] == [1.5, 12000 / 9000]


def test_clients_section_marks_the_default_client() -> None:
    tp = {"default_client": "boto3", "headline_client": "boto3",
          "clients": {c: client_ratios(RUNS, c) for c in ("boto3", "lean")},
          "vs_default_client": {"lean": client_vs(RUNS, "lean", "boto3")}}
    text = _lines(_clients_section, tp)
    assert "| `boto3` (the default) | 8,500 | 10,500 |" in text
    assert "| `lean` | 12,000 | 17,000 |" in text
    assert "`lean` vs `boto3`, paired by repetition (median; each repetition): CPU per call **0.61×**" in text
    assert "Not run." in _lines(_clients_section, None)


def _parallel(ratio_runs: list[float]) -> dict[str, Any]:
    def run(active_s: float, calls: int) -> dict[str, Any]:
        return {"active_s": active_s, "events_per_s": 20_000 / active_s, "cpu_ms_per_1000": 100.0,
                "cpu_util_in_window": 0.9, "calls": calls, "events": 20_000, "expected": 20_000}

    return {"events": 20_000, "sessions": 2_000, "senders": 4, "repeats": len(ratio_runs),
            "default_client": "boto3", "verdict_client": "boto3", "target_ratio": 0.5,
            "runs": {"senders": [run(20.0, 20_000) for _ in ratio_runs],
                     "boto3": [run(20.0 * x, 2_000) for x in ratio_runs]},
            "ratio_runs": {"boto3": ratio_runs}, "ratio": {"boto3": ratios.median(ratio_runs)}}


def test_parallel_baseline_verdict_in_the_targets_table() -> None:
    (row,) = targets({"parallel_baseline": _parallel([0.4, 0.44])})
    assert row["verdict"] == "PASS"
    assert row["measured"] == "0.42× (0.40, 0.44)"
    assert "4 parallel one-event-per-call senders" in row["target"]
    (row,) = targets({"parallel_baseline": _parallel([0.55, 0.6])})
    assert (row["verdict"], row["by"]) == ("MISS", "+15.0 %")


def test_parallel_section_shows_each_repetition_and_the_ratio() -> None:
    text = _lines(_parallel_section, _parallel([0.4, 0.5]))
    assert "| 4 one-event senders | 20.0, 20.0 | 1,000 |" in text
    assert "| one worker, `boto3` (the default) client | 8.0, 10.0 |" in text
    assert "**0.45×** |" in text
    assert "not every event arrived" not in text


def test_decode_section_has_formats_transforms_and_the_parser_choice() -> None:
    rows = [
        {"format": "avro", "records": 100, "repeats": 3, "decode_us": 10.0, "decode_and_map_us": 20.0, "vs_avro": 1.0},
        {"format": "protobuf", "records": 100, "repeats": 3, "decode_us": 12.0, "decode_and_map_us": 30.0,
         "vs_avro": 1.5},
        {"transform": "all", "records": 100, "decode_and_map_us": 25.0, "vs_plain": 1.25},
        {"parser": "typical", "bytes": 320, "json": 3.0, "orjson": 1.0, "msgspec": 1.2},
        {"validator": "typical", "fastjsonschema": 2.0, "jsonschema": 40.0},
    ]
    text = _lines(_decode_section, rows)
    assert "best of 3 runs of 100 records" in text
    assert "| protobuf | 12.00 | 30.00 | 1.50× |" in text
    assert "| all | 25.00 | 1.25× |" in text
    assert "| typical | 320 | 3.00 | 1.00 | 1.20 |" in text
    assert "2.00 µs compiled" in text
