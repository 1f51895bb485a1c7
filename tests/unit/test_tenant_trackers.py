"""Tenants isolated: a tracker a record names that the service does not know is that tenant's
problem (dead-lettered as UnknownTracker after a short retry, the route goes on), the route's own
unknown tracker stays systemic; `allowed_tracking_ids` stops other trackers at validation; metric
labels name a tracker only when an allow-list bounds the set."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from connector.app import build_routes
from connector.config import (
    ActionInteractionMappingConfig,
    ActionInteractionsRoute,
    ConfigError,
    EventsRoute,
    MappingConfig,
    load_settings,
)
from connector.destinations.action_interactions import ActionInteractionMapper, TrackerSessionKey
from connector.destinations.entities import EntityKey
from connector.destinations.events import EventMapper, SessionKey
from connector.destinations.items import ITEMS
from connector.observability import Metrics
from connector.personalize.ratelimit import AdaptiveRateLimiter
from connector.personalize.sink import Backoff, Failure, PutEventsSink
from connector.personalize.tenants import TenantTrackers
from connector.records import Batch, BatchKey, Event, SourceRecord, TrackerNotAllowed

OWN, STRANGER, OTHER_TENANT = "tracker-own", "tracker-unknown", "tracker-known"
SENT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Service:
    """A personalize-events client that knows some trackers: ResourceNotFoundException for the rest."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.calls: list[str] = []

    def _answer(self, trackingId: str, **_: Any) -> None:
        self.calls.append(trackingId)
        if trackingId not in self.known:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "ResourceNotFoundException",
                           "Message": f"trackingId: event tracker {trackingId!r} does not exist"},
                 "ResponseMetadata": {"HTTPStatusCode": 404}}, "PutEvents")

    put_events = put_action_interactions = _answer

    def put_items(self, datasetArn: str, **_: Any) -> None:
        self.calls.append(datasetArn)
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "ResourceNotFoundException", "Message": "dataset does not exist"},
             "ResponseMetadata": {"HTTPStatusCode": 404}}, "PutItems")


def batch(key: BatchKey, n: int = 3) -> Batch:
    return Batch(key, [Event(key, {"eventId": f"e{i}", "eventType": "view", "sentAt": SENT},
                             SourceRecord("t", 0, i, None, b"v")) for i in range(n)])


def sink_for(service: Service, tenants: TenantTrackers, sleeps: list[float], metrics: Metrics | None = None,
             stop_after_calls: int | None = None) -> PutEventsSink:
    """A sink whose waits are recorded, not slept; the worker stops once `stop_after_calls` were made."""
    stop = threading.Event()

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if stop_after_calls is not None and len(service.calls) >= stop_after_calls:
            stop.set()

    return PutEventsSink(service, AdaptiveRateLimiter(1000), tenants=tenants, sleep=sleep, stop=stop,
                         metrics=metrics, systemic_backoff=Backoff(base_s=0.001, cap_s=0.001))


@pytest.mark.parametrize("key", [SessionKey(STRANGER, "s-1", "u-1", "clicks"),
                                 TrackerSessionKey("clicks", STRANGER, "s-1")], ids=["events", "action_interactions"])
def test_a_record_trackers_batch_is_dead_lettered_after_a_short_retry_and_the_route_goes_on(key: BatchKey) -> None:
    service, sleeps, metrics = Service({OWN, OTHER_TENANT}), [], Metrics()
    sink = sink_for(service, TenantTrackers(OWN), sleeps, metrics)

    outcome = sink.send(batch(key))
    assert not outcome.delivered and not outcome.abandoned and len(outcome.rejected) == 3
    for _, error in outcome.rejected:
        assert error.stage == "send" and error.error_class == "UnknownTracker" and error.tenant_scoped
        assert f"trackingId {STRANGER!r}: the service does not know this event tracker" in error.message
        assert "ResourceNotFoundException" in error.message and "dlq replay" in error.message
    # Bounded: 4 calls, 3 waits of at most 0.5 + 1 + 1 s; and the route is not paused.
    assert service.calls == [STRANGER] * 4 and outcome.calls == 4 and len(sleeps) == 3 and sum(sleeps) <= 2.5
    assert outcome.failures == {Failure.UNKNOWN_TRACKER: 4}
    assert sink.systemic_error is None and sink.unready_reason() is None
    assert metrics.registry.get_sample_value("pkc_unknown_tracker_dead_letters_total",
                                             {"route": "clicks", "tracking_id": "other"}) == 3
    assert metrics.registry.get_sample_value("pkc_put_events_calls_total", {"outcome": "unknown_tracker"}) == 4

    # The other tenants' batches (and the route's own) are delivered by the same sink.
    for tracker in (OWN, OTHER_TENANT):
        other = sink.send(batch(SessionKey(tracker, "s-2", None, "clicks")))
        assert len(other.delivered) == 3 and not other.rejected


def test_a_tracker_found_unknown_is_remembered_for_a_minute_then_asked_again() -> None:
    service, sleeps, clock = Service({OWN}), [], Clock()
    sink = sink_for(service, TenantTrackers(OWN, clock=clock), sleeps)
    key = SessionKey(STRANGER, "s-1", None, "clicks")
    sink.send(batch(key))
    assert len(service.calls) == 4

    clock.now += 59
    later = sink.send(batch(key, 2))
    assert len(service.calls) == 4 and later.calls == 0 and len(sleeps) == 3  # no call, no wait
    assert [e.error_class for _, e in later.rejected] == ["UnknownTracker"] * 2
    assert "59s ago; not asked again yet" in later.rejected[0][1].message

    clock.now += 1  # forgotten: asked again, with the same short retry (created meanwhile? delivered)
    service.known.add(STRANGER)
    assert len(sink.send(batch(key)).delivered) == 3 and len(service.calls) == 5


def test_the_memory_of_unknown_trackers_is_bounded() -> None:
    tenants = TenantTrackers(OWN, max_remembered=2)
    for tracker in ("a", "b", "c"):
        tenants.found_unknown(tracker)
    assert tenants.known_unknown_for("a") is None
    assert tenants.known_unknown_for("b") is not None and tenants.known_unknown_for("c") is not None


def test_the_routes_own_unknown_tracker_stays_systemic_and_rejects_nothing() -> None:
    service: Service = Service(set())
    sink = sink_for(service, TenantTrackers(OWN), [], stop_after_calls=6)
    outcome = sink.send(batch(SessionKey(OWN, "s-1", None, "clicks")))
    assert len(service.calls) == 6 and not outcome.rejected and len(outcome.abandoned) == 3
    assert sink.systemic_error is not None and "ResourceNotFoundException" in sink.systemic_error


@pytest.mark.parametrize("tenants", [TenantTrackers(), TenantTrackers(None, ["x"])], ids=["no-tracker", "dataset"])
def test_without_a_route_tracker_every_not_found_stays_systemic(tenants: TenantTrackers) -> None:
    """A sink that does not know its route's tracker (as before), or a dataset route."""
    service = Service(set())
    sink = sink_for(service, tenants, [], stop_after_calls=1)
    key = EntityKey("catalogue", ITEMS, ARN, 0) if tenants.allowed else SessionKey(STRANGER, "s", None, "clicks")
    outcome = sink.send(batch(key))
    assert not outcome.rejected and outcome.abandoned and sink.systemic_error is not None


def test_a_stop_during_the_short_retry_abandons_the_batch() -> None:
    service = Service({OWN})
    sink = sink_for(service, TenantTrackers(OWN), [], stop_after_calls=1)
    outcome = sink.send(batch(SessionKey(STRANGER, "s-1", None, "clicks")))
    assert len(outcome.abandoned) == 3 and not outcome.rejected and len(service.calls) == 1


def test_labels_name_a_tracker_only_when_the_allow_list_bounds_the_set() -> None:
    service, metrics = Service({OWN}), Metrics()
    sink = sink_for(service, TenantTrackers(OWN, [STRANGER]), [], metrics)
    sink.send(batch(SessionKey(STRANGER, "s-1", None, "clicks"), 2))
    assert metrics.registry.get_sample_value("pkc_unknown_tracker_dead_letters_total",
                                             {"route": "clicks", "tracking_id": STRANGER}) == 2
    assert TenantTrackers(OWN, [STRANGER]).label("not-listed") == "other"
    assert TenantTrackers(OWN).label(STRANGER) == "other"


# ----------------------------------------------------------------------------------- allowed_tracking_ids


def event_record(tracker: str | None) -> dict[str, Any]:
    return {"trackingId": tracker, "sessionId": "s-1", "userId": "u-1", "eventType": "view", "sentAt": SENT,
            "eventId": "e-1"}


def interaction_record(tracker: str | None) -> dict[str, Any]:
    return {"trackingId": tracker, "actionId": "a-1", "sessionId": "s-1", "eventType": "Taken",
            "timestamp": SENT, "eventId": "e-1"}


@pytest.mark.parametrize(("mapper", "record"), [
    (EventMapper(MappingConfig(), OWN, "clicks", allowed_tracking_ids=[OTHER_TENANT]), event_record),
    (ActionInteractionMapper(ActionInteractionMappingConfig(), OWN, "clicks", [OTHER_TENANT]), interaction_record),
], ids=["events", "action_interactions"])
def test_a_record_naming_a_tracker_outside_the_allow_list_is_invalid(mapper: Any, record: Any) -> None:
    source = SourceRecord("t", 0, 7, None, b"v")
    for allowed in (OTHER_TENANT, OWN, None, ""):  # the route's own is always allowed, and the default
        assert mapper.to_event(record(allowed), source).key.tracking_id == (allowed or OWN)
    with pytest.raises(TrackerNotAllowed) as caught:
        mapper.to_event(record(STRANGER), source)
    error = caught.value
    assert error.stage == "validate" and error.error_class == "TrackerNotAllowed" and error.tenant_scoped
    assert f"trackingId: {STRANGER!r} is not among the trackers route 'clicks' accepts" in error.message
    assert "allowed_tracking_ids" in error.message
    with pytest.raises(TrackerNotAllowed) as long:
        mapper.to_event(record("x" * 10_000), source)
    assert len(long.value.message) < 600  # a record's garbage is quoted, not copied whole


def test_without_an_allow_list_any_tracker_a_record_names_is_used() -> None:
    event = EventMapper(MappingConfig(), OWN).to_event(event_record(STRANGER), SourceRecord("t", 0, 1, None, b"v"))
    assert event.key.tracking_id == STRANGER  # type: ignore[attr-defined]


CONFIG = """
kafka: {bootstrap_servers: "localhost:9092", topics: [interactions]}
schema_registry: {url: "http://127.0.0.1:1"}
personalize: {tracking_id: tracker-own%s}
routes:
  - {name: clicks, destination: action_interactions, topics: [clicks], tracking_id: tracker-ai%s}
  - {name: catalogue, destination: items, topics: [items], dataset_arn: "%s"}
"""


def settings_text(personalize: str = "", route: str = "") -> str:
    return CONFIG % (personalize, route, ARN)


def test_allowed_tracking_ids_reach_every_tracker_route_and_its_sink(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(settings_text(", allowed_tracking_ids: [a, b]", ", allowed_tracking_ids: [c]"))
    settings = load_settings(path, {})
    events, clicks, _ = settings.effective_routes()
    assert isinstance(events, EventsRoute) and isinstance(clicks, ActionInteractionsRoute)
    assert events.allowed_tracking_ids == ["a", "b"] and clicks.allowed_tracking_ids == ["c"]  # its own wins
    trackers = {}
    for route in build_routes(settings, Metrics()):
        assert isinstance(route.sink, PutEventsSink)
        trackers[route.name] = (route.sink.tenants.route_tracker, route.sink.tenants.allowed)
    assert trackers == {"events": ("tracker-own", frozenset({"a", "b"})), "clicks": ("tracker-ai", frozenset({"c"})),
                        "catalogue": (None, None)}

    path.write_text(settings_text())
    assert all(getattr(r, "allowed_tracking_ids", None) is None for r in load_settings(path, {}).effective_routes())


@pytest.mark.parametrize(("value", "expected"), [
    ("['']", "personalize.allowed_tracking_ids.0"),
    (f"['{'x' * 257}']", "personalize.allowed_tracking_ids.0"),
    ("tracker-a", "personalize.allowed_tracking_ids"),
    ("[" + ",".join(f"t{i}" for i in range(1001)) + "]", "personalize.allowed_tracking_ids"),
])
def test_allowed_tracking_ids_are_validated_at_start(tmp_path: Path, value: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(settings_text(f", allowed_tracking_ids: {value}"))
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert expected in str(caught.value)


def test_an_empty_allow_list_accepts_only_each_routes_own_tracker(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(settings_text(", allowed_tracking_ids: []"))
    events = load_settings(path, {}).effective_routes()[0]
    assert isinstance(events, EventsRoute) and events.allowed_tracking_ids == []
