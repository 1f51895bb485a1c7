"""Intake: the source's records in, the entries to batch out.

Each record enters the offsets tracker here (an offset below the one expected means the log
changed under us: the partition restarts), is skipped if the previous owner already delivered it
(commit metadata), and is turned into its route's entry (or left out: a skipped delete, a record
the route's mapping filters out; committed and counted, never sent). A record that cannot be (decode or
validation error) goes to the dead-letter policy; one that must wait (the registry is
unavailable) holds its partition and is read again later. Either way the rest of that poll's
records of the partition are left for the re-read, so a partition's records are taken in order.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator

from connector.observability import Metrics
from connector.pipeline.dead_letters import DeadLetterPolicy
from connector.pipeline.flow import FlowControl
from connector.pipeline.partitions import Partitions, PartitionState
from connector.pipeline.settings import WorkerSettings
from connector.records import Event, Filtered, RecordError, SourceRecord, TopicPartition
from connector.routes import RouteTable

log = logging.getLogger("connector.worker")


class Intake:
    def __init__(self, settings: WorkerSettings, *, routes: RouteTable, partitions: Partitions,
                 dead_letters: DeadLetterPolicy, flow: FlowControl, metrics: Metrics,
                 restart: Callable[[TopicPartition, int], None]) -> None:
        self._settings = settings
        self._routes = routes
        self._partitions = partitions
        self._dead_letters = dead_letters
        self._flow = flow
        self._metrics = metrics
        # The worker's: drop the partition's work and start it afresh (its log changed).
        self._restart = restart

    def take(self, records: list[SourceRecord], now: float) -> Iterator[Event]:
        """The entries of `records`, yielded one at a time so that each is batched before the next
        record is taken (a restart of its partition then drops it with the rest of the old log)."""
        retryable, stop_at = self._settings.retryable_decode_errors, self._settings.stop_at
        tracker, partitions, dead_letters = self._partitions.tracker, self._partitions, self._dead_letters
        rewound: set[TopicPartition] = set()
        consumed: dict[str, int] = defaultdict(int)
        try:
            for record in records:
                tp = record.tp
                if tp in rewound or (stop_at is not None and record.offset >= stop_at.get(tp, 0)):
                    continue
                if tp not in partitions:
                    continue  # fetched before its partition was taken from us: the new owner reads it
                consumed[record.topic] += 1
                if not tracker.track(tp, record.offset):
                    self._restart(tp, record.offset)
                    tracker.track(tp, record.offset)
                state = partitions.get(tp)
                assert state is not None
                if state.already_delivered and self._skip_delivered(state, record):
                    continue
                state.buffered_bytes += len(record.value or b"")
                route = self._routes.for_topic(record.topic)
                try:
                    entry = route.to_entry(record)
                except RecordError as error:
                    if not dead_letters.handle(record, error):
                        rewound.add(tp)
                    continue
                except Filtered:  # left out by the route's mapping.include/exclude: like a skipped delete
                    partitions.leave(record)
                    self._metrics.records_filtered.labels(route.name).inc()
                    dead_letters.skipped(record)
                    continue
                except retryable as exc:
                    # Not the record's fault: read this partition again from here after a pause.
                    log.warning("decode of %s must wait: %s", record.position(), exc)
                    self._flow.hold(record, now + self._settings.decode_retry_backoff_s)
                    rewound.add(tp)
                    continue
                if entry is None:  # a delete the route skips
                    partitions.leave(record)
                    self._metrics.deletes_skipped.labels(route.name).inc()
                    dead_letters.skipped(record)
                    continue
                dead_letters.passed(record)
                yield entry
        finally:
            for topic, n in consumed.items():
                self._metrics.records_consumed.labels(topic).inc(n)

    def _skip_delivered(self, state: PartitionState, record: SourceRecord) -> bool:
        """True if the previous owner delivered `record` above its last commit (it leaves at once)."""
        if record.offset < state.delivered_base:
            # Read from below the previous owner's commit: the log was re-created or reset since,
            # and the offsets it delivered name other records now.
            log.warning("%s starts at %d, below its committed offset %d: not skipping the %d offsets "
                        "the previous owner delivered (they belong to an older log)",
                        record.tp, record.offset, state.delivered_base, len(state.already_delivered))
            state.already_delivered = set()
            return False
        if record.offset not in state.already_delivered:
            return False
        state.already_delivered.discard(record.offset)
        self._partitions.tracker.done(record.tp, record.offset)
        self._metrics.records_skipped.inc()
        return True
