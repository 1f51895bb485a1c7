"""A due batch that no call slot can take stays open in the batcher and keeps taking its session's
events: when calls, not the linger, are the limit (the quota, a slow service), calls leave fuller.
Closed on linger regardless, a worker behind a backlog sent as many calls per event as when live."""

from __future__ import annotations

from fixtures.inmemory import WorkerHarness

from connector.records import TopicPartition

TP = TopicPartition("interactions", 0)


def _sessions(h: WorkerHarness) -> list[tuple[str, int]]:
    return [(b.key.session_id, len(b.events)) for b in h.sink.sent]


def test_a_due_session_waits_open_while_every_call_slot_and_the_queue_are_taken() -> None:
    h = WorkerHarness(linger_s=1.0, max_in_flight_calls=1)
    h.sink.hold = lambda batch: True  # calls hang until released
    h.source.assign(TP)
    h.source.produce(TP, b"ok", key=b"a")
    h.step()
    h.clock.advance(1.0)
    h.step()  # a is due and takes the one call slot
    h.source.produce(TP, b"ok", key=b"b")
    h.step()
    h.clock.advance(1.0)
    h.step()  # b is due and waits for the slot: the queue holds one round of calls
    for _ in range(4):  # c comes event by event, each due at once, with nowhere to go
        h.source.produce(TP, b"ok", key=b"c")
        h.step()
        h.clock.advance(1.0)
        h.step()
    assert [(c.args[0].key.session_id, len(c.args[0].events)) for c in h.calls.held] == [("a", 1)]
    h.sink.hold = lambda batch: False
    h.calls.release()
    h.run_until(lambda: h.source.committed_offset(TP) == 6)
    assert _sessions(h) == [("a", 1), ("b", 1), ("c", 4)]


def test_with_free_call_slots_a_due_session_leaves_at_its_linger() -> None:
    h = WorkerHarness(linger_s=1.0, max_in_flight_calls=2)
    h.source.assign(TP)
    for _ in range(3):
        h.source.produce(TP, b"ok", key=b"c")
        h.step()
        h.clock.advance(1.0)
        h.step()
    assert _sessions(h) == [("c", 1), ("c", 1), ("c", 1)]
