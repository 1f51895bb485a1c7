"""The commit watermark rule, driven by random completion orders, failures, rewinds and revokes.

Rule: the offset committed for a partition is the first offset not yet done, so every offset
below a committed one has been delivered or dead-lettered.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from connector.pipeline.offsets import OffsetTracker
from connector.records import TopicPartition

TPS = [TopicPartition("t", 0), TopicPartition("t", 1)]

op = st.one_of(
    st.tuples(st.just("poll"), st.sampled_from(TPS), st.integers(1, 5), st.integers(1, 3)),
    st.tuples(st.just("done"), st.sampled_from(TPS), st.integers(0, 50)),
    st.tuples(st.just("commit")),
    st.tuples(st.just("revoke"), st.sampled_from(TPS)),
    st.tuples(st.just("rewind"), st.sampled_from(TPS), st.integers(0, 50)),
    # The log itself goes back (topic re-created, truncated, offsets reset by another tool): the
    # source reads from a lower offset, unasked.
    st.tuples(st.just("regress"), st.sampled_from(TPS), st.integers(0, 50)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(op, max_size=80))
@example([("poll", TPS[0], 1, 1), ("done", TPS[0], 0), ("commit",), ("revoke", TPS[0]), ("regress", TPS[0], 0),
          ("poll", TPS[0], 1, 1), ("commit",)])  # the model once held the old ownership's commit as a floor
def test_watermark_never_passes_an_offset_that_is_not_done(ops: list[tuple]) -> None:
    tracker = OffsetTracker()
    # Reference model per partition: offsets polled in this ownership, and which are done.
    polled: dict[TopicPartition, list[int]] = {tp: [] for tp in TPS}
    done: dict[TopicPartition, set[int]] = {tp: set() for tp in TPS}
    position: dict[TopicPartition, int] = dict.fromkeys(TPS, 0)
    committed: dict[TopicPartition, int] = {}

    for step in ops:
        kind = step[0]
        if kind == "poll":
            _, tp, count, gap = step
            for _ in range(count):
                if not tracker.track(tp, position[tp]):
                    # What the worker does: that log is gone, restart the partition from here
                    # (outcomes of the old log's records are dropped by the worker's epochs).
                    tracker.reset_to(tp, position[tp])
                    polled[tp], done[tp] = [], set()
                    committed.pop(tp, None)
                    assert tracker.track(tp, position[tp])
                polled[tp].append(position[tp])
                position[tp] += gap  # gaps stand for compaction and transaction markers
        elif kind == "done":
            _, tp, index = step
            open_offsets = [o for o in polled[tp] if o not in done[tp]]
            if open_offsets:
                offset = open_offsets[index % len(open_offsets)]
                tracker.done(tp, offset)
                done[tp].add(offset)
        elif kind == "commit":
            for tp, offset in tracker.committable().items():
                # Every polled offset below the committed one must be done.
                assert all(o in done[tp] for o in polled[tp] if o < offset), (tp, offset)
                # Nothing polled-and-open may hide below it, and it never moves backwards
                # within one ownership.
                assert offset >= committed.get(tp, 0)
                tracker.mark_committed(tp, offset)
                committed[tp] = offset
        elif kind == "revoke":
            _, tp = step
            tracker.forget([tp])
            # The next owner (us again) resumes from the committed offset, as a new ownership: if
            # the log then goes back under it (regress), its first commit may be lower than ours.
            position[tp] = committed.pop(tp, 0)
            polled[tp], done[tp] = [], set()
        elif kind == "rewind":
            _, tp, index = step
            open_offsets = [o for o in polled[tp] if o not in done[tp]]
            if open_offsets:
                offset = open_offsets[index % len(open_offsets)]
                tracker.truncate(tp, offset)
                polled[tp] = [o for o in polled[tp] if o < offset]
                done[tp] = {o for o in done[tp] if o < offset}
                position[tp] = offset
        elif kind == "regress":
            _, tp, back = step
            position[tp] = max(0, position[tp] - 1 - back)

        for tp in TPS:
            mark = tracker.watermark(tp)
            if mark is not None:
                assert all(o in done[tp] for o in polled[tp] if o < mark)
                open_offsets = [o for o in polled[tp] if o not in done[tp]]
                if open_offsets:
                    assert mark == min(open_offsets)
            assert tracker.in_flight(tp) == len([o for o in polled[tp] if o not in done[tp]])


def test_watermark_is_one_past_the_last_offset_when_all_done() -> None:
    tracker = OffsetTracker()
    tp = TPS[0]
    for offset in (5, 6, 9):
        tracker.track(tp, offset)
    tracker.done(tp, 9)
    tracker.done(tp, 5)
    assert tracker.watermark(tp) == 6
    assert tracker.delivered_above_watermark(tp) == [9]
    tracker.done(tp, 6)
    assert tracker.watermark(tp) == 10
    assert tracker.committable() == {tp: 10}


def test_offsets_that_go_backwards_are_reported_instead_of_ignored() -> None:
    """Issue 13, finding 1: a re-created topic restarts at 0 below our position. Ignoring those
    offsets let the watermark (10 here) pass records that were never delivered."""
    tracker = OffsetTracker()
    tp = TPS[0]
    for offset in range(10):
        tracker.track(tp, offset)
        tracker.done(tp, offset)
    tracker.mark_committed(tp, 10)
    assert tracker.track(tp, 3) is False
    assert tracker.watermark(tp) == 10  # unchanged until the caller restarts the partition
    tracker.reset_to(tp, 3)
    assert tracker.track(tp, 3) is True
    assert tracker.watermark(tp) == 3
    # The restart is committed even if its offset happened to equal the old log's commit.
    assert tracker.committable() == {tp: 3}


def test_a_rewind_of_our_own_is_not_a_regression() -> None:
    tracker = OffsetTracker()
    tp = TPS[0]
    for offset in range(10):
        tracker.track(tp, offset)
    tracker.truncate(tp, 4)  # we seek back to 4 (decode backoff, stall): 4.. are read again
    assert tracker.expected(tp) == 4
    assert all(tracker.track(tp, offset) for offset in range(4, 12))
    assert tracker.in_flight(tp) == 12


def test_a_late_rewind_above_an_earlier_one_changes_nothing() -> None:
    # A dead letter refused after another one below it already rewound the partition: giving up its
    # offset again must not raise the resume point (the records between would be skipped).
    tracker = OffsetTracker()
    tp = TPS[0]
    for offset in range(10):
        tracker.track(tp, offset)
    assert tracker.truncate(tp, 4) is True
    assert tracker.truncate(tp, 7) is False
    assert tracker.truncate(tp, 4) is False
    assert tracker.expected(tp) == 4 and tracker.watermark(tp) == 0
    assert all(tracker.track(tp, offset) for offset in range(4, 10))
    assert tracker.truncate(tp, 7) is True  # re-read and in flight again: a real rewind
    assert tracker.expected(tp) == 7


def test_late_outcome_for_a_forgotten_partition_is_ignored() -> None:
    tracker = OffsetTracker()
    tp = TPS[0]
    tracker.track(tp, 0)
    tracker.forget([tp])
    tracker.done(tp, 0)
    assert tracker.watermark(tp) is None


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**12), st.lists(st.integers(1, 5000), max_size=300, unique=True))
def test_commit_metadata_round_trips_delivered_offsets(committed: int, deltas: list[int]) -> None:
    from connector.pipeline.offsets import decode_delivered, encode_delivered

    delivered = sorted(committed + d for d in deltas)
    text = encode_delivered(committed, delivered)
    assert len(text) <= 3500
    decoded = decode_delivered(committed, text)
    # What does not fit is left out (those offsets are merely sent again); what is in is exact.
    assert decoded == delivered[: len(decoded)]
    if len(text) < 3000:
        assert decoded == delivered


def test_fragmented_offsets_fit_densely() -> None:
    """Interleaved sessions leave every other offset delivered: thousands still fit."""
    from connector.pipeline.offsets import decode_delivered, encode_delivered

    delivered = list(range(1001, 41001, 2))  # 20,000 scattered offsets above 1000
    assert decode_delivered(1000, encode_delivered(1000, delivered)) == delivered


def test_foreign_or_broken_metadata_skips_nothing() -> None:
    from connector.pipeline.offsets import decode_delivered

    assert decode_delivered(10, "") == []
    assert decode_delivered(10, "some other tool's metadata") == []
    assert decode_delivered(10, "pkc2:not base64!") == []
    assert decode_delivered(10, "pkc2:") == []
