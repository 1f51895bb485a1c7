"""Figures of the adversarial runs: what was tried and what became of it, by outcome class.

Each property test records one line per run here; `fixtures/parallel.py` prints them in pytest's
terminal summary, gathering them from every pytest-xdist worker (and every test also prints its
line, visible with `-s`), so a CI log shows how much hostile input was actually tried, not only that
nothing failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

LINES: list[str] = []


def record(label: str, cases: int, outcomes: Mapping[str, int]) -> str:
    """Keep and print one line: `[label] cases=N a=.. b=..` with outcomes sorted by name."""
    parts = " ".join(f"{name}={count}" for name, count in sorted(outcomes.items()))
    line = f"[{label}] cases={cases} {parts}".rstrip()
    LINES.append(line)
    print(f"\n{line}")
    return line


class Tally:
    """Outcome counts gathered across the examples hypothesis generates for one test."""

    def __init__(self) -> None:
        self.cases = 0
        self.outcomes: Counter[str] = Counter()

    def add(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] += n

    def report(self, label: str) -> str:
        return record(label, self.cases, self.outcomes)
