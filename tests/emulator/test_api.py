"""Valid calls through the real clients (boto3 and the AWS CLI) are accepted and stored unchanged."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fixtures.emulator import EmulatorProcess, run_aws_cli, send_signed

DATASET = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


def _tid() -> str:
    return f"tracker-{uuid.uuid4()}"


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    received = record.pop("receivedAt")
    assert isinstance(received, float)
    return record


def test_put_events_round_trip(fresh_emulator: EmulatorProcess, personalize_client: Any) -> None:
    tid = _tid()
    events = [
        {
            "eventId": "e1",
            "eventType": "click",
            "eventValue": 2.5,
            "itemId": "item-1",
            "properties": json.dumps({"numberOfRatings": "12"}),
            "sentAt": dt.datetime(2024, 5, 1, 12, 30, 45, 123000, tzinfo=dt.UTC),
            "recommendationId": "rec-1",
            "impression": ["item-1", "item-2"],
            "metricAttribution": {"eventAttributionSource": "email campaign"},
        },
        {"eventType": "view", "sentAt": 1714566645},
    ]
    response = personalize_client.put_events(trackingId=tid, userId="u1", sessionId="s1", eventList=events)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200

    stored = [_strip(r) for r in fresh_emulator.events(tid)]
    expected_first = {**events[0], "sentAt": 1714566645.123}
    assert stored == [
        {"trackingId": tid, "sessionId": "s1", "userId": "u1", **expected_first},
        {"trackingId": tid, "sessionId": "s1", "userId": "u1", **events[1]},
    ]


def test_put_events_response_is_empty_json(fresh_emulator: EmulatorProcess) -> None:
    body = {"trackingId": _tid(), "sessionId": "s", "eventList": [{"eventType": "click", "sentAt": 1.5}]}
    response = send_signed(fresh_emulator.url, "/events", body)
    assert (response.status, response.json()) == (200, {})
    assert response.headers["content-type"] == "application/json"


def test_events_filter_by_tracking_id(fresh_emulator: EmulatorProcess, personalize_client: Any) -> None:
    a, b = _tid(), _tid()
    for tid in (a, b, a):
        personalize_client.put_events(trackingId=tid, sessionId="s", eventList=[{"eventType": "click", "sentAt": 1}])
    assert len(fresh_emulator.events(a)) == 2
    assert len(fresh_emulator.events(b)) == 1
    assert len(fresh_emulator.events()) == 3


def test_put_items_and_users_round_trip(fresh_emulator: EmulatorProcess, personalize_client: Any) -> None:
    items = [{"itemId": "i1", "properties": json.dumps({"genre": "Comedy|Drama"})}, {"itemId": "i2"}]
    users = [{"userId": "u1", "properties": json.dumps({"age": 30})}]
    personalize_client.put_items(datasetArn=DATASET, items=items)
    personalize_client.put_users(datasetArn=DATASET, users=users)
    assert [_strip(r) for r in fresh_emulator.items()] == [{"datasetArn": DATASET, **i} for i in items]
    assert [_strip(r) for r in fresh_emulator.users(DATASET)] == [{"datasetArn": DATASET, **u} for u in users]
    assert fresh_emulator.events() == []


# -- the real AWS CLI -------------------------------------------------------------------------------


def test_cli_shorthand(fresh_emulator: EmulatorProcess, tmp_path: Path) -> None:
    tid = _tid()
    result = run_aws_cli(
        fresh_emulator,
        "put-events",
        "--tracking-id",
        tid,
        "--session-id",
        "s1",
        "--user-id",
        "u1",
        "--event-list",
        "eventType=click,sentAt=1700000000,itemId=i1",
        "eventType=view,sentAt=1700000001,itemId=i2,eventValue=3.5",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    stored = [_strip(r) for r in fresh_emulator.events(tid)]
    common = {"trackingId": tid, "sessionId": "s1", "userId": "u1"}
    assert stored == [
        {**common, "eventType": "click", "sentAt": 1700000000, "itemId": "i1"},
        {**common, "eventType": "view", "sentAt": 1700000001, "itemId": "i2", "eventValue": 3.5},
    ]


def test_cli_json_event_list(fresh_emulator: EmulatorProcess, tmp_path: Path) -> None:
    tid = _tid()
    events = [{"eventType": "click", "sentAt": 1700000000, "properties": json.dumps({"rating": "5"})}]
    result = run_aws_cli(
        fresh_emulator,
        "put-events",
        "--tracking-id",
        tid,
        "--session-id",
        "s1",
        "--event-list",
        json.dumps(events),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert [_strip(r) for r in fresh_emulator.events(tid)] == [{"trackingId": tid, "sessionId": "s1", **events[0]}]


def test_cli_input_json(fresh_emulator: EmulatorProcess, tmp_path: Path) -> None:
    tid = _tid()
    request = {
        "trackingId": tid,
        "sessionId": "s2",
        "userId": "u2",
        "eventList": [{"eventType": "buy", "sentAt": 1700000002, "impression": ["a", "b"]}],
    }
    result = run_aws_cli(fresh_emulator, "put-events", "--cli-input-json", json.dumps(request), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    stored = [_strip(r) for r in fresh_emulator.events(tid)]
    assert stored == [{"trackingId": tid, "sessionId": "s2", "userId": "u2", **request["eventList"][0]}]


@pytest.mark.parametrize(
    "event_list",
    [
        "eventType=" + "x" * 257 + ",sentAt=1700000000",
        json.dumps([{"eventType": "x", "sentAt": 1, "properties": "[]"}]),
    ],
    ids=["shorthand-too-long", "json-properties-not-object"],
)
def test_cli_invalid_call_fails(fresh_emulator: EmulatorProcess, tmp_path: Path, event_list: str) -> None:
    tid = _tid()
    result = run_aws_cli(
        fresh_emulator,
        "put-events",
        "--tracking-id",
        tid,
        "--session-id",
        "s",
        "--event-list",
        event_list,
        tmp_path=tmp_path,
    )
    assert result.returncode != 0
    assert "InvalidInputException" in result.stderr
    assert "eventList.0." in result.stderr
    assert fresh_emulator.events(tid) == []


def test_cli_put_items(fresh_emulator: EmulatorProcess, tmp_path: Path) -> None:
    result = run_aws_cli(
        fresh_emulator,
        "put-items",
        "--dataset-arn",
        DATASET,
        "--items",
        json.dumps([{"itemId": "i9", "properties": "{}"}]),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert [_strip(r) for r in fresh_emulator.items()] == [{"datasetArn": DATASET, "itemId": "i9", "properties": "{}"}]
