"""NaN and ±Infinity are not JSON: they must never reach PutEvents/PutItems/PutUsers (issue 13, item 9).

Python's json writes them as the bare tokens NaN/Infinity (invalid JSON), and botocore sends a float
NaN as the string "NaN"; the service would store garbage or refuse the call. The mapper rejects
them at validation with a message naming the field, and the shared validator (used by the emulator)
refuses `properties` strings holding them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest

from connector.config import EntityMappingConfig, MappingConfig
from connector.destinations.entities import EntityKind, EntityMapper
from connector.destinations.events import EventMapper
from connector.destinations.items import ITEMS
from connector.destinations.users import USERS
from connector.personalize import api_model
from connector.records import InvalidEvent, SourceRecord

SOURCE = SourceRecord("interactions", 0, 7, b"k", b"v")
SENT_AT = dt.datetime(2024, 5, 1, 12, 30, 15, tzinfo=dt.UTC)
DATASET = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
NON_FINITE = [math.nan, math.inf, -math.inf]
NON_FINITE_IDS = ["nan", "inf", "-inf"]


def _record(**overrides: Any) -> dict[str, Any]:
    return {"sessionId": "s-1", "eventType": "click", "sentAt": SENT_AT, **overrides}


def _rejected(mapper: EventMapper | EntityMapper, record: dict[str, Any]) -> str:
    with pytest.raises(InvalidEvent) as caught:
        mapper.to_event(record, SOURCE)
    assert caught.value.stage == "validate"
    return caught.value.message


@pytest.mark.parametrize("value", NON_FINITE, ids=NON_FINITE_IDS)
def test_a_non_finite_event_value_is_rejected_naming_it(value: float) -> None:
    message = _rejected(EventMapper(MappingConfig(), "t"), _record(eventValue=value))
    assert message.startswith("eventValue: ")
    assert "finite" in message and repr(value) in message


@pytest.mark.parametrize("value", NON_FINITE, ids=NON_FINITE_IDS)
def test_a_non_finite_property_is_rejected_naming_its_key(value: float) -> None:
    mapper = EventMapper(MappingConfig(), "t")
    message = _rejected(mapper, _record(properties={"color": "red", "score": value}))
    assert message.startswith("properties.score: ")
    assert "JSON" in message and repr(value) in message


def test_a_non_finite_property_field_is_rejected_too() -> None:
    mapper = EventMapper(MappingConfig(property_fields=["detail.score"]), "t")
    message = _rejected(mapper, _record(detail={"score": math.nan}))
    assert message.startswith("properties.score: ")


@pytest.mark.parametrize("kind", [ITEMS, USERS], ids=["items", "users"])
@pytest.mark.parametrize("value", NON_FINITE, ids=NON_FINITE_IDS)
def test_items_and_users_properties_reject_non_finite_numbers(kind: EntityKind, value: float) -> None:
    mapper = EntityMapper(kind, EntityMappingConfig(), DATASET, kind.name)
    id_field = "itemId" if kind.name == "items" else "userId"
    message = _rejected(mapper, {id_field: "x-1", "properties": {"price": value}})
    assert message.startswith("properties.price: ")


def test_finite_numbers_still_pass() -> None:
    event = EventMapper(MappingConfig(), "t").to_event(
        _record(eventValue=1e308, properties={"score": -1.5e-300, "n": 3}), SOURCE
    )
    assert event.body["eventValue"] == 1e308
    assert json.loads(event.body["properties"]) == {"score": -1.5e-300, "n": 3}


@pytest.mark.parametrize(
    "text",
    ['{"score":NaN}', '{"score":Infinity}', '{"score":-Infinity}', '{"a":1} x', '{"a":1}{"b":2}'],
    ids=["nan", "inf", "-inf", "trailing-junk", "two-objects"],
)
def test_the_validator_refuses_properties_that_are_not_strict_json(text: str) -> None:
    event = {"eventType": "click", "sentAt": 1700000000, "properties": text}
    [violation] = api_model.check_event(event)
    assert violation.field == "event.properties"
    assert "not valid JSON" in violation.message
    item = {"itemId": "i", "properties": text}
    [violation] = api_model.check_entry("PutItems", item, path="item")
    assert violation.field == "item.properties"


@pytest.mark.parametrize("wire", ["NaN", "Infinity", "-Infinity"])
def test_the_validator_refuses_a_non_finite_event_value_as_serialised(wire: str) -> None:
    """botocore's rest-json serializer sends a float NaN as the string "NaN" (and so would the AWS CLI)."""
    [violation] = api_model.check_event({"eventType": "c", "sentAt": 1, "eventValue": wire})
    assert violation.field == "event.eventValue"
    assert "finite" in violation.message


@pytest.mark.parametrize("value", NON_FINITE, ids=NON_FINITE_IDS)
def test_the_validator_refuses_a_non_finite_event_value_before_serialisation(value: float) -> None:
    [violation] = api_model.check_event({"eventType": "c", "sentAt": 1, "eventValue": value})
    assert violation.field == "event.eventValue"
    assert "finite" in violation.message
