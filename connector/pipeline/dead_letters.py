"""The dead-letter policy: what happens to a record that cannot be delivered.

Usually its dead letter is written (with the record's key, value, headers and the error's
context) and the record leaves the offsets tracker when the broker acknowledges the letter — not
before, so a letter that fails to be written never lets a commit pass its record. When dead
letters stop being the answer, the partition stalls instead (rewound, retried later, /readyz
false): a run of `max_consecutive_failures` letters in a row or more than `max_failure_ratio`
of the last `failure_ratio_window` records (more likely a wrong mapping or a broken producer than
bad records), or a letter even the dead-letter topic refuses. Letters about one tenant's tracker
(UnknownTracker, TrackerNotAllowed) never stall a partition other tenants share. Without a dead-letter topic the
worker stops without committing past the record: nothing disappears silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from connector.dlq import DeadLetterRefused, DeadLetterWriter
from connector.logs import redact
from connector.observability import Metrics
from connector.pipeline.flow import FlowControl
from connector.pipeline.partitions import Partitions, PartitionState
from connector.pipeline.settings import WorkerSettings
from connector.records import Event, RecordError, SourceRecord
from connector.routes import RouteTable

log = logging.getLogger("connector.worker")


class FatalError(Exception):
    """The worker cannot go on without losing records (e.g. a bad record and no DLQ)."""


class DeadLetterPolicy:
    def __init__(self, settings: WorkerSettings, writer: DeadLetterWriter | None, *, partitions: Partitions,
                 flow: FlowControl, routes: RouteTable, metrics: Metrics, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._writer = writer
        self._partitions = partitions
        self._flow = flow
        self._routes = routes
        self._metrics = metrics
        self._clock = clock
        # Set when a dead letter could not be written: the loop stops (its record stays uncommitted).
        self.fatal: str | None = None

    @property
    def pending(self) -> int:
        """Letters written and not yet acknowledged by the broker."""
        return self._writer.pending if self._writer is not None else 0

    def poll(self) -> None:
        """Serve the producer's acknowledgements (the letters' records leave the tracker)."""
        if self._writer is not None:
            self._writer.poll()

    def handle(self, record: SourceRecord, error: RecordError) -> bool:
        """Dead-letter `record`; False if its partition stalled instead (the record is read again)."""
        tp = record.tp
        state = self._partitions.get(tp)
        if state is None:
            return True  # not ours any more: the new owner decides about it
        if not error.tenant_scoped and not self._within_limits(record, error, state):
            return False
        log.warning(
            "dead-lettering %s (%s/%s): %s", record.position(), error.stage, error.error_class, redact(error.message)
        )
        topic = self._routes.for_topic(record.topic).dlq_topic
        if self._writer is None or topic is None:
            raise FatalError(
                f"{error.stage} error at {record.position()}: {error.error_class}: {redact(error.message)}. "
                "No dlq.topic is configured, so the worker stops here without committing past "
                "this record; configure dlq.topic (or the route's dlq_topic) or fix the record."
            )
        epoch = state.epoch
        self._metrics.dead_letters.labels(error.stage, error.error_class).inc()

        def acked(rec: SourceRecord, err: Exception | None) -> None:
            current = self._partitions.current(rec.tp, epoch)
            if isinstance(err, DeadLetterRefused):
                # Even the reduced letter does not fit the DLQ topic: stopping would crash-loop on
                # this record after every restart; holding only its partition keeps the rest going.
                if current:
                    self._stall(rec, RecordError(str(err), error_class="DeadLetterRefused"), "dead_letter_refused")
            elif err is not None:
                self.fatal = f"could not write the dead letter of {rec.position()}: {err}"
            elif current:
                self._partitions.leave(rec)

        self._writer.send(record, error, acked, topic=topic)
        return True

    def _within_limits(self, record: SourceRecord, error: RecordError, state: PartitionState) -> bool:
        """Count the letter in its partition's run and failure ratio; False if it stalled instead.

        A tenant-scoped letter (UnknownTracker, TrackerNotAllowed) is not counted at all (handle
        skips this): it says one tenant's tracker is unknown or not allowed, which is neither a
        broken stream nor fixed by waiting, and its records may be the most of a partition that
        other tenants share: stalling it would hold their records too. So such letters neither
        extend a run (nor the ratio) nor end one. The one thing lost is the alarm for a mapping
        that reads the tracker from the wrong field; pkc_unknown_tracker_dead_letters_total and
        pkc_dead_letters_total{error_class} show it, and allowed_tracking_ids stops it at validation.
        """
        tp = record.tp
        ratio, limit = self._partitions.failure_ratio, self._settings.max_consecutive_failures
        if limit and state.consecutive_failures >= limit:
            self._stall(record, error, "consecutive_failures")
            return False
        if ratio.exceeded_by_one_more_failure(tp):
            self._stall(record, error, "failure_ratio")
            return False
        state.consecutive_failures += 1
        ratio.record(tp, True)
        state.last_dead_letter = max(record.offset, state.last_dead_letter)
        return True

    def passed(self, record: SourceRecord) -> None:
        """`record` decoded and mapped: a run of dead letters (and a stall) on its partition ends."""
        state = self._partitions.get(record.tp)
        if state is not None:
            state.consecutive_failures = 0
            state.stall_reason = None
        self._partitions.failure_ratio.record(record.tp, False)

    def skipped(self, record: SourceRecord) -> None:
        """`record` needs no call (a delete its route skips): a good record for the ratio, but it
        does not end a run of dead letters."""
        self._partitions.failure_ratio.record(record.tp, False)

    def delivered(self, events: Iterable[Event]) -> None:
        """Delivered records end their partition's run of dead letters, unless they come before it
        (a call finishing late for records *before* a run must not end it)."""
        for event in events:
            state = self._partitions.get(event.record.tp)
            if state is not None and event.record.offset > state.last_dead_letter:
                state.consecutive_failures = 0

    def _stall(self, record: SourceRecord, error: RecordError, reason: str) -> None:
        """Hold the partition at this record and retry later instead of dead-lettering the whole
        stream; operators see it in pkc_partitions_stalled, pkc_partition_stalls_total{reason} and
        /readyz."""
        tp = record.tp
        state = self._partitions.get(tp)
        if state is None:
            return
        if state.stall_reason is None:
            ratio = self._partitions.failure_ratio
            if reason == "failure_ratio":
                why = (f"{ratio.failures(tp)} of its last {ratio.window} records were "
                       f"dead-lettered (dlq.max_failure_ratio {ratio.max_ratio:g})")
            elif reason == "dead_letter_refused":
                why = "the dead-letter topic refused even the reduced dead letter (raise its max.message.bytes)"
            else:
                why = f"{state.consecutive_failures} dead letters in a row (dlq.max_consecutive_failures)"
            log.error(
                "%s stalled at offset %d: %s; last: %s/%s: %s; retrying in %.0fs",
                tp, record.offset, why, error.stage, error.error_class,
                redact(error.message), self._settings.stall_retry_s,
            )
            self._metrics.partition_stalls.labels(reason).inc()
        state.stall_reason = reason
        self._flow.hold(record, self._clock() + self._settings.stall_retry_s)
