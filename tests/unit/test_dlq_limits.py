"""dlq.max_failure_ratio over dlq.failure_ratio_window: the policy as pure logic, against a model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.pipeline.dlq_limits import FailureRatioLimit
from connector.records import TopicPartition

TP = TopicPartition("t", 0)
OTHER = TopicPartition("t", 1)


def _model_exceeded(outcomes: list[bool], max_ratio: float, window: int) -> bool:
    """Reference: with one more failure, the last `window` outcomes are full and fail > max_ratio."""
    if max_ratio == 0:
        return False
    last = [*outcomes, True][-window:]
    return len(last) == window and sum(last) > max_ratio * window


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), max_size=120), st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), st.integers(1, 30))
def test_the_limit_is_the_share_of_failures_in_a_full_sliding_window(
    outcomes: list[bool], max_ratio: float, window: int
) -> None:
    limit = FailureRatioLimit(max_ratio, window)
    seen: list[bool] = []
    for failed in outcomes:
        assert limit.exceeded_by_one_more_failure(TP) == _model_exceeded(seen, max_ratio, window)
        limit.record(TP, failed)
        limit.record(OTHER, not failed)  # partitions are judged apart
        seen.append(failed)
    assert limit.exceeded_by_one_more_failure(TP) == _model_exceeded(seen, max_ratio, window)
    if max_ratio:
        assert limit.failures(TP) == sum(seen[-window:])


def test_a_mostly_bad_stream_with_good_records_between_stalls_where_a_run_limit_would_not() -> None:
    """Three bad, one good, over and over: no run longer than 3, but 75 % failures."""
    limit = FailureRatioLimit(0.5, 20)
    stalled_at = None
    for i in range(100):
        failed = i % 4 != 3
        if failed and limit.exceeded_by_one_more_failure(TP):
            stalled_at = i
            break
        limit.record(TP, failed)
    # Record 19 is good; record 20 is the first failure that fills the window of 20: 15 of them
    # failed (> 0.5 x 20). Dead letters before it: 15, where a run limit of 4 never trips.
    assert stalled_at == 20


def test_a_short_burst_never_trips_it_and_forget_starts_afresh() -> None:
    limit = FailureRatioLimit(0.9, 1000)
    for _ in range(998):
        limit.record(TP, True)
    assert not limit.exceeded_by_one_more_failure(TP)  # 999 outcomes: the window is not full
    limit.record(TP, True)
    assert limit.exceeded_by_one_more_failure(TP)
    limit.forget({TP})
    assert not limit.exceeded_by_one_more_failure(TP)


def test_zero_disables_it_and_nonsense_is_refused() -> None:
    limit = FailureRatioLimit(0.0, 1)
    limit.record(TP, True)
    assert not limit.exceeded_by_one_more_failure(TP)
    with pytest.raises(ValueError):
        FailureRatioLimit(1.5, 10)
    with pytest.raises(ValueError):
        FailureRatioLimit(0.5, 0)
