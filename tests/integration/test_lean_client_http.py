"""LeanPersonalizeClient against the real emulator: same stored records and same failure classes as
boto3's client (connector.personalize.sink.make_client)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fixtures.emulator import EmulatorProcess

from connector.personalize.lean_client import LeanPersonalizeClient
from connector.personalize.sink import Failure, classify, make_client

pytestmark = pytest.mark.integration

REGION = "us-east-1"
SENT = datetime.datetime(2024, 3, 4, 5, 6, 7, 891011, tzinfo=datetime.UTC)


def _clients(url: str) -> dict[str, Any]:
    return {"boto3": make_client(REGION, url, max_pool_connections=2), "lean": LeanPersonalizeClient(REGION, url, 2)}


def _events() -> list[dict[str, Any]]:
    return [
        {
            "eventId": "e-1",
            "eventType": "watch",
            "eventValue": 4.5,
            "itemId": "i-1",
            "properties": '{"device": "tv", "name": "caf\\u00e9"}',
            "sentAt": SENT,
            "recommendationId": "r-1",
            "impression": ["i-1", "i-2"],
            "metricAttribution": {"eventAttributionSource": "email"},
        },
        {"eventType": "click", "itemId": "i-2", "sentAt": SENT.replace(microsecond=0)},
    ]


def _strip(records: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in keys} for r in records]


def test_records_stored_as_via_boto3(aws_env: None, emulator: EmulatorProcess, tracking_id: str) -> None:
    clients = _clients(emulator.url)
    for name, client in clients.items():
        client.put_events(trackingId=f"{tracking_id}-{name}", sessionId="s-1", userId="u-1", eventList=_events())
        client.put_events(trackingId=f"{tracking_id}-{name}", sessionId="s-2", eventList=_events()[1:])
        arn = f"arn:aws:personalize:us-east-1:1:dataset/{tracking_id}-{name}"
        client.put_items(datasetArn=f"{arn}/ITEMS", items=[{"itemId": "i-1", "properties": '{"genre": "x"}'}])
        client.put_users(datasetArn=f"{arn}/USERS", users=[{"userId": "u-1", "properties": '{"age": 3}'}])
    stored = {
        name: (
            _strip(emulator.events(f"{tracking_id}-{name}"), "receivedAt", "trackingId"),
            _strip(emulator.items(f"arn:aws:personalize:us-east-1:1:dataset/{tracking_id}-{name}/ITEMS"),
                   "receivedAt", "datasetArn"),
            _strip(emulator.users(f"arn:aws:personalize:us-east-1:1:dataset/{tracking_id}-{name}/USERS"),
                   "receivedAt", "datasetArn"),
        )
        for name in clients
    }
    assert len(stored["boto3"][0]) == 3 and stored["boto3"][1] and stored["boto3"][2]
    assert stored["lean"] == stored["boto3"]


def test_actions_and_action_interactions_stored_as_via_boto3(
    aws_env: None, emulator: EmulatorProcess, tracking_id: str
) -> None:
    interactions = [
        {"actionId": "a-1", "sessionId": "s-1", "timestamp": SENT, "eventType": "Taken", "userId": "u-1",
         "eventId": "e-1", "recommendationId": "r-1", "impression": ["a-1", "a-2"], "properties": '{"n": "1"}'},
        {"actionId": "a-2", "sessionId": "s-1", "timestamp": SENT.replace(microsecond=0), "eventType": "Viewed"},
    ]
    stored = {}
    for name, client in _clients(emulator.url).items():
        arn = f"arn:aws:personalize:us-east-1:1:dataset/{tracking_id}-{name}/ACTIONS"
        client.put_actions(datasetArn=arn, actions=[{"actionId": "a-1", "properties": '{"value": "100"}'}])
        client.put_action_interactions(trackingId=f"{tracking_id}-{name}", actionInteractions=interactions)
        stored[name] = (_strip(emulator.actions(arn), "receivedAt", "datasetArn"),
                        _strip(emulator.action_interactions(f"{tracking_id}-{name}"), "receivedAt", "trackingId"))
    assert len(stored["boto3"][0]) == 1 and len(stored["boto3"][1]) == 2
    assert stored["boto3"][1][0]["timestamp"] == SENT.timestamp()  # epoch seconds, as botocore writes them
    assert stored["lean"] == stored["boto3"]


def _failures(clients: dict[str, Any], call: Callable[[Any], None]) -> dict[str, tuple[Failure, str]]:
    seen: dict[str, tuple[Failure, str]] = {}
    for name, client in clients.items():
        with pytest.raises(Exception) as info:
            call(client)
        code = (getattr(info.value, "response", None) or {}).get("Error", {}).get("Code", type(info.value).__name__)
        seen[name] = (classify(info.value), str(code))
    return seen


def test_invalid_input(aws_env: None, emulator: EmulatorProcess, tracking_id: str) -> None:
    seen = _failures(
        _clients(emulator.url),
        lambda c: c.put_events(trackingId=tracking_id, sessionId="s", eventList=[{"eventType": "", "sentAt": SENT}]),
    )
    assert seen["lean"] == seen["boto3"] == (Failure.INVALID, "InvalidInputException")


def test_resource_not_found(aws_env: None, start_emulator: Callable[..., EmulatorProcess]) -> None:
    emulator = start_emulator("--tracking-id", "other")
    seen = _failures(
        _clients(emulator.url), lambda c: c.put_events(trackingId="nope", sessionId="s", eventList=_events())
    )
    assert seen["lean"] == seen["boto3"] == (Failure.SYSTEMIC, "ResourceNotFoundException")


def test_throttling(aws_env: None, start_emulator: Callable[..., EmulatorProcess]) -> None:
    emulator = start_emulator("--max-requests-per-second", "1")

    def burst(client: Any) -> None:
        tracker = f"t-{uuid.uuid4().hex[:8]}"
        for _ in range(20):
            client.put_events(trackingId=tracker, sessionId="s", eventList=_events())

    seen = _failures(_clients(emulator.url), burst)
    assert seen["lean"] == seen["boto3"] == (Failure.THROTTLED, "ThrottlingException")


def test_server_error(aws_env: None, fresh_emulator: EmulatorProcess, tracking_id: str) -> None:
    fresh_emulator.set_faults(error_ratio=1)
    seen = _failures(
        _clients(fresh_emulator.url), lambda c: c.put_events(trackingId=tracking_id, sessionId="s", eventList=_events())
    )
    assert seen["lean"] == seen["boto3"]
    assert seen["lean"][0] is Failure.TRANSIENT


@pytest.mark.parametrize("mode", ["close", "503"])
def test_outage(aws_env: None, fresh_emulator: EmulatorProcess, tracking_id: str, mode: str) -> None:
    clients = _clients(fresh_emulator.url)
    fresh_emulator.set_faults(outage=True, outage_mode=mode)
    seen = _failures(clients, lambda c: c.put_events(trackingId=tracking_id, sessionId="s", eventList=_events()))
    assert seen["lean"] == seen["boto3"]
    assert seen["lean"][0] is Failure.TRANSIENT
    fresh_emulator.set_faults(outage=False)
    for client in clients.values():  # both recover on their next call
        client.put_events(trackingId=tracking_id, sessionId="s", eventList=_events())
