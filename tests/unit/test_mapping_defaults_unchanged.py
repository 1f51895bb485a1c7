"""A mapping without the transform keys maps byte for byte as before them, the time window aside.

The one default that changes an outcome on purpose is the time window (2000 .. a day ahead, on since
issue 16 asked for it): `outcomes(window=False)` turns it off and must give the golden file exactly;
with the defaults only the two records whose sentAt falls in 1970 (1 ms, and epoch seconds read as
the milliseconds they are not) become dead letters.

default_mapping_golden.json was written by `outcomes()` below run against the code before the
transforms (commit ae3ff8d): `PYTHONPATH=<that tree> python tests/unit/test_mapping_defaults_unchanged.py`.
Valid records and dead-lettered ones (their messages) alike, for PutEvents and PutActionInteractions.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from connector.config import ActionInteractionMappingConfig, MappingConfig
from connector.destinations.action_interactions import ActionInteractionMapper
from connector.destinations.events import EventMapper
from connector.records import RecordError, SourceRecord

GOLDEN = Path(__file__).with_name("default_mapping_golden.json")
SOURCE = SourceRecord("interactions", 1, 99, b"k", b"v", timestamp_ms=1_714_566_645_123)
AT = dt.datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=dt.UTC)

EVENTS: list[dict[str, Any]] = [
    {"sessionId": "s", "eventType": "click", "sentAt": AT},
    {"sessionId": "s", "eventType": "click", "sentAt": 1},  # 1970: outside the default window
    {"sessionId": "s", "eventType": "click", "sentAt": 1_714_566_645},  # seconds are not guessed: 1970 too
    {"sessionId": "s", "eventType": "click", "sentAt": "2024-05-01T12:30:45Z"},  # no ISO by default
    {"sessionId": "s", "eventType": "click", "sentAt": dt.datetime(2024, 5, 1, 12)},  # naive: UTC
    {"sessionId": "s", "eventType": "click", "sentAt": AT, "userId": "u", "itemId": 42, "eventValue": 2,
     "properties": {"NUMBER_OF_RATINGS": 3, "genres": ["a", "b|c"], "n": None}, "impression": ["x", "y"],
     "trackingId": "t-rec", "recommendationId": "r", "eventAttributionSource": "src", "eventId": "e"},
    {"sessionId": "s", "eventType": None, "sentAt": AT},
    {"sessionId": "s", "eventType": "click", "sentAt": None},
    {"sessionId": "s", "eventType": "click", "sentAt": 1.5},
    {"sessionId": "s", "eventType": "click", "sentAt": AT, "properties": {"a": float("nan")}},
]
ACTIONS: list[dict[str, Any]] = [
    {"actionId": "a", "sessionId": "s", "timestamp": 1_714_566_645_123, "properties": {"K_K": [1, 2]}},
    {"actionId": "a", "sessionId": "s", "timestamp": AT, "eventType": "Taken", "userId": "u"},
    {"actionId": "a", "sessionId": "s", "timestamp": "2024-05-01T12:30:45Z"},
]


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else repr(value)


OFF = {"time_not_before": None, "time_max_ahead_s": None}


def outcomes(window: bool = True) -> list[Any]:
    off = {} if window else OFF
    events = EventMapper(MappingConfig(**off), "tracker")
    actions = ActionInteractionMapper(ActionInteractionMappingConfig(event_type_default="Viewed", **off), "t-a", "ai")
    out: list[Any] = []
    for mapper, records in ((events, EVENTS), (actions, ACTIONS)):
        for record in records:
            try:
                event = mapper.to_event(record, SOURCE)  # type: ignore[attr-defined]
            except RecordError as error:
                out.append({"error": [error.stage, error.error_class, error.message]})
                continue
            out.append({"key": repr(event.key), "body": json.dumps(event.body, default=_plain)})
    return out


def test_a_mapping_without_the_new_keys_maps_as_before() -> None:
    assert outcomes(window=False) == json.loads(GOLDEN.read_text())


def test_the_default_window_changes_only_the_1970_records() -> None:
    golden, now = json.loads(GOLDEN.read_text()), outcomes()
    changed = [i for i, (before, after) in enumerate(zip(golden, now, strict=True)) if before != after]
    assert changed == [1, 2]
    for i in changed:
        assert now[i]["error"][0] == "validate"
        assert "before mapping.time_not_before" in now[i]["error"][2]


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(outcomes(window=False), indent=1) + "\n")
    sys.exit(0)
