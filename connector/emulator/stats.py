"""Counters behind GET /_emulator/stats."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from connector.emulator.storage import KINDS

# Outcome of one API call -> the top-level counter it increments (besides `calls`).
_OUTCOME_TOTALS = {
    "accepted": "accepted_calls",
    "rejected": "rejected_calls",
    "throttled": "throttled_calls",
    "server_error": "server_errors",
    "dropped": "dropped_connections",
}


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._totals: Counter[str] = Counter()
        self._per_operation: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._errors: Counter[str] = Counter()

    def record(self, operation: str, outcome: str, entries: int = 0, error: str | None = None) -> None:
        """One API call; `entries` is how many events/items/users it stored."""
        self._totals["calls"] += 1
        self._totals[_OUTCOME_TOTALS[outcome]] += 1
        per_op = self._per_operation[operation]
        per_op["calls"] += 1
        per_op[outcome] += 1
        if entries:
            per_op["accepted_entries"] += entries
        if error:
            self._errors[error] += 1

    def add_entries(self, kind: str, n: int) -> None:
        self._totals[_accepted(kind)] += n

    def as_dict(self) -> dict[str, Any]:
        totals = {"calls": 0, **{_accepted(kind): 0 for kind in KINDS}}
        totals.update({name: 0 for name in _OUTCOME_TOTALS.values()})
        totals.update(self._totals)
        return {
            **totals,
            "errors": dict(self._errors),
            "operations": {op: dict(counts) for op, counts in self._per_operation.items()},
        }


def _accepted(kind: str) -> str:
    """The counter of a kind's stored entries: accepted_events, ..., accepted_action_interactions."""
    return "accepted_" + kind.replace("-", "_")
