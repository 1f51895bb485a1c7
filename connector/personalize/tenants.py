"""One tenant's unknown tracker must not stop the others: what the sink does about it.

A record may name its own tracker (PutEvents' and PutActionInteractions' `trackingId`). When the
service answers ResourceNotFoundException for the route's *configured* tracker, the route is
misconfigured: that stays systemic (consumption pauses, /readyz false). For a tracker a record
named, it is that tenant's problem: after a short bounded retry (a tracker just created may not be
visible yet everywhere) every entry of the batch is dead-lettered as UnknownTracker, and the
route goes on with the other tenants' records.

A tracker found unknown is remembered for `remember_s` (60 s): its later batches are dead-lettered
at once, without a call, so a tenant sending to a tracker that does not exist costs one short
retry per minute instead of one per batch, and no request quota. A tracker created meanwhile is
used again at most a minute later; the records dead-lettered in between can be replayed (`dlq
replay`). Records name any string, so the memory is bounded (the oldest forgotten first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

import botocore.exceptions

from connector.records import BatchKey, UnknownTracker

NOT_FOUND = "ResourceNotFoundException"
OTHER = "other"  # the tracker label of a tracker outside the allow-list (or without one)


def named_tracker(key: BatchKey) -> str | None:
    """The tracker a batch's call names (None: the operation names a dataset, not a tracker)."""
    tracker = key.request([]).params.get("trackingId")
    return tracker if isinstance(tracker, str) else None


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, botocore.exceptions.ClientError) and exc.response.get("Error", {}).get("Code") == NOT_FOUND


class TenantTrackers:
    """What a route's sink knows of the trackers other than its own. Thread-safe (the pool's threads)."""

    def __init__(self, route_tracker: str | None = None, allowed: Iterable[str] | None = None, *,
                 attempts: int = 4, remember_s: float = 60.0, max_remembered: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`route_tracker`: the route's configured tracker (None: the route sends to datasets, or
        the sink does not know, and every ResourceNotFoundException stays systemic). `allowed`:
        the route's allow-list, the only trackers that may be metric label values."""
        self.route_tracker = route_tracker
        self.allowed = None if allowed is None else frozenset(allowed)
        self.attempts = attempts
        self.remember_s = remember_s
        self._max_remembered = max_remembered
        self._clock = clock
        self._lock = threading.Lock()
        self._unknown: OrderedDict[str, float] = OrderedDict()  # tracker -> when it was found unknown

    def tenant_of(self, key: BatchKey) -> str | None:
        """The tracker of a batch when it is a record's own, not the route's (else None)."""
        if self.route_tracker is None:
            return None
        tracker = named_tracker(key)
        return tracker if tracker is not None and tracker != self.route_tracker else None

    def label(self, tracker: str) -> str:
        """The tracker as a metric label value: itself only when the allow-list bounds the set."""
        return tracker if self.allowed is not None and tracker in self.allowed else OTHER

    def found_unknown(self, tracker: str) -> None:
        with self._lock:
            self._unknown.pop(tracker, None)
            self._unknown[tracker] = self._clock()
            while len(self._unknown) > self._max_remembered:
                self._unknown.popitem(last=False)

    def known_unknown_for(self, tracker: str) -> float | None:
        """Seconds since `tracker` was found unknown, while that is remembered (else None)."""
        if not self._unknown:  # the common case, without the lock
            return None
        with self._lock:
            since = self._unknown.get(tracker)
            if since is None:
                return None
            age = self._clock() - since
            if age >= self.remember_s:
                del self._unknown[tracker]
                return None
            return age

    def rejection(self, tracker: str, why: str) -> UnknownTracker:
        """The dead-letter error of an entry for `tracker`; `why` is the service's answer."""
        return UnknownTracker(
            f"trackingId {tracker!r}: the service does not know this event tracker ({why}); it is the "
            f"record's own, not the route's tracking_id, so only this tenant's records are dead-lettered. "
            "Create the tracker or correct the records' trackingId, then replay the dead letters "
            "(personalize-connector dlq replay)"
        )
