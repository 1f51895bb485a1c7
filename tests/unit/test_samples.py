"""Sample traffic of every kind: deterministic, keyed as the destination needs, good records map to
valid entries with the connector's own destination, and bad ones fail where their label says."""

from __future__ import annotations

import io
import struct
from collections import Counter
from typing import Any

import fastavro
import pytest

from connector.config import ActionInteractionsRoute, AnyRoute, EntityRoute, EventsRoute
from connector.destinations.registry import DESTINATIONS
from connector.records import RecordError, SourceRecord
from connector.tools.produce import make_encoder
from connector.tools.samples import (
    ACTION_INTERACTION_BAD_KINDS,
    ENTITY_BAD_KINDS,
    KINDS,
    SampleKind,
    generate_action_interactions,
)
from connector.tools.workload import BAD_KINDS, UNDECODABLE_KINDS, SampleRecord, parsed_schema

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/DATASET"
UNDECODABLE = UNDECODABLE_KINDS | {"not-avro", "truncated"}
OTHER_KINDS = [name for name in KINDS if name != "interactions"]


def _route(kind: SampleKind) -> AnyRoute:
    if kind.destination == "events":
        return EventsRoute(name="r", topics=["t"], destination="events", tracking_id="tracker")
    if kind.destination == "action_interactions":
        return ActionInteractionsRoute(name="r", topics=["t"], destination="action_interactions", tracking_id="t")
    return EntityRoute(name="r", topics=["t"], destination=kind.destination, dataset_arn=ARN)  # type: ignore[arg-type]


def test_one_kind_per_destination_with_its_packaged_schema() -> None:
    assert {kind.destination for kind in KINDS.values()} == set(DESTINATIONS)
    for kind in KINDS.values():
        packaged = DESTINATIONS[kind.destination].reader_schema
        assert packaged is None or packaged == kind.schema, kind.name
    assert KINDS["interactions"].schema == "interaction_event.avsc"


@pytest.mark.parametrize("name", OTHER_KINDS)
def test_deterministic_exact_counts_and_bad_kinds_at_about_the_ratio(name: str) -> None:
    generate = KINDS[name].generate
    records = list(generate(4_000, None, 5, 0.1))
    assert records == list(generate(4_000, None, 5, 0.1)) and records != list(generate(4_000, None, 6, 0.1))
    assert len(records) == 4_000 and list(generate(0, None, 5, 0.1)) == []
    bad = Counter(r.bad_kind for r in records if r.bad_kind is not None)
    allowed = ACTION_INTERACTION_BAD_KINDS if name == "action-interactions" else ENTITY_BAD_KINDS
    assert set(bad) == set(allowed)
    assert 300 < sum(bad.values()) < 500
    with pytest.raises(ValueError, match="bad_ratio"):
        list(generate(1, None, 5, 1.5))


@pytest.mark.parametrize("name", ["items", "users", "actions"])
def test_entities_are_distinct_keyed_by_their_id_and_have_no_session(name: str) -> None:
    kind = KINDS[name]
    records = list(kind.generate(1_000, None, 3, 0.0))
    ids = [r.value[kind.id_field] for r in records if r.value is not None]
    assert len(set(ids)) == 1_000
    assert all(r.key == r.value[kind.id_field].encode() and r.session_id == "" for r in records if r.value)


def test_action_interactions_are_keyed_by_session_in_time_order() -> None:
    records = list(generate_action_interactions(3_000, None, 9))
    assert 550 < len({r.session_id for r in records}) <= 600  # ~5 per session by default (some draw none)
    assert len({r.session_id for r in generate_action_interactions(300, 7, 9)}) == 7
    by_session: dict[str, list[int]] = {}
    for r in records:
        assert r.value is not None and r.key == r.session_id.encode() and r.event_id == r.value["eventId"]
        by_session.setdefault(r.session_id, []).append(r.value["timestamp"])
    assert all(times == sorted(times) for times in by_session.values())
    assert 0.4 < sum(r.event_id is not None for r in records) / len(records) < 0.6  # the others: derived ids


def _decode(kind: SampleKind, framed: bytes, schema_id: int) -> dict[str, Any]:
    if framed[:5] != b"\x00" + struct.pack(">I", schema_id):
        raise ValueError("not Confluent framing")
    schema = parsed_schema(kind.schema)
    decoded = fastavro.schemaless_reader(io.BytesIO(framed[5:]), schema, schema)
    assert isinstance(decoded, dict)
    return decoded


@pytest.mark.parametrize("name", list(KINDS))
def test_good_records_map_to_valid_entries_and_bad_ones_fail_as_labelled(name: str) -> None:
    kind = KINDS[name]
    destination = DESTINATIONS[kind.destination].build(_route(kind))
    encode = make_encoder(42, kind.schema)
    records: list[SampleRecord] = list(kind.generate(2_000, None, 13, 0.2))
    failed: Counter[str] = Counter()
    for offset, record in enumerate(records):
        framed = encode(record)
        try:
            decoded = _decode(kind, framed, 42)
        except Exception:  # EOFError, StopIteration, ValueError alike: the bytes are not the record
            assert record.bad_kind in UNDECODABLE, (record.bad_kind, framed[:20])
            failed[record.bad_kind] += 1
            continue
        assert record.bad_kind not in UNDECODABLE, record.bad_kind
        source = SourceRecord("t", 0, offset, record.key, framed)
        if record.bad_kind is None:
            entry = destination.to_event(decoded, source)
            assert record.value is not None
            own_id = record.value[kind.id_field]  # an eventId may be absent: the connector derives one
            assert entry.body[kind.id_field] == own_id or (own_id is None and entry.body[kind.id_field])
        else:
            with pytest.raises(RecordError):
                destination.to_event(decoded, source)
            failed[record.bad_kind] += 1
    expected = set(BAD_KINDS) if name == "interactions" else set(
        ACTION_INTERACTION_BAD_KINDS if name == "action-interactions" else ENTITY_BAD_KINDS)
    assert set(failed) == expected
