"""Sample traffic for each of the five destinations, by kind: what `produce --kind` and the demo send.

Interactions come from `connector.tools.workload` (the realistic clickstream). This module adds the
catalogue, the profiles, the actions and the action interactions that go with it: pure and seeded
like the clickstream (nothing here touches Kafka), written with the packaged schemas, and keyed so
one entity's updates or one session's interactions stay in one partition. Ids agree with the
clickstream's (`item-00042`, `user-000042`), so a demo's catalogue describes the items clicked.
About `bad_ratio` of the records are broken on purpose, labelled like the clickstream's bad ones.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import avro_schemas
from connector.tools.workload import DEFAULT_START_MS, MEAN_GAP_MS, SampleRecord, generate

# Bad records of items, users and actions: bytes that are not Avro, a frame cut short by the
# producer, an id over the API's 256 characters, and a delete marker (the APIs cannot delete).
ENTITY_BAD_KINDS: Final = ("not-avro", "truncated", "long-id", "delete-marker")
# Bad action interactions: as above for the bytes, then two that break PutActionInteractions' rules.
ACTION_INTERACTION_BAD_KINDS: Final = ("not-avro", "truncated", "missing-session", "reserved-property")

N_ACTIONS: Final = 200  # the actions the interactions pick from
MEAN_ACTION_SESSION_LENGTH: Final = 5.0
ACTION_EVENT_TYPES: Final = ("Viewed", "Taken", "Not Taken")
_ACTION_EVENT_WEIGHTS: Final = (0.7, 0.2, 0.1)
_CATEGORIES: Final = ("shoes", "outdoor", "kitchen", "books", "toys", "garden")
_MEMBERSHIPS: Final = ("free", "silver", "gold")
_ACTION_NAMES: Final = ("sign-up", "app-install", "newsletter", "loyalty-join", "survey")

# (n_records, n_sessions or None, seed, bad_ratio) -> the records, like workload.generate.
Generator = Callable[[int, int | None, int, float], Iterator[SampleRecord]]


@dataclass(frozen=True, slots=True)
class SampleKind:
    """One kind of sample traffic: `name` is produce's --kind, `destination` a route's destination."""

    name: str
    destination: str
    operation: str  # the Personalize call it ends in
    schema: str  # the packaged schema its values are written with
    id_field: str  # the field that names what was delivered (the eventId, itemId ...)
    generate: Generator


def _broken(kind: str, value: dict[str, Any], id_field: str) -> tuple[dict[str, Any] | None, bytes | None]:
    """Turn a good value into a bad record of `kind`: (value, raw)."""
    if kind == "not-avro":
        return None, json.dumps(value, separators=(",", ":")).encode()  # JSON on an Avro topic
    if kind == "truncated":
        return value, None  # cut by the producer after framing, as in workload
    if kind == "long-id":
        return {**value, id_field: value[id_field] + "-" + "x" * 256}, None
    if kind == "delete-marker":
        return {**value, "deleted": True}, None
    if kind == "missing-session":
        return {**value, "sessionId": ""}, None
    if kind == "reserved-property":
        return {**value, "properties": {"userId": "someone"}}, None
    raise ValueError(f"unknown bad kind {kind!r}")  # pragma: no cover - the tuples above are closed


def _entities(id_field: str, make_id: Callable[[int], str],
              properties: Callable[[random.Random], dict[str, Any]]) -> Generator:
    """A generator of `n` distinct entities (one update each), keyed by their id; no sessions."""

    def generate_entities(n: int, _sessions: int | None, seed: int, bad_ratio: float) -> Iterator[SampleRecord]:
        _check_arguments(n, bad_ratio)
        rng = random.Random(seed)
        for i in range(n):
            entity_id = make_id(i)
            value: dict[str, Any] = {id_field: entity_id, "properties": properties(rng), "deleted": False}
            bad_kind = _bad_kind(rng, bad_ratio, ENTITY_BAD_KINDS)
            sent, raw = (value, None) if bad_kind is None else _broken(bad_kind, value, id_field)
            yield SampleRecord(entity_id.encode(), sent, raw, bad_kind, "", None)

    return generate_entities


def generate_action_interactions(n: int, n_sessions: int | None, seed: int,
                                 bad_ratio: float = 0.0) -> Iterator[SampleRecord]:
    """`n` interactions with actions over sessions (default ~5 each), each session's in time order."""
    _check_arguments(n, bad_ratio)
    if n == 0:
        return
    rng = random.Random(seed)
    sessions = min(n_sessions or max(1, round(n / MEAN_ACTION_SESSION_LENGTH)), n)
    clock_ms = DEFAULT_START_MS
    for i in range(n):
        session = rng.randrange(sessions)
        session_id = f"action-sess-{seed}-{session:06d}"
        clock_ms += 1 + int(rng.expovariate(1.0 / MEAN_GAP_MS))  # strictly increasing: sessions stay ordered
        value: dict[str, Any] = {
            "eventId": f"action-evt-{seed}-{i}" if rng.random() < 0.5 else None,  # the others: derived ids
            "trackingId": None,
            "actionId": f"action-{rng.randrange(N_ACTIONS):04d}",
            "sessionId": session_id,
            "userId": f"user-{session:06d}" if session % 7 else None,  # some sessions are anonymous
            "eventType": rng.choices(ACTION_EVENT_TYPES, _ACTION_EVENT_WEIGHTS)[0],
            "timestamp": clock_ms,
            "recommendationId": None,
            "impression": [],
            "properties": {"channel": "app"} if rng.random() < 0.3 else {},
        }
        bad_kind = _bad_kind(rng, bad_ratio, ACTION_INTERACTION_BAD_KINDS)
        sent, raw = (value, None) if bad_kind is None else _broken(bad_kind, value, "eventId")
        yield SampleRecord(session_id.encode(), sent, raw, bad_kind, session_id, value["eventId"])


def _bad_kind(rng: random.Random, bad_ratio: float, kinds: tuple[str, ...]) -> str | None:
    return kinds[rng.randrange(len(kinds))] if bad_ratio and rng.random() < bad_ratio else None


def _check_arguments(n: int, bad_ratio: float) -> None:
    if n < 0:
        raise ValueError("n_events must be >= 0")
    if not 0.0 <= bad_ratio <= 1.0:
        raise ValueError("bad_ratio must be between 0 and 1")


def _item_properties(rng: random.Random) -> dict[str, Any]:
    return {"CATEGORY": _CATEGORIES[rng.randrange(len(_CATEGORIES))], "PRICE": round(rng.uniform(2.0, 300.0), 2)}


def _user_properties(rng: random.Random) -> dict[str, Any]:
    return {"MEMBERSHIP": _MEMBERSHIPS[rng.randrange(len(_MEMBERSHIPS))], "AGE": rng.randint(18, 80)}


def _action_properties(rng: random.Random) -> dict[str, Any]:
    return {"NAME": _ACTION_NAMES[rng.randrange(len(_ACTION_NAMES))], "VALUE": rng.randint(1, 100)}


KINDS: Final[dict[str, SampleKind]] = {kind.name: kind for kind in (
    SampleKind("interactions", "events", "PutEvents", avro_schemas.INTERACTION_EVENT, "eventId", generate),
    SampleKind("items", "items", "PutItems", avro_schemas.ITEM, "itemId",
               _entities("itemId", lambda i: f"item-{i:05d}", _item_properties)),
    SampleKind("users", "users", "PutUsers", avro_schemas.USER, "userId",
               _entities("userId", lambda i: f"user-{i:06d}", _user_properties)),
    SampleKind("actions", "actions", "PutActions", avro_schemas.ACTION, "actionId",
               _entities("actionId", lambda i: f"action-{i:04d}", _action_properties)),
    SampleKind("action-interactions", "action_interactions", "PutActionInteractions", avro_schemas.ACTION_INTERACTION,
               "eventId", generate_action_interactions),
)}
