"""The soak's verdicts (bench/soak_analysis.py) and how its section lands on the page (bench/soak_report.py)."""

from __future__ import annotations

import random

from bench.report import GENERATED_MARKER
from bench.soak_analysis import LiveCallCounter, account, flatness
from bench.soak_report import BEGIN_MARKER, END_MARKER, replace_section
from bench.workload import ideal_live_calls


def test_the_online_call_counter_matches_the_offline_ideal() -> None:
    rng = random.Random(3)
    for linger_s in (0.0, 0.25, 1.0, 5.0):
        arrivals: list[tuple[str, float]] = []
        t = 0.0
        for _ in range(5_000):
            t += rng.expovariate(200)
            arrivals.append((f"s{rng.randrange(60)}", t))
        counter = LiveCallCounter(linger_s)
        for session, at in arrivals:
            counter.add(session, at)
        assert counter.calls == ideal_live_calls(arrivals, linger_s)
        assert counter.events == len(arrivals)


def test_a_call_holds_at_most_ten_events_and_closes_after_the_linger() -> None:
    counter = LiveCallCounter(1.0)
    for i in range(25):
        counter.add("s", i * 0.01)  # 25 events in a quarter second: 10 + 10 + 5
    assert counter.calls == 3
    counter.add("s", 10.0)  # long after the last call opened: a new one
    assert counter.calls == 4


def test_a_level_that_settles_after_warm_up_is_flat_and_a_climb_is_not() -> None:
    # 100 s run: warm-up 0-10 s (anything goes), reference 10-20 s.
    settling = [(t, 50.0 + (100.0 if t < 10 else 0.0) + (t % 3)) for t in range(101)]
    flat = flatness("RSS", "MB", settling, 100)
    assert flat.flat and flat.reference == 51.0 and flat.peak == 52.0
    climbing = [(t, 100.0 + 0.2 * t) for t in range(101)]  # +20 % from the reference by the end
    grown = flatness("RSS", "MB", climbing, 100)
    assert not grown.flat and grown.growth > 1.1
    one_more_thread = [(t, 20.0 + (2.0 if t == 70 else 0.0)) for t in range(101)]
    assert flatness("threads", "", one_more_thread, 100).flat  # 22 <= 1.1 x 20
    assert not flatness("threads", "", [(t, 20.0 + (3.0 if t == 70 else 0.0)) for t in range(101)], 100).flat


def test_no_samples_after_warm_up_is_not_flat() -> None:
    assert not flatness("RSS", "MB", [(1.0, 10.0)], 100).flat


def test_accounting_balances_only_when_every_good_event_is_delivered_and_every_bad_one_dead_lettered() -> None:
    expected = {"e1", "e2", "e3"}
    # Redelivery after a broker restart: an event accepted twice, a bad record dead-lettered twice.
    ok = account(expected, ["e1", "e2", "e2", "e3"], produced=4, bad=1, dead_letter_sources=[(0, 7), (0, 7)])
    assert ok.balanced and ok.duplicates == 1 and ok.missing == 0
    assert ok.dead_lettered == 1 and ok.dead_letter_duplicates == 1
    lost = account(expected, ["e1", "e2"], produced=4, bad=1, dead_letter_sources=[(0, 7)])
    assert not lost.balanced and lost.missing == 1
    # The sum alone is not enough: a good event dead-lettered and a bad one "delivered" cancel out.
    swapped = account(expected, ["e1", "e2", "bad"], produced=4, bad=1, dead_letter_sources=[(0, 7), (1, 2)])
    assert not swapped.balanced and swapped.unexpected == 1


def test_the_section_replaces_its_previous_run_and_leaves_the_generated_part_alone() -> None:
    page = f"# Benchmarks\n\nintro\n\n{GENERATED_MARKER}\n\ngenerated tables\n"
    first = replace_section(page, f"{BEGIN_MARKER}\nrun 1\n{END_MARKER}")
    assert first.index("run 1") < first.index(GENERATED_MARKER)
    second = replace_section(first, f"{BEGIN_MARKER}\nrun 2\n{END_MARKER}")
    assert "run 1" not in second and "run 2" in second
    assert second.split(GENERATED_MARKER, 1)[1] == page.split(GENERATED_MARKER, 1)[1]
    assert second.count(BEGIN_MARKER) == 1
