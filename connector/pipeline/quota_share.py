"""This worker's share of each route's request quota, from the consumer group's assignment.

The quota belongs to the consumer group (connector.personalize.quotas). Kafka already divides the
group's work: every partition of the subscribed topics is assigned to exactly one member. So a
worker's share of a route's quota is the fraction of the route's partitions it holds. Over the
group the fractions add up to one at every moment a rebalance leaves behind, without any message
between the workers: a member that joins, leaves, crashes (once its session times out) or is
scaled away changes the assignment, and each member recomputes its share on its next turn.
A partition being revoked is still counted by its old owner while it flushes it: the new owner
only gets it once the revoke is over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from connector.kafka.base import Source
from connector.personalize.quotas import Quotas, Share
from connector.records import TopicPartition
from connector.routes import RouteTable

log = logging.getLogger(__name__)


class QuotaShare:
    """Recomputes the shares when the assignment changes, and every `refresh_s` (partitions added)."""

    def __init__(self, source: Source, routes: RouteTable, quotas: Quotas, *, refresh_s: float = 30.0,
                 retry_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._source, self._routes, self._quotas = source, routes, quotas
        self._refresh_s, self._retry_s, self._clock = refresh_s, retry_s, clock
        self._assigned: set[TopicPartition] | None = None
        self._counts: dict[str, int] = {}
        self._next = 0.0
        self.shares: dict[str, Share] = {}

    def check(self, assigned: set[TopicPartition]) -> None:
        """On the loop's thread, every turn (a set comparison unless something changed or is due)."""
        now = self._clock()
        if assigned == self._assigned and now < self._next:
            return
        counts = self._source.partition_counts(self._routes.topics(), timeout_s=2.0)
        if counts is not None:
            self._counts, self._next = counts, now + self._refresh_s
        else:
            self._next = now + self._retry_s  # no metadata now: keep the last counts, ask again soon
        self._assigned = set(assigned)
        shares = self._shares(assigned)
        if shares != self.shares:
            self.shares = shares
            self._quotas.set_shares(shares)
            log.info("quota shares: %s", ", ".join(f"{route} {s.assigned}/{s.total} partitions"
                                                   for route, s in sorted(shares.items())) or "none")

    def _shares(self, assigned: set[TopicPartition]) -> dict[str, Share]:
        totals: dict[str, int] = {}
        for topic, count in self._counts.items():
            if (route := self._route(topic)) is not None:
                totals[route] = totals.get(route, 0) + count
        held: dict[str, int] = {}
        for tp in assigned:
            if (route := self._route(tp.topic)) is not None:
                held[route] = held.get(route, 0) + 1
        # A partition assigned but not in the counts (metadata older than the assignment) is
        # counted in the total too, so a share never exceeds one.
        return {route: Share(held.get(route, 0), max(totals.get(route, 0), held.get(route, 0)))
                for route in totals.keys() | held.keys()}

    def _route(self, topic: str) -> str | None:
        try:
            return self._routes.for_topic(topic).name
        except LookupError:  # a topic of the cluster's that no route subscribes to
            return None
