"""Each limit of the service model (and each documented service rule): just inside is accepted,
just outside is rejected with InvalidInputException naming the field.

Limits are read from the service model through connector.personalize.api_model, never typed in by hand. The
client has `parameter_validation=False` so botocore's own min/required checks do not stop a call
before the emulator sees it; what botocore's serializer cannot send at all (unknown fields, wrong
JSON types, malformed JSON) goes through a raw SigV4-signed request.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from fixtures.emulator import EmulatorProcess, make_personalize_client, send_signed

from connector.personalize import api_model
from connector.personalize.api_model import MAX_EVENT_BYTES, limit

STRING_MAX = limit("PutEvents", "sessionId")
EVENTS_MAX = limit("PutEvents", "eventList")
RECOMMENDATION_MAX = limit("PutEvents", "eventList", "recommendationId")
PROPERTIES_MAX = limit("PutEvents", "eventList", "properties")
IMPRESSION_MAX = limit("PutEvents", "eventList", "impression")
IMPRESSION_ID_MAX = limit("PutEvents", "eventList", "impression", "member")
SOURCE_MAX = limit("PutEvents", "eventList", "metricAttribution", "eventAttributionSource")
ITEM_PROPERTIES_MAX = limit("PutItems", "items", "properties")
USER_PROPERTIES_MAX = limit("PutUsers", "users", "properties")
ARN_MAX = limit("PutItems", "datasetArn")
ITEMS_MAX = limit("PutItems", "items")
USERS_MAX = limit("PutUsers", "users")
DATASET = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"

Request = dict[str, Any]
Mutation = Callable[[Request], None]


@pytest.fixture(scope="module")
def raw_client(emulator: EmulatorProcess) -> Any:
    return make_personalize_client(emulator.url, parameter_validation=False, retries={"total_max_attempts": 1})


def base_request() -> Request:
    return {
        "trackingId": f"limits-{uuid.uuid4()}",
        "sessionId": "session-1",
        "userId": "user-1",
        "eventList": [{"eventType": "click", "sentAt": 1700000000}],
    }


def props_of_length(n: int) -> str:
    """A JSON object string of exactly n characters (n >= 9)."""
    text = json.dumps({"p": "x" * (n - 8)}, separators=(",", ":"))
    assert len(text) == n
    return text


def event_size(event: dict[str, Any]) -> int:
    return len(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())


def event_of_size(target: int) -> dict[str, Any]:
    """A valid-by-the-model event whose compact UTF-8 JSON is exactly `target` bytes.

    Multi-byte impression ids reach 10 KB while every field stays within its own limit.
    """
    event: dict[str, Any] = {"eventType": "click", "sentAt": 1700000000, "impression": []}
    wide_id = "é" * IMPRESSION_ID_MAX
    while event_size(event) + len(wide_id.encode()) + 3 + 250 < target:  # leave 250..765 bytes
        event["impression"].append(wide_id)
    for name in ("itemId", "eventId", "eventType"):
        event[name] = "a"
        event[name] = "a" * min(STRING_MAX, 1 + target - event_size(event))
        if event_size(event) == target:
            return event
    raise AssertionError(f"cannot build an event of {target} bytes")


def set_event(name: str, value: Any) -> Mutation:
    def mutate(request: Request) -> None:
        request["eventList"][0][name] = value

    return mutate


def set_top(name: str, value: Any) -> Mutation:
    def mutate(request: Request) -> None:
        request[name] = value

    return mutate


def delete_event(name: str) -> Mutation:
    return lambda request: request["eventList"][0].pop(name)


def delete_top(name: str) -> Mutation:
    return lambda request: request.pop(name)


def event_count(n: int) -> Mutation:
    def mutate(request: Request) -> None:
        request["eventList"] = [dict(request["eventList"][0], eventId=f"e{i}") for i in range(n)]

    return mutate


def whole_event(event: dict[str, Any]) -> Mutation:
    return lambda request: request["eventList"].__setitem__(0, event)


# (id, mutation, None if accepted else the field the error message must name)
EVENT_CASES: list[tuple[str, Mutation, str | None]] = [
    ("eventList-max", event_count(EVENTS_MAX), None),
    ("eventList-over", event_count(EVENTS_MAX + 1), "eventList"),
    ("eventList-empty", event_count(0), "eventList"),
    ("eventList-one", event_count(1), None),
]
for _name in ("trackingId", "sessionId", "userId"):
    EVENT_CASES += [
        (f"{_name}-min", set_top(_name, "a"), None),
        (f"{_name}-max", set_top(_name, "a" * STRING_MAX), None),
        (f"{_name}-over", set_top(_name, "a" * (STRING_MAX + 1)), _name),
        (f"{_name}-empty", set_top(_name, ""), _name),
    ]
for _name in ("eventType", "eventId", "itemId"):
    EVENT_CASES += [
        (f"{_name}-min", set_event(_name, "a"), None),
        (f"{_name}-max", set_event(_name, "a" * STRING_MAX), None),
        (f"{_name}-over", set_event(_name, "a" * (STRING_MAX + 1)), f"eventList.0.{_name}"),
        (f"{_name}-empty", set_event(_name, ""), f"eventList.0.{_name}"),
    ]
EVENT_CASES += [
    ("recommendationId-min", set_event("recommendationId", "r"), None),
    ("recommendationId-max", set_event("recommendationId", "r" * RECOMMENDATION_MAX), None),
    ("recommendationId-over", set_event("recommendationId", "r" * (RECOMMENDATION_MAX + 1)), "recommendationId"),
    ("recommendationId-empty", set_event("recommendationId", ""), "eventList.0.recommendationId"),
    ("properties-max", set_event("properties", props_of_length(PROPERTIES_MAX)), None),
    ("properties-over", set_event("properties", props_of_length(PROPERTIES_MAX + 1)), "eventList.0.properties"),
    ("properties-empty-object", set_event("properties", "{}"), None),
    ("properties-empty", set_event("properties", ""), "eventList.0.properties"),
    ("properties-array", set_event("properties", "[1, 2]"), "eventList.0.properties"),
    ("properties-string", set_event("properties", '"x"'), "eventList.0.properties"),
    ("properties-not-json", set_event("properties", "{rating: 5}"), "eventList.0.properties"),
    ("properties-unreserved-key", set_event("properties", '{"user": "x", "eventValue2": 1}'), None),
    ("impression-one", set_event("impression", ["i"]), None),
    ("impression-max", set_event("impression", [f"i{n}" for n in range(IMPRESSION_MAX)]), None),
    ("impression-over", set_event("impression", [f"i{n}" for n in range(IMPRESSION_MAX + 1)]), "impression"),
    ("impression-empty", set_event("impression", []), "eventList.0.impression"),
    ("impression-id-max", set_event("impression", ["i" * IMPRESSION_ID_MAX]), None),
    ("impression-id-over", set_event("impression", ["i", "i" * (IMPRESSION_ID_MAX + 1)]), "eventList.0.impression.1"),
    ("impression-id-empty", set_event("impression", [""]), "eventList.0.impression.0"),
    ("source-max", set_event("metricAttribution", {"eventAttributionSource": "~" * SOURCE_MAX}), None),
    ("source-printable", set_event("metricAttribution", {"eventAttributionSource": " a b ~!"}), None),
    (
        "source-over",
        set_event("metricAttribution", {"eventAttributionSource": "~" * (SOURCE_MAX + 1)}),
        "eventList.0.metricAttribution.eventAttributionSource",
    ),
    ("source-tab", set_event("metricAttribution", {"eventAttributionSource": "a\tb"}), "eventAttributionSource"),
    ("source-newline", set_event("metricAttribution", {"eventAttributionSource": "ab\n"}), "eventAttributionSource"),
    ("source-non-ascii", set_event("metricAttribution", {"eventAttributionSource": "é"}), "eventAttributionSource"),
    ("source-spaces-only", set_event("metricAttribution", {"eventAttributionSource": "   "}), "eventAttributionSource"),
    ("source-empty", set_event("metricAttribution", {"eventAttributionSource": ""}), "eventAttributionSource"),
    ("source-missing", set_event("metricAttribution", {}), "eventList.0.metricAttribution.eventAttributionSource"),
    ("event-size-max", whole_event(event_of_size(MAX_EVENT_BYTES)), None),
    ("event-size-over", whole_event(event_of_size(MAX_EVENT_BYTES + 1)), "eventList.0"),
    ("sentAt-int", set_event("sentAt", 1700000000), None),
    ("sentAt-fraction", set_event("sentAt", 1700000000.123), None),
    ("required-eventType", delete_event("eventType"), "eventList.0.eventType"),
    ("required-sentAt", delete_event("sentAt"), "eventList.0.sentAt"),
    ("required-sessionId", delete_top("sessionId"), "sessionId"),
    ("required-trackingId", delete_top("trackingId"), "trackingId"),
    ("required-eventList", delete_top("eventList"), "eventList"),
    ("optional-userId", delete_top("userId"), None),
]
for _key in ("userId", "USERID", "SessionId", "eventtype", "TimeStamp", "recommendationID", "IMPRESSION"):
    EVENT_CASES.append((f"reserved-{_key}", set_event("properties", json.dumps({_key: "x"})), "eventList.0.properties"))


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in EVENT_CASES], ids=[c[0] for c in EVENT_CASES])
def test_put_events_limit(emulator: EmulatorProcess, raw_client: Any, mutate: Mutation, field: str | None) -> None:
    request = base_request()
    mutate(request)
    if field is None:
        raw_client.put_events(**copy.deepcopy(request))
        stored = emulator.events(request["trackingId"])
        assert [{k: v for k, v in r.items() if k != "receivedAt"} for r in stored] == [
            {k: request[k] for k in ("trackingId", "sessionId", "userId") if k in request} | event
            for event in request["eventList"]
        ]
        return
    # Required top-level members are also what the emulator keys on; send those raw so botocore's
    # URI/JSON serializer cannot drop or reshape them.
    with pytest.raises(ClientError) as caught:
        raw_client.put_events(**copy.deepcopy(request))
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidInputException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert field in error["Message"]
    if "trackingId" in request:
        assert emulator.events(request["trackingId"]) == []


def test_error_message_names_the_event_index(raw_client: Any) -> None:
    request = base_request()
    event_count(5)(request)
    request["eventList"][3]["properties"] = '{"Impression": 1}'
    with pytest.raises(raw_client.exceptions.InvalidInputException) as caught:
        raw_client.put_events(**request)
    assert "eventList.3.properties" in str(caught.value)
    assert "eventList.2" not in str(caught.value)


def test_one_invalid_event_rejects_the_whole_call(emulator: EmulatorProcess, raw_client: Any) -> None:
    request = base_request()
    event_count(EVENTS_MAX)(request)
    request["eventList"][-1]["eventType"] = ""
    with pytest.raises(raw_client.exceptions.InvalidInputException):
        raw_client.put_events(**request)
    assert emulator.events(request["trackingId"]) == []


# -- what botocore's serializer cannot send: raw signed bodies ---------------------------------------

RAW_CASES: list[tuple[str, Any, str]] = [
    ("unknown-top-field", {"extra": 1}, "extra"),
    ("unknown-event-field", {"eventList": [{"eventType": "c", "sentAt": 1, "timestamp": 1}]}, "eventList.0.timestamp"),
    ("trackingId-number", {"trackingId": 123}, "trackingId"),
    ("eventList-string", {"eventList": "click"}, "eventList"),
    ("eventList-member-number", {"eventList": [1]}, "eventList.0"),
    ("sentAt-string", {"eventList": [{"eventType": "c", "sentAt": "2024-01-01T00:00:00Z"}]}, "eventList.0.sentAt"),
    ("sentAt-bool", {"eventList": [{"eventType": "c", "sentAt": True}]}, "eventList.0.sentAt"),
    ("eventValue-string", {"eventList": [{"eventType": "c", "sentAt": 1, "eventValue": "1.5"}]}, "eventValue"),
    ("impression-string", {"eventList": [{"eventType": "c", "sentAt": 1, "impression": "i1"}]}, "impression"),
    ("properties-object", {"eventList": [{"eventType": "c", "sentAt": 1, "properties": {"a": 1}}]}, "properties"),
    ("metricAttribution-string", {"eventList": [{"eventType": "c", "sentAt": 1, "metricAttribution": "x"}]}, "metric"),
]


@pytest.mark.parametrize(("override", "field"), [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES])
def test_raw_body_rejected(emulator: EmulatorProcess, override: dict[str, Any], field: str) -> None:
    body = base_request() | override
    response = send_signed(emulator.url, "/events", body)
    assert response.status == 400
    assert response.error_type == "InvalidInputException"
    assert field in response.json()["message"]


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b"null", b'"text"', b"\xff\xfe{}", b'{"trackingId": NaN}', b""],
    ids=["truncated", "array", "null", "string", "not-utf8", "nan", "empty"],
)
def test_malformed_json_rejected(emulator: EmulatorProcess, body: bytes) -> None:
    response = send_signed(emulator.url, "/events", body)
    assert response.status == 400
    assert response.error_type == "InvalidInputException"
    assert response.json()["message"]


def test_raw_valid_body_accepted(emulator: EmulatorProcess) -> None:
    body = base_request()
    body["eventList"][0]["sentAt"] = 1700000000.001
    response = send_signed(emulator.url, "/events", body)
    assert response.status == 200
    [stored] = emulator.events(body["trackingId"])
    assert stored["sentAt"] == 1700000000.001


# -- PutItems / PutUsers ----------------------------------------------------------------------------

ITEM_CASES: list[tuple[str, str, Request, str | None]] = [
    ("items-max", "PutItems", {"items": [{"itemId": f"i{n}"} for n in range(ITEMS_MAX)]}, None),
    ("items-over", "PutItems", {"items": [{"itemId": f"i{n}"} for n in range(ITEMS_MAX + 1)]}, "items"),
    ("items-empty", "PutItems", {"items": []}, "items"),
    ("itemId-max", "PutItems", {"items": [{"itemId": "i" * STRING_MAX}]}, None),
    ("itemId-over", "PutItems", {"items": [{"itemId": "i" * (STRING_MAX + 1)}]}, "items.0.itemId"),
    ("itemId-missing", "PutItems", {"items": [{"properties": "{}"}]}, "items.0.itemId"),
    (
        "item-props-max",
        "PutItems",
        {"items": [{"itemId": "i", "properties": props_of_length(ITEM_PROPERTIES_MAX)}]},
        None,
    ),
    (
        "item-props-over",
        "PutItems",
        {"items": [{"itemId": "i", "properties": props_of_length(ITEM_PROPERTIES_MAX + 1)}]},
        "items.0.properties",
    ),
    ("item-props-not-json", "PutItems", {"items": [{"itemId": "i", "properties": "nope"}]}, "items.0.properties"),
    ("arn-invalid", "PutItems", {"datasetArn": "not-an-arn", "items": [{"itemId": "i"}]}, "datasetArn"),
    (
        "arn-over",
        "PutItems",
        {"datasetArn": DATASET + "x" * (ARN_MAX - len(DATASET) + 1), "items": [{"itemId": "i"}]},
        "datasetArn",
    ),
    ("arn-max", "PutItems", {"datasetArn": DATASET + "x" * (ARN_MAX - len(DATASET)), "items": [{"itemId": "i"}]}, None),
    ("users-max", "PutUsers", {"users": [{"userId": f"u{n}"} for n in range(USERS_MAX)]}, None),
    ("users-over", "PutUsers", {"users": [{"userId": f"u{n}"} for n in range(USERS_MAX + 1)]}, "users"),
    ("userId-empty", "PutUsers", {"users": [{"userId": ""}]}, "users.0.userId"),
    (
        "user-props-max",
        "PutUsers",
        {"users": [{"userId": "u", "properties": props_of_length(USER_PROPERTIES_MAX)}]},
        None,
    ),
    (
        "user-props-over",
        "PutUsers",
        {"users": [{"userId": "u", "properties": props_of_length(USER_PROPERTIES_MAX + 1)}]},
        "users.0.properties",
    ),
]


@pytest.mark.parametrize(
    ("operation", "override", "field"), [c[1:] for c in ITEM_CASES], ids=[c[0] for c in ITEM_CASES]
)
def test_items_and_users_limits(
    emulator: EmulatorProcess, raw_client: Any, operation: str, override: Request, field: str | None
) -> None:
    request = {"datasetArn": DATASET} | override
    call = raw_client.put_items if operation == "PutItems" else raw_client.put_users
    before = emulator.stats()["operations"].get(operation, {}).get("accepted_entries", 0)
    if field is None:
        call(**request)
        after = emulator.stats()["operations"][operation]["accepted_entries"]
        assert after - before == len(request["items" if operation == "PutItems" else "users"])
        return
    with pytest.raises(raw_client.exceptions.InvalidInputException) as caught:
        call(**request)
    assert field in str(caught.value)


def test_limits_come_from_the_model() -> None:
    # Guards the test table itself: the numbers above must be the model's, not typed by hand.
    assert (
        api_model.limit("PutEvents", "trackingId"),
        api_model.limit("PutEvents", "eventList"),
        api_model.limit("PutEvents", "eventList", "recommendationId"),
        api_model.limit("PutEvents", "eventList", "properties"),
    ) == (STRING_MAX, EVENTS_MAX, RECOMMENDATION_MAX, PROPERTIES_MAX)
