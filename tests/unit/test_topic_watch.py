"""The deleted-topic probe runs beside the loop: a slow metadata answer never holds a turn, and
its answer is taken at a later turn; closing waits (bounded) for a probe in progress."""

from __future__ import annotations

import threading
import time
from typing import Any

from connector.pipeline.progress import TopicWatch


class SlowMetadata:
    """Only what TopicWatch asks of a Source: the missing topics, answered when the test says."""

    def __init__(self) -> None:
        self.answer = threading.Event()
        self.asked = 0
        self.missing: set[str] = set()

    def missing_topics(self, topics: list[str], timeout_s: float) -> set[str] | None:
        self.asked += 1
        self.answer.wait(10)
        return set(self.missing)


def _watch(source: SlowMetadata, now: list[float]) -> TopicWatch:
    fake: Any = source
    return TopicWatch(fake, ["interactions"], interval_s=5.0, clock=lambda: now[0])


def _until(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_slow_probe_never_holds_the_loop_and_is_taken_at_a_later_turn() -> None:
    source, now = SlowMetadata(), [0.0]
    source.missing = {"interactions"}
    watch = _watch(source, now)
    try:
        for _ in range(2):  # two checks in a row confirm a missing topic
            now[0] += 5.0
            watch.check_if_due()  # the probe hangs in its metadata request, the turn goes on
            probe = watch._probe
            assert probe is not None and not probe.done()
            watch.check_if_due()  # still waiting: no second probe, nothing decided
            assert watch.missing == set()
            source.answer.set()
            _until(lambda w=watch: w._probe is None or w._probe.done())
            source.answer.clear()
        watch.check_if_due()
        assert watch.missing == {"interactions"}
    finally:
        source.answer.set()
        watch.close()


def test_close_waits_for_a_probe_in_progress_before_the_consumer_closes() -> None:
    source, now = SlowMetadata(), [0.0]
    watch = _watch(source, now)
    now[0] = 5.0
    watch.check_if_due()
    probe = watch._probe
    assert probe is not None
    _until(lambda: source.asked == 1)
    threading.Timer(0.2, source.answer.set).start()
    watch.close()
    assert probe.done()
