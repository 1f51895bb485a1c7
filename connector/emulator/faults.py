"""Fault injection settings, changed at run time through POST /_emulator/faults."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

ERROR_STATUSES = (500, 503)
OUTAGE_MODES = ("close", "503")

Injected = Literal["outage", "throttle", "error"]


@dataclass
class Faults:
    throttle_ratio: float = 0.0  # share of calls answered with ThrottlingException
    error_ratio: float = 0.0  # share of calls answered with a 5xx
    error_status: int = 500  # 500 InternalFailure or 503 ServiceUnavailable
    latency_ms: float = 0.0  # added before every API call is answered
    outage: bool = False  # every API call fails
    outage_mode: str = "close"  # "close": drop the connection unanswered; "503": ServiceUnavailable
    # Calls carrying an event/item whose itemId is listed are rejected with InvalidInputException,
    # as the service rejects events it considers invalid beyond what the model says (tests of the
    # connector's bisection need an event that passes client-side validation yet is refused).
    reject_item_ids: list[str] = field(default_factory=list)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a partial update; raises ValueError (and changes nothing) if any value is bad."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        candidate = Faults(**{**asdict(self), **changes})
        candidate._check()
        for name in changes:
            setattr(self, name, getattr(candidate, name))

    def _check(self) -> None:
        for name in ("throttle_ratio", "error_ratio"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1")
        if not _is_number(self.latency_ms) or self.latency_ms < 0:
            raise ValueError("latency_ms must be a non-negative number")
        if not isinstance(self.outage, bool):
            raise ValueError("outage must be true or false")
        if self.error_status not in ERROR_STATUSES or isinstance(self.error_status, bool):
            raise ValueError(f"error_status must be one of {ERROR_STATUSES}")
        if not isinstance(self.reject_item_ids, list) or not all(isinstance(i, str) for i in self.reject_item_ids):
            raise ValueError("reject_item_ids must be a list of strings")
        if self.outage_mode not in OUTAGE_MODES:
            raise ValueError(f"outage_mode must be one of {OUTAGE_MODES}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def pick(self, rng: random.Random) -> Injected | None:
        """Which fault (if any) this call gets; outage wins, then throttling, then errors."""
        if self.outage:
            return "outage"
        if self.throttle_ratio and rng.random() < self.throttle_ratio:
            return "throttle"
        if self.error_ratio and rng.random() < self.error_ratio:
            return "error"
        return None


def rejected_entries(faults: Faults, entries: Any, list_name: str) -> list[str]:
    """Violations for entries whose itemId the faults say to reject."""
    if not faults.reject_item_ids or not isinstance(entries, list):
        return []
    rejected = set(faults.reject_item_ids)
    return [
        f"{list_name}.{i}.itemId: {entry['itemId']!r} is rejected by the emulator's reject_item_ids fault"
        for i, entry in enumerate(entries)
        if isinstance(entry, dict) and entry.get("itemId") in rejected
    ]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
