"""The pure arithmetic of the headlines: ratios paired by repetition, their median, the verdicts.

Every headline is a ratio of two contenders measured in the same repetition of the same run
(side by side, on the same data and emulator), so a drift of the machine's load between
repetitions moves both sides; the page shows the median of those paired ratios and each of them.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def paired(numerators: Sequence[dict[str, Any]], denominators: Sequence[dict[str, Any]], key: str,
           denominator_key: str | None = None) -> list[float]:
    """numerator[key] / denominator[key] for each repetition (both lists in repetition order)."""
    other = denominator_key or key
    return [float(n[key]) / float(d[other]) for n, d in zip(numerators, denominators, strict=True)]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def at_most(measured: float, target: float) -> tuple[str, str]:
    """(verdict, by how much) for a target of the form `measured <= target`."""
    if measured != measured:  # NaN: nothing was measured
        return "MISS", "n/a"
    return ("PASS" if measured <= target else "MISS"), f"{100 * (measured / target - 1):+.1f} %"
