"""The emulator refuses NaN/Infinity as the service would (issue 13, item 9): `properties` must be
strict JSON, and an eventValue of NaN/±Infinity (which botocore and the AWS CLI serialise as the
strings "NaN", "Infinity", "-Infinity") is not a number. Both with boto3 and with the real AWS CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from fixtures.emulator import EmulatorProcess

DATASET = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
BAD_PROPERTIES = ['{"score":NaN}', '{"score":Infinity}', '{"score":-Infinity}', '{"score":1} trailing']
BAD_IDS = ["nan", "inf", "-inf", "trailing-junk"]


def _tid() -> str:
    return f"tracker-{uuid.uuid4()}"


@pytest.mark.parametrize("properties", BAD_PROPERTIES, ids=BAD_IDS)
def test_boto3_put_events_with_invalid_properties_json_is_refused(
    emulator: EmulatorProcess, personalize_client: Any, properties: str
) -> None:
    tid = _tid()
    with pytest.raises(personalize_client.exceptions.InvalidInputException) as caught:
        personalize_client.put_events(trackingId=tid, sessionId="s", eventList=[
            {"eventType": "click", "sentAt": 1700000000, "properties": properties}])
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "eventList.0.properties: is not valid JSON" in str(caught.value)
    assert emulator.events(tid) == []


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_boto3_put_events_with_a_non_finite_event_value_is_refused(
    emulator: EmulatorProcess, personalize_client: Any, value: float
) -> None:
    tid = _tid()
    with pytest.raises(personalize_client.exceptions.InvalidInputException) as caught:
        personalize_client.put_events(trackingId=tid, sessionId="s", eventList=[
            {"eventType": "click", "sentAt": 1700000000, "eventValue": value}])
    assert "eventList.0.eventValue: must be a finite number" in str(caught.value)
    assert emulator.events(tid) == []


@pytest.mark.parametrize("operation", ["put_items", "put_users"])
def test_boto3_items_and_users_with_nan_properties_are_refused(
    emulator: EmulatorProcess, personalize_client: Any, operation: str
) -> None:
    entries = {"put_items": ("items", "itemId"), "put_users": ("users", "userId")}
    list_name, id_field = entries[operation]
    with pytest.raises(personalize_client.exceptions.InvalidInputException) as caught:
        getattr(personalize_client, operation)(datasetArn=DATASET, **{
            list_name: [{id_field: f"x-{uuid.uuid4()}", "properties": '{"price":NaN}'}]})
    assert f"{list_name}.0.properties: is not valid JSON" in str(caught.value)


def _aws(emulator: EmulatorProcess, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "empty-aws-config"
    empty.write_text("")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_CONFIG_FILE": str(empty), "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    aws = Path(sys.executable).with_name("aws")
    cmd = [str(aws), "personalize-events", *args, "--endpoint-url", emulator.url, "--region", "us-east-1"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"eventType": "click", "sentAt": 1700000000, "properties": '{"score":NaN}'}, "eventList.0.properties"),
        ({"eventType": "click", "sentAt": 1700000000, "properties": '{"a":1}{"b":2}'}, "eventList.0.properties"),
    ],
    ids=["properties-nan", "properties-two-objects"],
)
def test_the_aws_cli_gets_invalid_input_for_invalid_properties_json(
    emulator: EmulatorProcess, tmp_path: Path, event: dict[str, Any], field: str
) -> None:
    tid = _tid()
    result = _aws(emulator, "put-events", "--tracking-id", tid, "--session-id", "s",
                  "--event-list", json.dumps([event]), tmp_path=tmp_path)
    assert result.returncode != 0
    assert "InvalidInputException" in result.stderr
    assert field in result.stderr
    assert emulator.events(tid) == []


def test_the_aws_cli_gets_invalid_input_for_a_nan_event_value(emulator: EmulatorProcess, tmp_path: Path) -> None:
    tid = _tid()
    result = _aws(emulator, "put-events", "--tracking-id", tid, "--session-id", "s",
                  "--event-list", "eventType=click,sentAt=1700000000,eventValue=NaN", tmp_path=tmp_path)
    assert result.returncode != 0
    assert "InvalidInputException" in result.stderr
    assert "eventList.0.eventValue: must be a finite number" in result.stderr
    assert emulator.events(tid) == []
