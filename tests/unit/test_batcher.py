"""Session batching: full batches, linger, revoke and shutdown flushes, order within a session."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.destinations.events import SessionKey
from connector.pipeline.batcher import SessionBatcher
from connector.records import Event, SourceRecord


def _event(session: str, offset: int, partition: int = 0) -> Event:
    key = SessionKey("tracker", session, None)
    return Event(key, {"eventType": "view", "sentAt": offset}, SourceRecord("t", partition, offset, None, b""))


def test_a_session_is_sent_when_it_has_max_events() -> None:
    batcher = SessionBatcher(10, linger_s=60)
    batches = [batcher.add(_event("s", i), now=0) for i in range(25)]
    full = [b for b in batches if b is not None]
    assert [len(b.events) for b in full] == [10, 10]
    assert batcher.buffered_events == 5
    rest = batcher.flush_all()
    assert [len(b.events) for b in rest] == [5]


def test_linger_closes_the_oldest_sessions_first() -> None:
    batcher = SessionBatcher(10, linger_s=1.0)
    batcher.add(_event("a", 0), now=0.0)
    batcher.add(_event("b", 1), now=0.5)
    assert batcher.due(now=0.9) == []
    due_in = batcher.next_due_in(now=0.9)
    assert due_in is not None and abs(due_in - 0.1) < 1e-9
    assert [b.key.session_id for b in batcher.due(now=1.0)] == ["a"]
    assert [b.key.session_id for b in batcher.due(now=1.6)] == ["b"]
    assert batcher.next_due_in(now=2) is None


def test_lost_partitions_are_dropped() -> None:
    batcher = SessionBatcher(10, linger_s=60)
    batcher.add(_event("a", 0, partition=0), now=0)
    batcher.add(_event("a", 1, partition=1), now=0)
    assert batcher.drop_partitions([SourceRecord("t", 1, 0, None, None).tp]) == 1
    assert [len(b.events) for b in batcher.flush_all()] == [1]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("abcdefg"), max_size=200), st.integers(1, 10))
def test_every_event_leaves_once_in_session_order_and_no_batch_mixes_sessions(
    sessions: list[str], max_events: int
) -> None:
    batcher = SessionBatcher(max_events, linger_s=5)
    out = []
    for offset, session in enumerate(sessions):
        full = batcher.add(_event(session, offset), now=offset * 0.1)
        if full:
            out.append(full)
        out.extend(batcher.due(now=offset * 0.1))
    out.extend(batcher.flush_all())
    assert all(1 <= len(b.events) <= max_events for b in out)
    assert all(len({e.key for e in b.events}) == 1 and b.events[0].key == b.key for b in out)
    seen = [e.record.offset for b in out for e in b.events]
    assert sorted(seen) == list(range(len(sessions)))
    for session in set(sessions):
        offsets = [e.record.offset for b in out if b.key.session_id == session for e in b.events]
        assert offsets == sorted(offsets)


def test_due_gives_at_most_what_it_is_asked_for_oldest_first_and_keeps_the_rest_open() -> None:
    batcher = SessionBatcher(10, linger_s=1.0)
    for i, session in enumerate("abc"):
        batcher.add(_event(session, i), now=0.0)
    assert [b.key.session_id for b in batcher.due(now=2.0, most=1)] == ["a"]
    assert batcher.due(now=2.0, most=0) == []
    batcher.add(_event("b", 3), now=2.0)  # still open: it takes the session's next event
    assert [(b.key.session_id, len(b.events)) for b in batcher.due(now=2.0)] == [("b", 2), ("c", 1)]
    assert batcher.buffered_events == 0
