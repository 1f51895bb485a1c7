"""PutActions and PutActionInteractions: stored as received through boto3 and the AWS CLI, each
limit just inside (accepted) and just outside (InvalidInputException naming the field), the
documented rules (properties a JSON object; an interaction's reserved keys), the unknown tracker,
the quota per tracker and per dataset, and the inspection endpoints.

Limits are read from the service model through connector.personalize.api_model, never typed in.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from fixtures.emulator import EmulatorProcess, make_personalize_client, run_aws_cli, send_signed

from connector.personalize.api_model import limit

DATASET = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ACTIONS"
ACTIONS_MAX = limit("PutActions", "actions")
ACTION_ID_MAX = limit("PutActions", "actions", "actionId")
ACTION_PROPERTIES_MAX = limit("PutActions", "actions", "properties")
ARN_MAX = limit("PutActions", "datasetArn")
INTERACTIONS_MAX = limit("PutActionInteractions", "actionInteractions")
TRACKING_ID_MAX = limit("PutActionInteractions", "trackingId")
STRING_MAX = limit("PutActionInteractions", "actionInteractions", "sessionId")
RECOMMENDATION_MAX = limit("PutActionInteractions", "actionInteractions", "recommendationId")
IMPRESSION_MAX = limit("PutActionInteractions", "actionInteractions", "impression")
IMPRESSION_ID_MAX = limit("PutActionInteractions", "actionInteractions", "impression", "member")
INTERACTION_PROPERTIES_MAX = limit("PutActionInteractions", "actionInteractions", "properties")

Request = dict[str, Any]
Mutation = Callable[[Request], None]
Start = Callable[..., EmulatorProcess]


@pytest.fixture(scope="module")
def raw_client(emulator: EmulatorProcess) -> Any:
    return make_personalize_client(emulator.url, parameter_validation=False, retries={"total_max_attempts": 1})


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    received = record.pop("receivedAt")
    assert isinstance(received, float)
    return record


def props_of_length(n: int) -> str:
    """A JSON object string of exactly n characters (n >= 9)."""
    text = json.dumps({"p": "x" * (n - 8)}, separators=(",", ":"))
    assert len(text) == n
    return text


def interaction(**fields: Any) -> dict[str, Any]:
    return {"actionId": "a1", "sessionId": "s1", "timestamp": 1700000000, "eventType": "Viewed", **fields}


def base_interactions() -> Request:
    return {"trackingId": f"actions-{uuid.uuid4()}", "actionInteractions": [interaction(userId="u1")]}


def set_top(name: str, value: Any) -> Mutation:
    return lambda request: request.__setitem__(name, value)


def delete_top(name: str) -> Mutation:
    return lambda request: request.pop(name)


def set_entry(name: str, value: Any) -> Mutation:
    return lambda request: request["actionInteractions"][0].__setitem__(name, value)


def delete_entry(name: str) -> Mutation:
    return lambda request: request["actionInteractions"][0].pop(name)


def interaction_count(n: int) -> Mutation:
    def mutate(request: Request) -> None:
        request["actionInteractions"] = [interaction(eventId=f"e{i}") for i in range(n)]

    return mutate


# (id, mutation, None if accepted else the field the error message must name)
INTERACTION_CASES: list[tuple[str, Mutation, str | None]] = [
    ("list-one", interaction_count(1), None),
    ("list-max", interaction_count(INTERACTIONS_MAX), None),
    ("list-over", interaction_count(INTERACTIONS_MAX + 1), "actionInteractions"),
    ("list-empty", interaction_count(0), "actionInteractions"),
    ("trackingId-max", set_top("trackingId", "t" * TRACKING_ID_MAX), None),
    ("trackingId-over", set_top("trackingId", "t" * (TRACKING_ID_MAX + 1)), "trackingId"),
    ("required-trackingId", delete_top("trackingId"), "trackingId"),
    ("required-actionInteractions", delete_top("actionInteractions"), "actionInteractions"),
    ("recommendationId-max", set_entry("recommendationId", "r" * RECOMMENDATION_MAX), None),
    ("recommendationId-over", set_entry("recommendationId", "r" * (RECOMMENDATION_MAX + 1)), "recommendationId"),
    ("impression-one", set_entry("impression", ["a"]), None),
    ("impression-max", set_entry("impression", [f"a{n}" for n in range(IMPRESSION_MAX)]), None),
    ("impression-over", set_entry("impression", [f"a{n}" for n in range(IMPRESSION_MAX + 1)]), "impression"),
    ("impression-empty", set_entry("impression", []), "actionInteractions.0.impression"),
    ("impression-id-max", set_entry("impression", ["a" * IMPRESSION_ID_MAX]), None),
    ("impression-id-over", set_entry("impression", ["a" * (IMPRESSION_ID_MAX + 1)]), "impression.0"),
    ("properties-max", set_entry("properties", props_of_length(INTERACTION_PROPERTIES_MAX)), None),
    ("properties-over", set_entry("properties", props_of_length(INTERACTION_PROPERTIES_MAX + 1)), "properties"),
    ("properties-empty-object", set_entry("properties", "{}"), None),
    ("properties-array", set_entry("properties", "[1]"), "actionInteractions.0.properties"),
    ("properties-not-json", set_entry("properties", "{a: 1}"), "actionInteractions.0.properties"),
    ("properties-unreserved-key", set_entry("properties", '{"numberOfActions": "12"}'), None),
    ("timestamp-fraction", set_entry("timestamp", 1700000000.25), None),
    ("optional-userId", delete_entry("userId"), None),
]
for _name in ("actionId", "sessionId", "eventType", "eventId", "userId"):
    INTERACTION_CASES += [
        (f"{_name}-min", set_entry(_name, "a"), None),
        (f"{_name}-max", set_entry(_name, "a" * STRING_MAX), None),
        (f"{_name}-over", set_entry(_name, "a" * (STRING_MAX + 1)), f"actionInteractions.0.{_name}"),
        (f"{_name}-empty", set_entry(_name, ""), f"actionInteractions.0.{_name}"),
    ]
for _name in ("actionId", "sessionId", "timestamp", "eventType"):
    INTERACTION_CASES.append((f"required-{_name}", delete_entry(_name), f"actionInteractions.0.{_name}"))
for _key in ("userId", "SESSIONID", "eventType", "Timestamp", "recommendationid", "impression"):
    INTERACTION_CASES.append(
        (f"reserved-{_key}", set_entry("properties", json.dumps({_key: "x"})), "actionInteractions.0.properties")
    )


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in INTERACTION_CASES], ids=[c[0] for c in INTERACTION_CASES])
def test_put_action_interactions_limit(
    emulator: EmulatorProcess, raw_client: Any, mutate: Mutation, field: str | None
) -> None:
    request = base_interactions()
    mutate(request)
    if field is None:
        raw_client.put_action_interactions(**copy.deepcopy(request))
        stored = [_strip(r) for r in emulator.action_interactions(request["trackingId"])]
        assert stored == [{"trackingId": request["trackingId"], **entry} for entry in request["actionInteractions"]]
        return
    with pytest.raises(ClientError) as caught:
        raw_client.put_action_interactions(**copy.deepcopy(request))
    error, status = caught.value.response["Error"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert (error["Code"], status) == ("InvalidInputException", 400)
    assert field in error["Message"]
    if "trackingId" in request:
        assert emulator.action_interactions(request["trackingId"]) == []


def actions(n: int, **fields: Any) -> dict[str, Any]:
    return {"actions": [{"actionId": f"a{i}", **fields} for i in range(n)]}


ACTION_CASES: list[tuple[str, Request, str | None]] = [
    ("actions-one", actions(1), None),
    ("actions-max", actions(ACTIONS_MAX), None),
    ("actions-over", actions(ACTIONS_MAX + 1), "actions"),
    ("actions-empty", actions(0), "actions"),
    ("actionId-max", {"actions": [{"actionId": "a" * ACTION_ID_MAX}]}, None),
    ("actionId-over", {"actions": [{"actionId": "a" * (ACTION_ID_MAX + 1)}]}, "actions.0.actionId"),
    ("actionId-empty", {"actions": [{"actionId": ""}]}, "actions.0.actionId"),
    ("actionId-missing", {"actions": [{"properties": "{}"}]}, "actions.0.actionId"),
    ("properties-max", actions(1, properties=props_of_length(ACTION_PROPERTIES_MAX)), None),
    ("properties-over", actions(1, properties=props_of_length(ACTION_PROPERTIES_MAX + 1)), "actions.0.properties"),
    ("properties-empty", actions(1, properties=""), "actions.0.properties"),
    ("properties-not-object", actions(1, properties='"Deluxe"'), "actions.0.properties"),
    ("properties-not-json", actions(1, properties="value=100"), "actions.0.properties"),
    # Actions have no reserved property keys (the Action data type lists none).
    ("properties-userId-key", actions(1, properties='{"userId": "x", "value": "100"}'), None),
    ("arn-max", {"datasetArn": DATASET + "x" * (ARN_MAX - len(DATASET)), **actions(1)}, None),
    ("arn-over", {"datasetArn": DATASET + "x" * (ARN_MAX - len(DATASET) + 1), **actions(1)}, "datasetArn"),
    ("arn-invalid", {"datasetArn": "not-an-arn", **actions(1)}, "datasetArn"),
]


@pytest.mark.parametrize(("override", "field"), [c[1:] for c in ACTION_CASES], ids=[c[0] for c in ACTION_CASES])
def test_put_actions_limit(emulator: EmulatorProcess, raw_client: Any, override: Request, field: str | None) -> None:
    request = {"datasetArn": f"{DATASET}-{uuid.uuid4().hex[:8]}"} | override
    if field is None:
        raw_client.put_actions(**request)
        stored = [_strip(r) for r in emulator.actions(request["datasetArn"])]
        assert stored == [{"datasetArn": request["datasetArn"], **entry} for entry in request["actions"]]
        return
    with pytest.raises(raw_client.exceptions.InvalidInputException) as caught:
        raw_client.put_actions(**request)
    assert field in str(caught.value)
    assert emulator.actions(request["datasetArn"]) == []


RAW_CASES: list[tuple[str, str, Request, str]] = [
    ("timestamp-string", "/action-interactions",
     {"actionInteractions": [interaction(timestamp="2024-01-01T00:00:00Z")]}, "actionInteractions.0.timestamp"),
    ("properties-object", "/action-interactions",
     {"actionInteractions": [interaction(properties={"a": "1"})]}, "actionInteractions.0.properties"),
    ("unknown-member", "/action-interactions",
     {"actionInteractions": [interaction(sentAt=1)]}, "actionInteractions.0.sentAt"),
    ("action-properties-object", "/actions",
     {"datasetArn": DATASET, "actions": [{"actionId": "a", "properties": {"value": "1"}}]}, "actions.0.properties"),
    ("actions-string", "/actions", {"datasetArn": DATASET, "actions": "a1"}, "actions"),
]


@pytest.mark.parametrize(("path", "override", "field"), [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES])
def test_raw_body_rejected(emulator: EmulatorProcess, path: str, override: Request, field: str) -> None:
    body = ({"trackingId": "raw"} if path == "/action-interactions" else {}) | override
    response = send_signed(emulator.url, path, body)
    assert (response.status, response.error_type) == (400, "InvalidInputException")
    assert field in response.json()["message"]


def test_inspection_filters_and_stats(fresh_emulator: EmulatorProcess, personalize_client: Any) -> None:
    other = DATASET + "-other"
    personalize_client.put_actions(datasetArn=DATASET, actions=[{"actionId": "a1", "properties": '{"value":"1"}'}])
    personalize_client.put_actions(datasetArn=other, actions=[{"actionId": "a2"}, {"actionId": "a3"}])
    personalize_client.put_action_interactions(trackingId="t1", actionInteractions=[interaction(eventId="e1")])
    personalize_client.put_action_interactions(trackingId="t2", actionInteractions=[interaction(eventId="e2")])
    assert [_strip(r) for r in fresh_emulator.actions(DATASET)] == [
        {"datasetArn": DATASET, "actionId": "a1", "properties": '{"value":"1"}'}
    ]
    assert [r["actionId"] for r in fresh_emulator.actions()] == ["a1", "a2", "a3"]
    assert [_strip(r) for r in fresh_emulator.action_interactions("t2")] == [
        {"trackingId": "t2", **interaction(eventId="e2")}
    ]
    assert [r["eventId"] for r in fresh_emulator.action_interactions()] == ["e1", "e2"]
    assert fresh_emulator.events() == [] and fresh_emulator.items() == []  # kinds are kept apart
    stats = fresh_emulator.stats()
    assert (stats["accepted_actions"], stats["accepted_action_interactions"], stats["accepted_events"]) == (3, 2, 0)
    assert stats["operations"]["PutActions"] == {"calls": 2, "accepted": 2, "accepted_entries": 3}
    assert stats["operations"]["PutActionInteractions"] == {"calls": 2, "accepted": 2, "accepted_entries": 2}


def test_unknown_tracker_and_quota_per_tracker_and_dataset(start_emulator: Start) -> None:
    # 0.01 req/s: a burst of one call, then the next token after 100 s, so no timing dependence.
    emulator = start_emulator("--tracking-id", "known", "--tracking-id", "known-2", "--max-requests-per-second", "0.01")
    client = make_personalize_client(emulator.url, retries={"total_max_attempts": 1})
    with pytest.raises(client.exceptions.ResourceNotFoundException) as missing:
        client.put_action_interactions(trackingId="other", actionInteractions=[interaction()])
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "other" in str(missing.value)
    client.put_action_interactions(trackingId="known", actionInteractions=[interaction()])
    with pytest.raises(client.exceptions.ClientError) as throttled:
        client.put_action_interactions(trackingId="known", actionInteractions=[interaction()])
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
    client.put_action_interactions(trackingId="known-2", actionInteractions=[interaction()])  # its own bucket
    client.put_actions(datasetArn=DATASET, actions=[{"actionId": "a"}])  # datasets have buckets too
    with pytest.raises(client.exceptions.ClientError, match="ThrottlingException"):
        client.put_actions(datasetArn=DATASET, actions=[{"actionId": "a"}])
    stats = emulator.stats()
    assert (stats["accepted_calls"], stats["throttled_calls"], stats["rejected_calls"]) == (3, 2, 1)


# -- the real AWS CLI ---------------------------------------------------------------------------------


def test_cli_put_action_interactions_shorthand(fresh_emulator: EmulatorProcess, tmp_path: Path) -> None:
    result = run_aws_cli(
        fresh_emulator, "put-action-interactions", "--tracking-id", "t-cli",
        "--action-interactions",
        "actionId=a1,sessionId=s1,timestamp=1700000000,eventType=Viewed,userId=u1",
        "actionId=a2,sessionId=s1,timestamp=1700000001,eventType=Taken,impression=[a1,a2]",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert [_strip(r) for r in fresh_emulator.action_interactions("t-cli")] == [
        {"trackingId": "t-cli", "actionId": "a1", "sessionId": "s1", "timestamp": 1700000000,
         "eventType": "Viewed", "userId": "u1"},
        {"trackingId": "t-cli", "actionId": "a2", "sessionId": "s1", "timestamp": 1700000001,
         "eventType": "Taken", "impression": ["a1", "a2"]},
    ]


def test_cli_put_action_interactions_json(fresh_emulator: EmulatorProcess, tmp_path: Path) -> None:
    entries = [interaction(eventId="e1", properties=json.dumps({"numberOfActions": "12"}))]
    result = run_aws_cli(fresh_emulator, "put-action-interactions", "--tracking-id", "t-json",
                  "--action-interactions", json.dumps(entries), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [_strip(r) for r in fresh_emulator.action_interactions("t-json")] == [{"trackingId": "t-json", **entries[0]}]


def test_cli_put_actions_shorthand_and_json(fresh_emulator: EmulatorProcess, tmp_path: Path) -> None:
    shorthand = run_aws_cli(fresh_emulator, "put-actions", "--dataset-arn", DATASET,
                     "--actions", "actionId=a1", "actionId=a2", tmp_path=tmp_path)
    assert shorthand.returncode == 0, shorthand.stderr
    request = {"datasetArn": DATASET, "actions": [{"actionId": "a3", "properties": '{"value": "100"}'}]}
    as_json = run_aws_cli(fresh_emulator, "put-actions", "--cli-input-json", json.dumps(request), tmp_path=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert [_strip(r) for r in fresh_emulator.actions(DATASET)] == [
        {"datasetArn": DATASET, "actionId": "a1"},
        {"datasetArn": DATASET, "actionId": "a2"},
        {"datasetArn": DATASET, **request["actions"][0]},
    ]


def test_cli_invalid_action_interaction_fails(fresh_emulator: EmulatorProcess, tmp_path: Path) -> None:
    entries = [interaction(properties=json.dumps({"Impression": "x"}))]
    result = run_aws_cli(fresh_emulator, "put-action-interactions", "--tracking-id", "t-bad",
                  "--action-interactions", json.dumps(entries), tmp_path=tmp_path)
    assert result.returncode != 0
    assert "InvalidInputException" in result.stderr
    assert "actionInteractions.0.properties" in result.stderr
    assert fresh_emulator.action_interactions("t-bad") == []
