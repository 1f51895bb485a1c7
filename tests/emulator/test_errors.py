"""Service errors (auth, unknown tracker, quota), fault injection, stats and process lifecycle."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest
from botocore import UNSIGNED
from fixtures.emulator import EmulatorProcess, make_personalize_client, send_signed

EVENTS = [{"eventType": "click", "sentAt": 1700000000}]
DATASET = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/USERS"
Start = Callable[..., EmulatorProcess]


def _put(client: Any, tracking_id: str | None = None) -> Any:
    return client.put_events(trackingId=tracking_id or f"t-{uuid.uuid4()}", sessionId="s", eventList=EVENTS)


def test_unsigned_request_is_refused(fresh_emulator: EmulatorProcess) -> None:
    body = {"trackingId": "t", "sessionId": "s", "eventList": EVENTS}
    response = send_signed(fresh_emulator.url, "/events", body, sign=False)
    assert response.status == 403
    assert response.error_type == "MissingAuthenticationTokenException"
    assert response.json() == {"message": "Missing Authentication Token"}
    assert fresh_emulator.events() == []


def test_unsigned_boto3_client_is_refused(fresh_emulator: EmulatorProcess) -> None:
    client = make_personalize_client(fresh_emulator.url, signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _put(client)
    assert caught.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_any_credentials_are_accepted(fresh_emulator: EmulatorProcess) -> None:
    response = send_signed(
        fresh_emulator.url,
        "/events",
        {"trackingId": "t", "sessionId": "s", "eventList": EVENTS},
        headers={"Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/x, Signature=bogus"},
        sign=False,
    )
    assert response.status == 200


def test_unknown_route(fresh_emulator: EmulatorProcess) -> None:
    response = send_signed(fresh_emulator.url, "/nope", {})
    assert response.status == 404
    assert response.error_type == "UnknownOperationException"


def test_unknown_tracking_id(start_emulator: Start) -> None:
    emulator = start_emulator("--tracking-id", "known-1", "--tracking-id", "known-2")
    client = make_personalize_client(emulator.url, retries={"total_max_attempts": 1})
    _put(client, "known-1")
    _put(client, "known-2")
    with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
        _put(client, "other")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "other" in str(caught.value)
    assert {e["trackingId"] for e in emulator.events()} == {"known-1", "known-2"}


def test_rate_limit_is_per_tracking_id(start_emulator: Start) -> None:
    # 0.01 req/s: a burst of one call, then the next token after 100 s, so no timing dependence.
    emulator = start_emulator("--max-requests-per-second", "0.01")
    client = make_personalize_client(emulator.url, retries={"total_max_attempts": 1})
    _put(client, "a")
    with pytest.raises(client.exceptions.ClientError) as caught:
        _put(client, "a")
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    _put(client, "b")  # its own bucket
    client.put_users(datasetArn=DATASET, users=[{"userId": "u"}])  # datasets have buckets too
    with pytest.raises(client.exceptions.ClientError, match="ThrottlingException"):
        client.put_users(datasetArn=DATASET, users=[{"userId": "u"}])
    stats = emulator.stats()
    assert (stats["accepted_calls"], stats["throttled_calls"]) == (3, 2)
    assert len(emulator.events()) == 2


def test_rate_limit_burst(start_emulator: Start) -> None:
    emulator = start_emulator("--max-requests-per-second", "5")
    client = make_personalize_client(emulator.url, retries={"total_max_attempts": 1})
    outcomes: list[str] = []
    for _ in range(50):
        try:
            _put(client, "burst")
            outcomes.append("ok")
        except client.exceptions.ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    assert outcomes.count("ok") >= 5  # the bucket starts full
    assert outcomes.count("ThrottlingException") >= 1
    assert set(outcomes) == {"ok", "ThrottlingException"}


def test_retrying_client_rides_out_throttling(start_emulator: Start) -> None:
    emulator = start_emulator("--max-requests-per-second", "20")
    client = make_personalize_client(emulator.url, retries={"mode": "standard", "max_attempts": 10})
    for _ in range(40):
        _put(client, "patient")
    assert len(emulator.events("patient")) == 40


# -- fault injection --------------------------------------------------------------------------------


def test_faults_partial_update_and_reset(fresh_emulator: EmulatorProcess) -> None:
    assert fresh_emulator.faults()["throttle_ratio"] == 0
    fresh_emulator.set_faults(throttle_ratio=0.25)
    current = fresh_emulator.set_faults(latency_ms=5)
    assert (current["throttle_ratio"], current["latency_ms"], current["outage"]) == (0.25, 5, False)
    fresh_emulator.reset()
    assert fresh_emulator.faults() == {
        "throttle_ratio": 0.0,
        "error_ratio": 0.0,
        "error_status": 500,
        "latency_ms": 0.0,
        "outage": False,
        "outage_mode": "close",
        "reject_item_ids": [],
    }


@pytest.mark.parametrize(
    "bad", [{"throttle_ratio": 1.5}, {"error_ratio": "x"}, {"outage": 1}, {"error_status": 404}, {"nope": 1}]
)
def test_invalid_fault_settings_rejected(fresh_emulator: EmulatorProcess, bad: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError, match="400"):
        fresh_emulator.set_faults(**bad)
    assert fresh_emulator.faults()["throttle_ratio"] == 0


def test_injected_throttling(fresh_emulator: EmulatorProcess, personalize_client: Any) -> None:
    fresh_emulator.set_faults(throttle_ratio=1)
    with pytest.raises(personalize_client.exceptions.ClientError) as caught:
        _put(personalize_client)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert fresh_emulator.stats()["throttled_calls"] == 1
    assert fresh_emulator.events() == []


@pytest.mark.parametrize(("status", "code"), [(500, "InternalFailure"), (503, "ServiceUnavailableException")])
def test_injected_server_error(
    fresh_emulator: EmulatorProcess, personalize_client: Any, status: int, code: str
) -> None:
    fresh_emulator.set_faults(error_ratio=1, error_status=status)
    with pytest.raises(personalize_client.exceptions.ClientError) as caught:
        _put(personalize_client)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert caught.value.response["Error"]["Code"] == code
    assert fresh_emulator.stats()["server_errors"] == 1


def test_injected_errors_are_partial(fresh_emulator: EmulatorProcess, personalize_client: Any) -> None:
    fresh_emulator.set_faults(error_ratio=0.5)
    outcomes = []
    for _ in range(200):
        try:
            _put(personalize_client)
            outcomes.append("ok")
        except personalize_client.exceptions.ClientError:
            outcomes.append("error")
    # P(all 200 the same) is 2**-199: not flaky in practice.
    assert 0 < outcomes.count("ok") < 200
    stats = fresh_emulator.stats()
    assert stats["accepted_calls"] + stats["server_errors"] == stats["calls"] == 200


def test_outage_drops_connections(fresh_emulator: EmulatorProcess, personalize_client: Any) -> None:
    fresh_emulator.set_faults(outage=True)
    with pytest.raises((botocore.exceptions.HTTPClientError, botocore.exceptions.ConnectionError)):
        _put(personalize_client)
    assert fresh_emulator.stats()["dropped_connections"] == 1
    fresh_emulator.set_faults(outage=False)
    _put(personalize_client)  # the client recovers on a new connection


def test_outage_as_503(fresh_emulator: EmulatorProcess, personalize_client: Any) -> None:
    fresh_emulator.set_faults(outage=True, outage_mode="503")
    with pytest.raises(personalize_client.exceptions.ClientError) as caught:
        personalize_client.put_items(datasetArn=DATASET, items=[{"itemId": "i"}])
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503


def test_injected_latency(fresh_emulator: EmulatorProcess, personalize_client: Any) -> None:
    fresh_emulator.set_faults(latency_ms=300)
    started = time.monotonic()
    _put(personalize_client)
    assert time.monotonic() - started >= 0.3
    assert len(fresh_emulator.events()) == 1


def test_inspection_endpoints_ignore_faults(fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults(outage=True, latency_ms=10_000)
    assert fresh_emulator.stats()["calls"] == 0
    assert fresh_emulator.events() == []


# -- stats ------------------------------------------------------------------------------------------


def test_stats_counts(fresh_emulator: EmulatorProcess, personalize_client: Any) -> None:
    raw = make_personalize_client(fresh_emulator.url, parameter_validation=False, retries={"total_max_attempts": 1})
    personalize_client.put_events(trackingId="t", sessionId="s", eventList=EVENTS * 3)
    personalize_client.put_items(datasetArn=DATASET, items=[{"itemId": "a"}, {"itemId": "b"}])
    personalize_client.put_users(datasetArn=DATASET, users=[{"userId": "u"}])
    with pytest.raises(raw.exceptions.InvalidInputException):
        raw.put_events(trackingId="t", sessionId="", eventList=EVENTS)
    send_signed(fresh_emulator.url, "/events", {}, sign=False)
    fresh_emulator.set_faults(throttle_ratio=1)
    with pytest.raises(raw.exceptions.ClientError):
        raw.put_events(trackingId="t", sessionId="s", eventList=EVENTS)
    stats = fresh_emulator.stats()
    assert {k: v for k, v in stats.items() if k not in ("operations", "errors")} == {
        "calls": 6,
        "accepted_calls": 3,
        "accepted_events": 3,
        "accepted_items": 2,
        "accepted_users": 1,
        "accepted_actions": 0,
        "accepted_action_interactions": 0,
        "rejected_calls": 2,
        "throttled_calls": 1,
        "server_errors": 0,
        "dropped_connections": 0,
    }
    assert stats["errors"] == {
        "InvalidInputException": 1,
        "MissingAuthenticationTokenException": 1,
        "ThrottlingException": 1,
    }
    assert stats["operations"]["PutEvents"] == {
        "calls": 4,
        "accepted": 1,
        "accepted_entries": 3,
        "rejected": 2,
        "throttled": 1,
    }
    assert stats["operations"]["PutItems"] == {"calls": 1, "accepted": 1, "accepted_entries": 2}


# -- lifecycle --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_exits_zero_on_signal(start_emulator: Start, sig: int) -> None:
    emulator = start_emulator()
    _put(make_personalize_client(emulator.url))  # leaves an idle keep-alive connection open
    assert emulator.stop(sig) == 0
    assert "Traceback" not in emulator.stderr()
