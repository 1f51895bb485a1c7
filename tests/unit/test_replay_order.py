"""`dlq inspect` and `dlq replay --dry-run` print the same whatever order a client's fetches come
back in: partitions are read one after another, and a reason's first and last source are its lowest
and highest source positions. (Two clients reading a 3-partition dead-letter topic interleaved
differently and printed different first sources: a flaky comparison in tests/integration/test_replay.py.)"""

from __future__ import annotations

import random
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.records import SourceRecord, TopicPartition
from connector.tools.replay import Inspection, Span, read_spans

TOPIC = "interactions.dlq"


class InterleavingReader:
    """What read_spans asks of a TopicReader: records of the assigned partitions, handed out in
    chunks whose mix of partitions the seed decides, as fetches of a real client come back."""

    def __init__(self, records: dict[int, int], seed: int) -> None:
        self._sizes = records
        self._random = random.Random(seed)
        self._next: dict[TopicPartition, int] = {}

    def assign(self, starts: Mapping[TopicPartition, int]) -> None:
        self._next = dict(starts)

    def read(self, max_records: int, timeout_s: float) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        for _ in range(self._random.randint(1, 5)):
            open_tps = [tp for tp, n in self._next.items() if n < self._sizes[tp.partition]]
            if not open_tps:
                break
            tp = self._random.choice(open_tps)
            offset = self._next[tp]
            self._next[tp] = offset + 1
            source = b"interactions"
            headers = [("pkc.error.stage", b"decode"), ("pkc.error.class", b"Truncated"),
                       ("pkc.error.message", f"letter {tp.partition}@{offset}".encode()),
                       ("pkc.source.topic", source), ("pkc.source.partition", str(tp.partition).encode()),
                       ("pkc.source.offset", str(offset * 7).encode())]
            out.append(SourceRecord(tp.topic, tp.partition, offset, None, b"x", headers))
        return out


def _read(sizes: dict[int, int], seed: int) -> list[SourceRecord]:
    spans = {TopicPartition(TOPIC, p): Span(0, n) for p, n in sizes.items() if n}
    return list(read_spans(InterleavingReader(sizes, seed), spans))  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(sizes=st.dictionaries(st.integers(0, 4), st.integers(0, 30), min_size=1),
       seeds=st.tuples(st.integers(), st.integers()))
def test_what_is_read_and_summarised_does_not_depend_on_how_fetches_interleave(
    sizes: dict[int, int], seeds: tuple[int, int]
) -> None:
    runs = [_read(sizes, seed) for seed in seeds]
    positions = [[(r.partition, r.offset) for r in run] for run in runs]
    assert positions[0] == positions[1] == [(p, o) for p in sorted(sizes) for o in range(sizes[p])]
    summaries = []
    for run in runs:
        inspection = Inspection(TOPIC)
        for record in reversed(run):  # even read backwards, the summary is by position
            inspection.add(record)
        summaries.append({k: (s.count, s.first, s.last, s.example) for k, s in inspection.reasons.items()})
    assert summaries[0] == summaries[1]
    if run := runs[0]:
        [(count, first, last, example)] = summaries[0].values()
        lowest = min(run, key=lambda r: (r.partition, r.offset))
        highest = max(run, key=lambda r: (r.partition, r.offset))
        assert count == len(run) and first.endswith(f"[{lowest.partition}]@{lowest.offset * 7}")
        assert last.endswith(f"[{highest.partition}]@{highest.offset * 7}")
        assert example == f"letter {lowest.partition}@{lowest.offset}"
