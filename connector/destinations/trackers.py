"""The tracker a record's entry goes to: the one the record names, else its route's own.

Several tenants may share a topic, each record naming its tracker. `personalize.allowed_tracking_ids`
(or a route's own list) bounds which trackers records may name; the route's own tracker is always
allowed. A record naming another one is dead-lettered at validation (TrackerNotAllowed), before a
call is spent on it, so a typo or a stranger's tracker never reaches the service.
"""

from __future__ import annotations

from collections.abc import Iterable

from connector.records import TrackerNotAllowed

_SHOWN_CHARS = 256  # a record may name anything: the dead letter's message quotes at most this much


class RecordTrackers:
    """Which tracker each record's entry is sent to, for one route."""

    def __init__(self, route_tracker: str, allowed: Iterable[str] | None, route: str) -> None:
        self.route_tracker = route_tracker
        self.allowed = None if allowed is None else frozenset(allowed) | {route_tracker}
        self._route = route

    def tracker(self, named: str | None) -> str:
        """The tracker of a record that names `named` (None or "": it names none)."""
        if not named:
            return self.route_tracker
        if self.allowed is not None and named not in self.allowed:
            shown = named if len(named) <= _SHOWN_CHARS else named[:_SHOWN_CHARS] + "..."
            raise TrackerNotAllowed(
                f"trackingId: {shown!r} is not among the trackers route {self._route!r} accepts from records "
                "(personalize.allowed_tracking_ids and the route's tracking_id); add it to "
                "allowed_tracking_ids to send its records, or correct the record's trackingId, then "
                "replay the dead letter"
            )
        return named
