"""The commit rule as a property of the real worker, over random schedules on the in-memory
harness: whatever the order of polls, call outcomes, dead-letter acknowledgements, rebalances and
lost partitions, no commit ever passes a record that was neither delivered nor dead-lettered and
acknowledged; and once everything is answered, every partition is committed to its end."""

from __future__ import annotations

from fixtures.inmemory import InMemoryDeadLetters, WorkerHarness, abandon, reject
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.records import TopicPartition

TPS = (TopicPartition("interactions", 0), TopicPartition("interactions", 1))

produce = st.tuples(st.just("produce"), st.integers(0, 1), st.booleans(), st.integers(0, 2))
action = st.one_of(
    produce,
    st.tuples(st.just("step")),
    st.tuples(st.just("release"), st.integers(0, 20)),
    st.tuples(st.just("hold"), st.booleans()),
    st.tuples(st.just("ack"), st.integers(0, 20)),
    st.tuples(st.just("rebalance")),
    st.tuples(st.just("lose")),
    st.tuples(st.just("tick"), st.floats(0.0, 20.0)),
    st.tuples(st.just("abandon next")),
    st.tuples(st.just("reject next"), st.integers(0, 30)),
)


def _done(h: WorkerHarness, tp: TopicPartition) -> set[int]:
    """Offsets of `tp` that really left: delivered at least once, or their dead letter acknowledged."""
    assert h.dlq is not None
    delivered = {e.record.offset for o in h.sink.outcomes for e in o.delivered if e.record.tp == tp}
    acked = {letter.record.offset for letter in h.dlq.letters
             if letter.record.tp == tp and letter.answered}
    return delivered | acked


def _check_commits(h: WorkerHarness) -> None:
    for tp in TPS:
        done = _done(h, tp)
        for offset in h.source.committed_offsets(tp):
            missing = [o for o in range(offset) if o not in done]
            assert not missing, f"{tp} committed at {offset} past {missing} (neither delivered nor acked)"


def _apply(h: WorkerHarness, step: tuple[object, ...]) -> None:
    assert h.dlq is not None
    kind = step[0]
    if kind == "produce":
        _, p, bad, key = step
        h.source.produce(TPS[int(p)], b"bad" if bad else b"ok",  # type: ignore[call-overload]
                         key=None if key == 0 else f"k{key}".encode())
    elif kind == "step":
        h.step()
    elif kind == "release" and h.calls.held:
        call = h.calls.held[int(step[1]) % len(h.calls.held)]  # type: ignore[call-overload]
        h.calls.release(lambda batch: batch is call.args[0])
    elif kind == "hold":
        held = bool(step[1])
        h.sink.hold = lambda batch: held
    elif kind == "ack":
        pending = [letter for letter in h.dlq.letters if not letter.answered]
        if pending:
            pending[int(step[1]) % len(pending)].answer()  # type: ignore[call-overload]
    elif kind == "rebalance":
        h.source.revoke(*TPS)
        h.source.assign(*TPS)
        h.step()
    elif kind == "lose":
        h.source.lose(*TPS)
        h.source.assign(*TPS)
        h.step()
    elif kind == "abandon next":
        h.sink.script.append(abandon)
    elif kind == "reject next":
        h.sink.script.append(reject(int(step[1])))  # type: ignore[call-overload]
    elif kind == "tick":
        h.clock.advance(float(step[1]))  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(action, max_size=40))
def test_no_schedule_commits_past_a_record_that_has_not_left(schedule: list[tuple[object, ...]]) -> None:
    h = WorkerHarness(dead_letters=InMemoryDeadLetters(answer="hold"), max_events_per_call=3, linger_s=2.0,
                      poll_batch_size=3)
    h.sink.hold = lambda batch: True
    h.source.assign(*TPS)
    for step in schedule:
        _apply(h, step)
        _check_commits(h)
    # Everything is answered from here on: every partition reaches its end, still by the rule.
    assert h.dlq is not None
    h.dlq.answer = "ack"
    h.sink.hold = lambda batch: False
    h.calls.release()
    h.run_until(lambda: (h.calls.release() or True) and all(
        h.source.committed_offset(tp) == h.source.end(tp) or h.source.end(tp) == 0 for tp in TPS))
    _check_commits(h)
