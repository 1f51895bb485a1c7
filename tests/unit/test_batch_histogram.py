"""The end-to-end histogram, observed a batch at a time, exposes what prometheus_client's own does."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from connector.observability import _E2E_BUCKETS, BatchHistogram


def exposition(registry: CollectorRegistry) -> str:
    # The _created sample differs by construction time only.
    return re.sub(r"(_created) \S+", r"\1 T", generate_latest(registry).decode())


@given(st.lists(st.lists(st.one_of(st.sampled_from([0.0, *_E2E_BUCKETS]),
                                   st.floats(0, 1e6, allow_nan=False)), max_size=10), max_size=30))
def test_same_exposition_as_histogram(batches: list[list[float]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batch_histogram = BatchHistogram("e2e_seconds", "doc", buckets=_E2E_BUCKETS, registry=ours)
    histogram = Histogram("e2e_seconds", "doc", buckets=_E2E_BUCKETS, registry=theirs)
    for batch in batches:
        batch_histogram.observe_many(batch)
        for value in batch:
            histogram.observe(value)
    assert exposition(ours) == exposition(theirs)
