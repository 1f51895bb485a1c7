"""The committer: what may be committed, and committing it (Kafka Connect's `preCommit`).

The offset committed per partition is its watermark: the first offset not yet delivered or
dead-lettered-and-acknowledged (`connector.pipeline.offsets`), so a restart can repeat work, never skip
it. The offsets already delivered above the watermark ride along in the commit's metadata, and a
new owner of the partition reads them on assignment and skips those records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress

from connector.kafka.base import CommitFailed, Source
from connector.observability import Metrics
from connector.pipeline.offsets import decode_delivered, encode_delivered
from connector.pipeline.partitions import Partitions
from connector.records import TopicPartition

log = logging.getLogger("connector.worker")


class Committer:
    def __init__(self, source: Source, partitions: Partitions, metrics: Metrics, *, interval_s: float,
                 with_metadata: bool, clock: Callable[[], float]) -> None:
        self._source = source
        self._partitions = partitions
        self._metrics = metrics
        self._interval_s = interval_s
        self._with_metadata = with_metadata
        self._clock = clock
        self._last_commit = clock()

    def due(self) -> bool:
        return self._clock() - self._last_commit >= self._interval_s

    def commit(self, only: set[TopicPartition] | None = None) -> None:
        self._last_commit = self._clock()
        tracker, partitions = self._partitions.tracker, self._partitions
        offsets = {
            tp: offset
            for tp, offset in tracker.committable(include_delivered_above=self._with_metadata).items()
            if tp in partitions and (only is None or tp in only)
        }
        if not offsets:
            return
        metadata = (
            {tp: encode_delivered(o, tracker.delivered_above_watermark(tp)) for tp, o in offsets.items()}
            if self._with_metadata
            else None
        )
        try:
            self._source.commit(offsets, metadata)
        except CommitFailed as exc:
            # Nothing is lost: the same (or a later) watermark is committed next time.
            log.warning("commit failed, will retry: %s", exc)
            self._metrics.commits.labels("failed").inc()
            return
        self._metrics.commits.labels("ok").inc()
        for tp, offset in offsets.items():
            tracker.mark_committed(tp, offset)
        for tp in partitions.assigned:
            self._metrics.watermark_lag.labels(tp.topic, str(tp.partition)).set(tracker.lag(tp))

    def uncommitted(self) -> bool:
        """Something of ours could be committed now (a bounded run is not done before it is)."""
        return any(tp in self._partitions for tp in self._partitions.tracker.committable())

    def read_previous_owner(self, tps: list[TopicPartition]) -> None:
        """Read which offsets the previous owner delivered above its last commit."""
        if not self._with_metadata or not tps:
            return
        try:
            committed = self._source.committed(tps, timeout_s=10.0)
        except Exception as exc:  # only an optimisation: without it those offsets are sent again
            log.warning("could not read commit metadata of %s: %s", ", ".join(map(str, tps)), exc)
            return
        for tp, (offset, metadata) in committed.items():
            delivered = decode_delivered(offset, metadata)
            state = self._partitions.get(tp)
            if delivered and state is not None:
                state.already_delivered = set(delivered)
                state.delivered_base = offset
                log.info("%s: skipping %d offsets delivered above %d by the previous owner",
                         tp, len(delivered), offset)

    def forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            with suppress(KeyError):  # no series yet if we never committed this partition
                self._metrics.watermark_lag.remove(tp.topic, str(tp.partition))
