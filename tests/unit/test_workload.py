"""The sample-traffic generator: deterministic, well-shaped, and its bad records are bad as labelled."""

from __future__ import annotations

import io
import itertools
import struct
from collections import Counter, defaultdict
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.tools.workload import (
    BAD_KINDS,
    INVALID_EVENT_KINDS,
    UNKNOWN_SCHEMA_ID,
    SampleRecord,
    generate,
    parsed_schema,
)

N = 20_000


@pytest.fixture(scope="module")
def good() -> list[SampleRecord]:
    return list(generate(N, None, seed=11))


@pytest.fixture(scope="module")
def mixed() -> list[SampleRecord]:
    return list(generate(N, None, seed=12, bad_ratio=0.1))


def _sessions(records: list[SampleRecord]) -> dict[str, list[dict[str, Any]]]:
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        assert r.value is not None
        by_session[r.session_id].append(r.value)
    return by_session


def test_deterministic_for_a_seed() -> None:
    assert list(generate(3_000, None, 5, 0.1)) == list(generate(3_000, None, 5, 0.1))
    assert list(generate(3_000, None, 5)) != list(generate(3_000, None, 6))


def test_exact_event_and_session_counts(good: list[SampleRecord]) -> None:
    assert len(good) == N
    # Default: ~9 events per session.
    assert len(_sessions(good)) == round(N / 9)
    forced = list(generate(5_000, 321, seed=3))
    assert len(forced) == 5_000
    assert len({r.session_id for r in forced}) == 321
    # More sessions than events is clamped: every session has at least one event.
    assert len({r.session_id for r in generate(10, 50, seed=3)}) == 10
    assert list(generate(0, None, seed=3)) == []


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 400),
    sessions=st.none() | st.integers(1, 60),
    seed=st.integers(0, 2**32),
    ratio=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_counts_hold_for_any_arguments(n: int, sessions: int | None, seed: int, ratio: float) -> None:
    records = list(generate(n, sessions, seed, ratio))
    assert len(records) == n
    if sessions is not None and n:
        assert len({r.session_id for r in records}) == min(n, sessions)
    if ratio == 1.0:
        assert all(r.bad_kind in BAD_KINDS for r in records)
    for r in records:
        assert (r.value is None) != (r.raw is None)
        assert r.key == r.session_id.encode()


def test_rejects_nonsense_arguments() -> None:
    with pytest.raises(ValueError):
        list(generate(-1, None, 1))
    with pytest.raises(ValueError):
        list(generate(10, 0, 1))
    with pytest.raises(ValueError):
        list(generate(10, None, 1, bad_ratio=1.5))


def test_sessions_are_time_ordered_and_interleaved(good: list[SampleRecord]) -> None:
    for session_id, events in _sessions(good).items():
        times = [e["sentAt"] for e in events]
        assert times == sorted(times) and len(set(times)) == len(times), session_id
        assert all(e["sessionId"] == session_id for e in events)
    # Live traffic: consecutive records mostly come from different sessions.
    switches = sum(a.session_id != b.session_id for a, b in itertools.pairwise(good))
    assert switches > 0.8 * len(good)
    # Several sessions in flight at once: within 200 records there are dozens of sessions.
    assert len({r.session_id for r in good[5_000:5_200]}) > 20


def test_key_is_session_and_user_is_stable_per_session(good: list[SampleRecord]) -> None:
    for r in good:
        assert r.key == r.session_id.encode()
    for events in _sessions(good).values():
        assert len({e["userId"] for e in events}) == 1


def test_distribution_is_realistic(good: list[SampleRecord]) -> None:
    events = [r.value for r in good if r.value is not None]
    sessions = _sessions(good)
    lengths = [len(v) for v in sessions.values()]
    assert 8 <= sum(lengths) / len(lengths) <= 10
    assert max(lengths) >= 40  # a heavy tail of long sessions
    assert sum(n == 1 for n in lengths) > 0.05 * len(lengths)  # and bounces

    anonymous = sum(v[0]["userId"] is None for v in sessions.values()) / len(sessions)
    assert 0.11 <= anonymous <= 0.19

    types = Counter(e["eventType"] for e in events)
    assert set(types) == {"view", "click", "add-to-cart", "purchase"}
    assert types["view"] > types["click"] > types["add-to-cart"] > types["purchase"] > 0
    assert all(e["eventValue"] is not None and e["eventValue"] > 0 for e in events if e["eventType"] == "purchase")
    assert all(e["eventValue"] is None for e in events if e["eventType"] != "purchase")

    # Zipf-like popularity: the top 1% of items take a big share, yet the tail is long.
    items = Counter(e["itemId"] for e in events)
    top = sum(c for _, c in items.most_common(100))
    assert top > 0.35 * len(events)
    assert len(items) > 2_000

    with_ids = [e["eventId"] for e in events if e["eventId"] is not None]
    assert 0.45 <= len(with_ids) / len(events) <= 0.55
    assert len(set(with_ids)) == len(with_ids)

    impressions = [e["impression"] for e in events if e["impression"]]
    assert 0.1 * len(events) < len(impressions) < 0.4 * len(events)
    assert all(1 <= len(i) <= 25 for i in impressions)
    assert all(e["recommendationId"] is not None for e in events if e["impression"])
    assert all(len(e["recommendationId"]) <= 40 for e in events if e["recommendationId"])
    assert 0 < sum(e["eventAttributionSource"] is not None for e in events) < 0.1 * len(events)
    with_props = [e["properties"] for e in events if e["properties"]]
    assert 0.2 * len(events) < len(with_props) < 0.5 * len(events)
    assert any(len(p) >= 2 for p in with_props)


def test_good_records_validate_against_the_schema(good: list[SampleRecord]) -> None:
    schema = parsed_schema()
    for r in good[:5_000]:
        assert r.bad_kind is None and r.raw is None
        assert validate(r.value, schema, raise_errors=True)


def test_bad_kinds_at_about_the_ratio(mixed: list[SampleRecord]) -> None:
    kinds = Counter(r.bad_kind for r in mixed if r.bad_kind is not None)
    assert set(kinds) == set(BAD_KINDS)
    assert 0.085 * N <= sum(kinds.values()) <= 0.115 * N
    expected_each = 0.1 * N / len(BAD_KINDS)
    assert all(0.6 * expected_each < c < 1.4 * expected_each for c in kinds.values())
    assert all(r.bad_kind is None for r in generate(2_000, None, 1))  # bad_ratio defaults to 0


def test_bad_records_break_what_their_label_says(mixed: list[SampleRecord]) -> None:
    schema = parsed_schema()
    for r in mixed:
        if r.bad_kind is None:
            continue
        if r.bad_kind in INVALID_EVENT_KINDS:
            # Valid Avro, invalid PutEvents event: the connector's validation must catch these.
            assert r.raw is None and r.value is not None
            assert validate(r.value, schema, raise_errors=True)
            v = r.value
            if r.bad_kind == "missing-session":
                assert v["sessionId"] == ""
            elif r.bad_kind == "reserved-property":
                assert "userId" in v["properties"]
            elif r.bad_kind == "too-many-impressions":
                assert len(v["impression"]) == 26
            elif r.bad_kind == "long-recommendation-id":
                assert len(v["recommendationId"]) == 41
        elif r.bad_kind == "not-avro":
            assert r.raw and r.raw[0] != 0
        elif r.bad_kind == "unknown-schema-id":
            assert r.raw is not None and r.raw[0] == 0
            assert struct.unpack(">I", r.raw[1:5])[0] == UNKNOWN_SCHEMA_ID
        elif r.bad_kind == "truncated":
            assert r.raw is None and r.value is not None  # the producer frames and cuts it


def test_encoder_matches_avro_serializer_and_truncation_breaks_decoding() -> None:
    # The producer frames records itself for speed; it must emit exactly what AvroSerializer would.
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from connector.tools.produce import make_encoder, register_schema
    from connector.tools.workload import canonical_schema_str

    schema_id = register_schema("mock://workload-test", "t-value")
    encode = make_encoder(schema_id)
    client = SchemaRegistryClient.new_client({"url": "mock://workload-test"})
    serializer = AvroSerializer(client, canonical_schema_str(), conf={"subject.name.strategy.type": "TOPIC"})
    ctx = SerializationContext("t", MessageField.VALUE)

    records = list(generate(500, None, seed=4, bad_ratio=0.2))
    for r in records:
        framed = encode(r)
        if r.bad_kind is None:
            assert framed[:5] == b"\x00" + struct.pack(">I", schema_id)
            # The mock registry numbers schemas per registration, so compare bodies, not ids.
            assert framed[5:] == serializer(r.value, ctx)[5:]
            decoded = fastavro.schemaless_reader(io.BytesIO(framed[5:]), parsed_schema(), parsed_schema())
            assert isinstance(decoded, dict) and decoded["sessionId"] == r.session_id
        elif r.bad_kind == "truncated":
            assert framed[:5] == b"\x00" + struct.pack(">I", schema_id)
            with pytest.raises(Exception):  # noqa: B017 - EOFError/StopIteration/ValueError alike
                fastavro.schemaless_reader(io.BytesIO(framed[5:]), parsed_schema(), parsed_schema())
        elif r.raw is not None:
            assert framed == r.raw
