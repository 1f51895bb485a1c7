"""One rate bucket per quota the service counts, shared by every route that sends there.

Amazon Personalize counts its request quotas per dataset group: PutEvents and PutActionInteractions
calls per event tracker (the `trackingId` of the call), PutItems, PutUsers and PutActions calls per
dataset (the `datasetArn`). So two routes to one tracker share one bucket, and a record that names
its own tracker (a tenant's) gets a bucket of its own, like the service gives it.

A route's rate (`routes[].max_requests_per_second`, `personalize.max_requests_per_second`) is the
quota of the whole consumer group. Each worker sends at its share of it: the fraction of the
partitions feeding the bucket that the group assigned to this worker (`connector.pipeline.quota_share`
measures it). Over the group the shares add up to one, so N workers stay within the quota together
and, with a backlog on every partition, use it all.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from connector.personalize.ratelimit import AdaptiveRateLimiter
from connector.records import Request

log = logging.getLogger(__name__)

# A worker with none of a bucket's partitions keeps this fraction of its quota, not zero: a call
# already admitted (a retry, a revoked partition's last batch) must still be able to finish.
MIN_SHARE = 0.01
# Record-supplied trackers are open-ended (a hostile topic may name a new one in every record):
# past this many buckets the least recently used one is forgotten. A forgotten bucket that comes
# back starts with a burst of 1/40 s of its quota, which no quota notices.
MAX_BUCKETS = 4096


@dataclass(frozen=True, slots=True)
class QuotaKey:
    """What the service counts a call against: a tracker (`trackingId`) or a dataset (`datasetArn`)."""

    kind: str  # "tracker" or "dataset"
    resource: str

    @classmethod
    def of(cls, request: Request) -> QuotaKey:
        if (tracking_id := request.params.get("trackingId")) is not None:
            return cls("tracker", str(tracking_id))
        return cls("dataset", str(request.params.get("datasetArn", "")))


@dataclass(frozen=True, slots=True)
class Share:
    """Partitions of a route's topics: assigned to this worker, and in the whole group."""

    assigned: int
    total: int


@dataclass(slots=True)
class _Bucket:
    limiter: AdaptiveRateLimiter
    routes: set[str] = field(default_factory=set)  # the routes whose calls it admitted


class Quotas:
    """The buckets of one worker, by quota key; thread-safe (the pool's threads look them up)."""

    def __init__(self, route_rates: Mapping[str, float], *, max_buckets: int = MAX_BUCKETS) -> None:
        self._rates = dict(route_rates)
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[QuotaKey, _Bucket] = OrderedDict()
        self._shares: dict[str, Share] = {}
        self._lock = threading.Lock()

    def bucket(self, request: Request, route: str) -> AdaptiveRateLimiter:
        """The bucket `request` of `route` is counted in (created on its first call)."""
        key = QuotaKey.of(request)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(AdaptiveRateLimiter(self._rates[route]))
                while len(self._buckets) > self._max_buckets:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
            if route not in bucket.routes:
                if any(self._rates[r] != self._rates[route] for r in bucket.routes):
                    log.warning("routes %s and %s send to the same %s %s with different rates; using the lowest",
                                ", ".join(sorted(bucket.routes)), route, key.kind, key.resource)
                bucket.routes.add(route)
                self._resize(bucket)
            return bucket.limiter

    def set_shares(self, shares: Mapping[str, Share]) -> None:
        """This worker's share of each route's partitions changed (a rebalance, new partitions)."""
        with self._lock:
            self._shares = dict(shares)
            for bucket in self._buckets.values():
                self._resize(bucket)

    def share(self, route: str) -> float:
        """The fraction of `route`'s quota this worker uses (1.0 before the first assignment)."""
        with self._lock:
            return self._fraction({route})

    @property
    def configured_rate(self) -> float:
        """The routes' configured rates together: the most the group may send, whatever the shares."""
        return sum(self._rates.values())

    def total_rate(self) -> float:
        """Requests per second this worker may send over all its buckets (what its calls in flight
        must sustain)."""
        with self._lock:
            return sum(bucket.limiter.quota for bucket in self._buckets.values())

    def _fraction(self, routes: set[str]) -> float:
        shares = [self._shares[r] for r in routes if r in self._shares and self._shares[r].total]
        if not shares:
            return 1.0  # no assignment known yet (or replaying): the configured rate as is
        fraction = sum(s.assigned for s in shares) / sum(s.total for s in shares)
        return max(MIN_SHARE, min(1.0, fraction))

    def _resize(self, bucket: _Bucket) -> None:
        rate = min(self._rates[r] for r in bucket.routes)
        bucket.limiter.set_quota(rate * self._fraction(bucket.routes))
