"""LeanPersonalizeClient builds, signs and parses exactly what boto3's personalize-events client does.

No network: boto3's request is captured by a `before-send` handler (which also answers it with a
canned raw response); the lean client's by `prepare_request` and a patched `urlopen`.
"""

from __future__ import annotations

import datetime
import io
from typing import Any

import botocore.auth
import botocore.exceptions
import pytest
import urllib3
from botocore.awsrequest import AWSRequest, AWSResponse

from connector.personalize.lean_client import LeanPersonalizeClient
from connector.personalize.sink import Failure, _service_message, classify, make_client

REGION = "eu-west-1"
FROZEN = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
PLUS_ONE = datetime.timezone(datetime.timedelta(hours=1))
SENT = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)


def _raw(status: int, headers: dict[str, str], body: bytes) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(body=io.BytesIO(body), headers=headers, status=status, preload_content=False)


class Boto3Capture:
    """connector.personalize.sink.make_client's client, answering every call with `response` unsent."""

    def __init__(self, endpoint_url: str | None = None) -> None:
        self.client = make_client(REGION, endpoint_url, max_pool_connections=4)
        self.requests: list[AWSRequest] = []
        self.response: tuple[int, dict[str, str], bytes] = (200, {"x-amzn-RequestId": "captured"}, b"{}")
        self.client.meta.events.register("before-send.*", self._before_send)

    def _before_send(self, request: AWSRequest, **_: Any) -> AWSResponse:
        self.requests.append(request)
        status, headers, body = self.response
        return AWSResponse(request.url, status, headers, _raw(status, headers, body))


def _event(**extra: Any) -> dict[str, Any]:
    return {"eventType": "click", "sentAt": SENT, **extra}


PUT_EVENTS_CASES: dict[str, dict[str, Any]] = {
    "with-user": {"trackingId": "t-1", "sessionId": "s-1", "eventList": [_event(itemId="i-1")], "userId": "u-1"},
    "without-user": {"trackingId": "t-1", "sessionId": "s-1", "eventList": [_event(), _event(eventId="e2")]},
    "every-field": {
        "trackingId": "t-1",
        "userId": "ü-ser",
        "sessionId": "s-1",
        "eventList": [
            {
                "eventId": "e-1",
                "eventType": "watch",
                "eventValue": 3.25,
                "itemId": "i-1",
                "properties": '{"numberOfRatings": 12, "name": "caf\\u00e9 ☕"}',
                "sentAt": SENT,
                "recommendationId": "r-1",
                "impression": ["i-1", "i-2", "i-3"],
                "metricAttribution": {"eventAttributionSource": "src"},
            },
            _event(sentAt=SENT.replace(microsecond=0), eventValue=0.1),
            _event(sentAt=datetime.datetime(2024, 1, 2, 4, 4, 5, 3691, tzinfo=PLUS_ONE)),
            _event(sentAt=datetime.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=datetime.UTC)),
            _event(sentAt=datetime.datetime(2024, 1, 2, 3, 4, 5, 1)),  # naive: botocore assumes UTC
            _event(eventValue=float("inf")),
            _event(eventValue=7),
        ],
    },
}


def _compare(method: str, params: dict[str, Any], endpoint_url: str | None = None) -> None:
    boto = Boto3Capture(endpoint_url)
    getattr(boto.client, method)(**params)
    expected = boto.requests[0]
    lean = LeanPersonalizeClient(REGION, endpoint_url, 4)
    actual = lean.prepare_request(method, params)
    assert actual.method == expected.method == "POST"
    assert actual.url == expected.url
    assert actual.body == expected.body
    for header in ("Content-Type", "X-Amz-Date", "X-Amz-Security-Token", "Authorization", "Content-Length"):
        assert _text(actual.headers.get(header, "")) == _text(expected.headers.get(header, "")), header
    assert set(actual.headers.keys()) == set(expected.headers.keys())


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.parametrize("case", sorted(PUT_EVENTS_CASES))
def test_put_events_request_equals_botocore(case: str) -> None:
    _compare("put_events", PUT_EVENTS_CASES[case])


def test_put_events_request_with_custom_endpoint() -> None:
    _compare("put_events", PUT_EVENTS_CASES["with-user"], endpoint_url="http://127.0.0.1:8750")


def test_put_items_and_put_users_requests_equal_botocore() -> None:
    arn = "arn:aws:personalize:eu-west-1:123456789012:dataset/g/ITEMS"
    _compare("put_items", {"datasetArn": arn, "items": [{"itemId": "i-1", "properties": '{"a": 1}'}, {"itemId": "i2"}]})
    _compare("put_users", {"datasetArn": arn, "users": [{"userId": "u-1", "properties": '{"b": "x"}'}]})


def test_put_actions_and_put_action_interactions_requests_equal_botocore() -> None:
    arn = "arn:aws:personalize:eu-west-1:123456789012:dataset/g/ACTIONS"
    _compare("put_actions", {"datasetArn": arn, "actions": [{"actionId": "a-1", "properties": '{"value": "100"}'},
                                                            {"actionId": "a2"}]})
    interactions = [
        {"actionId": "a-1", "sessionId": "s-1", "timestamp": SENT, "eventType": "Viewed", "userId": "ü-ser",
         "eventId": "e-1", "recommendationId": "r-1", "impression": ["a-1", "a-2"], "properties": '{"n": "12"}'},
        {"actionId": "a-2", "sessionId": "s-1", "eventType": "Taken",
         "timestamp": datetime.datetime(2024, 1, 2, 4, 4, 5, 3691, tzinfo=PLUS_ONE)},
        {"actionId": "a-3", "sessionId": "s-1", "eventType": "Not Taken",
         "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5, 1)},  # naive: botocore assumes UTC
    ]
    _compare("put_action_interactions", {"trackingId": "t-1", "actionInteractions": interactions})


def test_without_session_token_no_token_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    _compare("put_events", PUT_EVENTS_CASES["without-user"])
    request = LeanPersonalizeClient(REGION, None, 1).prepare_request("put_events", PUT_EVENTS_CASES["without-user"])
    assert "X-Amz-Security-Token" not in request.headers


def test_signing_name_and_endpoint() -> None:
    lean = LeanPersonalizeClient(REGION, None, 1)
    assert lean.endpoint_url == "https://personalize-events.eu-west-1.amazonaws.com"
    auth = _text(lean.prepare_request("put_users", {"datasetArn": "a", "users": []}).headers["Authorization"])
    assert f"/{REGION}/personalize/aws4_request" in auth


def test_missing_credentials_and_region(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    lean = LeanPersonalizeClient(REGION, None, 1)
    with pytest.raises(botocore.exceptions.NoCredentialsError) as info:
        lean.put_events(**PUT_EVENTS_CASES["without-user"])
    assert classify(info.value) is Failure.SYSTEMIC
    with pytest.raises(botocore.exceptions.NoRegionError):
        LeanPersonalizeClient("", None, 1)


ERROR_RESPONSES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "invalid-input-header": (
        400,
        {"x-amzn-ErrorType": "InvalidInputException:http://internal.amazon.com/coral/", "x-amzn-RequestId": "r1",
         "Content-Type": "application/json"},
        b'{"message": "Invalid eventList[0].sentAt"}',
    ),
    "throttling-body-type": (
        400,
        {"Content-Type": "application/json"},
        b'{"__type": "com.amazonaws.personalize#ThrottlingException", "Message": "Rate exceeded"}',
    ),
    "not-found": (
        404,
        {"x-amzn-ErrorType": "ResourceNotFoundException", "Content-Type": "application/json"},
        b'{"message": "tracking id x not found"}',
    ),
    "500-json": (500, {"Content-Type": "application/json"}, b'{"code": "InternalFailure", "message": "boom"}'),
    "503-html": (503, {"Content-Type": "text/html"}, b"<html><body>Service Unavailable</body></html>"),
    "502-empty": (502, {}, b""),
    "429-no-code": (429, {"Content-Type": "application/json"}, b'{"message": "slow down"}'),
    # Retry-relevant shapes the lean client must read as botocore does now that it is the default.
    "403-expired-token": (
        403, {"x-amzn-ErrorType": "ExpiredTokenException", "Content-Type": "application/json"},
        b'{"message": "The security token included in the request is expired"}',
    ),
    "403-access-denied-body-code": (403, {"Content-Type": "application/json"},
                                    b'{"__type": "AccessDeniedException", "Message": "not allowed"}'),
    "400-unmodeled-code": (400, {"x-amzn-ErrorType": "SomethingNewException:http://x/"}, b'{"message": "new"}'),
    "400-limit-exceeded": (400, {"x-amzn-ErrorType": "LimitExceededException"}, b'{"message": "limit"}'),
    "500-text-plain": (500, {"Content-Type": "text/plain"}, b"Internal Server Error"),
    "504-cut-json": (504, {"Content-Type": "application/json"}, b'{"message": "gateway'),
    "400-serialization": (400, {"x-amzn-ErrorType": "SerializationException"}, b'{"message": "bad json"}'),
}


@pytest.mark.parametrize("case", sorted(ERROR_RESPONSES))
def test_errors_parse_like_botocore(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    status, headers, body = ERROR_RESPONSES[case]
    boto = Boto3Capture()
    boto.response = (status, headers, body)
    params = PUT_EVENTS_CASES["without-user"]
    with pytest.raises(botocore.exceptions.ClientError) as expected_info:
        boto.client.put_events(**params)
    lean = LeanPersonalizeClient(REGION, None, 1)
    monkeypatch.setattr(lean._pool, "urlopen", lambda *a, **k: _preloaded(status, headers, body))
    with pytest.raises(botocore.exceptions.ClientError) as actual_info:
        lean.put_events(**params)
    expected, actual = expected_info.value, actual_info.value
    assert type(actual).__name__ == type(expected).__name__
    # boto3's text adds " (reached max retries: 0)" for errors its retry policy would have retried.
    assert str(actual) == str(expected).replace(" (reached max retries: 0)", "")
    assert actual.response["Error"] == expected.response["Error"]
    metadata = dict(expected.response["ResponseMetadata"])
    metadata.pop("MaxAttemptsReached", None)
    assert actual.response["ResponseMetadata"] == metadata
    assert {k: v for k, v in actual.response.items() if k != "ResponseMetadata"} == {
        k: v for k, v in expected.response.items() if k != "ResponseMetadata"
    }
    assert classify(actual) is classify(expected)
    assert _service_message(actual) == _service_message(expected)


def _preloaded(status: int, headers: dict[str, str], body: bytes) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(body=body, headers=headers, status=status, preload_content=True)


def test_success_returns_response_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    lean = LeanPersonalizeClient(REGION, None, 1)
    monkeypatch.setattr(lean._pool, "urlopen", lambda *a, **k: _preloaded(200, {"x-amzn-RequestId": "r9"}, b"{}"))
    result = lean.put_events(**PUT_EVENTS_CASES["with-user"])
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert result["ResponseMetadata"]["RequestId"] == "r9"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (urllib3.exceptions.NewConnectionError(None, "refused"), botocore.exceptions.EndpointConnectionError),  # type: ignore[arg-type]
        (urllib3.exceptions.ConnectTimeoutError("slow"), botocore.exceptions.ConnectTimeoutError),
        (urllib3.exceptions.ReadTimeoutError(None, "/events", "slow"), botocore.exceptions.ReadTimeoutError),  # type: ignore[arg-type]
        (urllib3.exceptions.ProtocolError("Connection aborted."), botocore.exceptions.ConnectionClosedError),
    ],
)
def test_connection_errors_map_to_botocore_types(
    error: Exception, expected: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    lean = LeanPersonalizeClient(REGION, None, 1)

    def fail(*_: Any, **__: Any) -> Any:
        raise error

    monkeypatch.setattr(lean._pool, "urlopen", fail)
    with pytest.raises(expected) as info:
        lean.put_events(**PUT_EVENTS_CASES["with-user"])
    assert classify(info.value) is Failure.TRANSIENT
