"""`personalize-connector dlq inspect | replay`: look at dead letters, and send them again after a fix.

A dead letter is the original record (key, value, headers) plus `pkc.*` headers saying where it
came from and why it failed (connector.dlq). After the cause is fixed (a mapping, a schema, a
tracker), `replay` runs the dead letters through the same pipeline as `run`: the real Worker, built
by `app.build_worker` from the configuration with two changes:

- it reads the dead-letter topic with its own consumer group, `<kafka.group_id>.dlq-replay`, and
  commits its progress there, so a second replay continues where the first stopped;
- it stops at the end offsets captured when it started (`WorkerSettings.stop_at`). Records that
  fail again are dead-lettered again to the dead-letter topic, after that end, with fresh `pkc.*`
  headers, so the replay terminates and they can be replayed again later.

Event ids: a record without its own `eventId` gets one derived from its position. A replay derives
it from the original position named by the `pkc.source.*` headers, not from the position in the
dead-letter topic, so the same source record dead-lettered twice is still one event at Personalize.

`--route NAME` replays through a route of `routes` (actions, action interactions, items, users,
or another events route) instead of the interactions route of `kafka.topics`: the dead-letter
topic becomes that route's only topic, with its destination, mapping and rate, and new failures go
to its dead-letter topic. Without it, the replay is the interactions route's, as it always was.

`inspect` and `replay --dry-run` read with an assigned (group-less) consumer and never commit.
Every Kafka client here comes from connector.kafka.clients, so `kafka.client` and
`kafka.msk_iam_region` apply as they do to `run`.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from connector.config import ConfigError, Settings, load_settings
from connector.destinations.base import Destination
from connector.dlq import parse_error_headers, source_position
from connector.kafka.auth import KafkaAuthError
from connector.kafka.base import KafkaUnreachable, TopicReader
from connector.kafka.clients import KafkaClients
from connector.records import Event, Filtered, NotAnUpsert, RecordError, SourceRecord, TopicPartition

log = logging.getLogger(__name__)

REPLAY_GROUP_SUFFIX = ".dlq-replay"
READ_STALL_S = 30.0  # give up reading when nothing arrives for this long below the end offsets
SYSTEMIC_GIVE_UP_S = 60.0  # stop a replay that cannot deliver anything (unknown tracker, bad credentials)
IDLE_SAFETY_S = 60.0  # stop if nothing happens at all (e.g. another replay owns the partitions)


class UsageError(Exception):
    """The command cannot run as asked (no DLQ topic, topic missing); exit 2."""


# ------------------------------------------------------------------------------------ positions


def original_position(record: SourceRecord) -> SourceRecord:
    """The record as it was at its source, per its pkc.source.* headers or Kafka Connect's
    __connect.errors.* ones (whichever `dlq.context_headers` wrote); itself if there are none."""
    position = source_position(record.headers)
    if position is None:
        return record
    topic, partition, offset = position
    return SourceRecord(topic, partition, offset, record.key, record.value, record.headers, record.timestamp_ms,
                        record.headers_unreadable)


class OriginalPositionDestination:
    """A route's destination mapping with the original position (for derived event ids); the event
    still tracks the DLQ record. Deletes and tombstones are the destination's policy, unchanged."""

    def __init__(self, inner: Destination) -> None:
        self._inner = inner

    @property
    def counts_events(self) -> bool:
        return self._inner.counts_events

    @property
    def skips_deletes(self) -> bool:
        return self._inner.skips_deletes

    def tombstone(self, record: SourceRecord) -> NotAnUpsert | None:
        return self._inner.tombstone(record)

    def to_event(self, record: dict[str, Any], source: SourceRecord) -> Event:
        event = self._inner.to_event(record, original_position(source))
        event.record = source
        return event


# --------------------------------------------------------------------------------- offset plans


@dataclass(frozen=True, slots=True)
class Span:
    """Offsets [start, stop) of one partition to read."""

    start: int
    stop: int

    @property
    def size(self) -> int:
        return max(0, self.stop - self.start)


def _reader(settings: Settings, group_id: str) -> TopicReader:
    return KafkaClients.from_settings(settings).reader(group_id)


def plan_spans(
    reader: TopicReader, topic: str, limit: int | None, committed_group: bool, timeout_s: float = 10.0
) -> dict[TopicPartition, Span]:
    """What to read of `topic`: from the group's committed offset (or the log start) to the end now.

    `limit` is spread over the partitions in order: partition 0 first, then 1, ... Partitions with
    nothing to read are left out.
    """
    partitions = reader.partitions(topic, timeout_s)
    if partitions is None:
        raise UsageError(f"topic '{topic}' does not exist")
    committed: dict[int, int] = {}
    if committed_group:
        found = reader.committed([TopicPartition(topic, p) for p in partitions], timeout_s)
        committed = {tp.partition: offset for tp, offset in found.items()}
    spans: dict[TopicPartition, Span] = {}
    remaining = limit
    for p in partitions:
        low, high = reader.watermarks(TopicPartition(topic, p), timeout_s)
        start = max(low, committed.get(p, -1))
        stop = high if remaining is None else min(high, start + remaining)
        if stop > start:
            spans[TopicPartition(topic, p)] = Span(start, stop)
            if remaining is not None:
                remaining -= stop - start
        if remaining is not None and remaining <= 0:
            break
    return spans


def read_spans(reader: TopicReader, spans: dict[TopicPartition, Span]) -> Iterator[SourceRecord]:
    """Every record of the spans (assigned, no group commits), one partition after another in
    partition order: read together, a client interleaves partitions as its fetches come back
    (confluent-kafka and kafka-python differently, and differently from run to run), and what
    `dlq inspect` and `dlq replay --dry-run` print must not depend on that. Raises TimeoutError on
    a stall."""
    for tp in sorted(spans, key=lambda tp: (tp.topic, tp.partition)):
        yield from _read_span(reader, tp, spans[tp])


def _read_span(reader: TopicReader, tp: TopicPartition, span: Span) -> Iterator[SourceRecord]:
    reader.assign({tp: span.start})
    position = span.start
    last_progress = time.monotonic()
    while position < span.stop:
        records = reader.read(500, 0.5)
        if not records and time.monotonic() - last_progress > READ_STALL_S:
            raise TimeoutError(f"no records for {READ_STALL_S:.0f}s below the end offset of {tp}: "
                               f"at {position} of {span.stop}")
        for record in records:
            last_progress = time.monotonic()
            if (record.topic, record.partition) != (tp.topic, tp.partition) or record.offset >= span.stop:
                continue
            position = record.offset + 1
            yield record


# ---------------------------------------------------------------------------------------- inspect


@dataclass(slots=True)
class ReasonStats:
    """One (stage, error class): how many, the lowest and highest source position, and the example
    message of the lowest. By position, not by reading order: a client reads a multi-partition
    dead-letter topic's partitions interleaved as its fetches come back (confluent-kafka and
    kafka-python differently, and differently from run to run), and the summary must not depend on it."""

    count: int = 0
    first: str = ""
    last: str = ""
    example: str = ""
    source_topics: Counter[str] = field(default_factory=Counter)
    first_at: tuple[str, int, int] | None = None
    last_at: tuple[str, int, int] | None = None

    def add(self, where: str, at: tuple[str, int, int], message: str) -> None:
        self.count += 1
        if self.first_at is None or at < self.first_at:
            self.first_at, self.first, self.example = at, where, message
        if self.last_at is None or at > self.last_at:
            self.last_at, self.last = at, where


@dataclass(slots=True)
class Inspection:
    topic: str
    records: int = 0
    without_headers: int = 0
    reasons: dict[tuple[str, str], ReasonStats] = field(default_factory=dict)
    spans: dict[TopicPartition, Span] = field(default_factory=dict)

    def add(self, record: SourceRecord) -> None:
        self.records += 1
        headers = parse_error_headers(list(record.headers))
        if "pkc.error.stage" not in headers:
            self.without_headers += 1
            return
        key = (headers["pkc.error.stage"], headers.get("pkc.error.class", "?"))
        stats = self.reasons.setdefault(key, ReasonStats())
        source = original_position(record)
        where = source.position() if source is not record else f"{record.position()} (no source headers)"
        stats.add(where, (source.topic, source.partition, source.offset), headers.get("pkc.error.message", ""))
        stats.source_topics[source.topic] += 1


def inspect_topic(settings: Settings, topic: str, limit: int | None) -> Inspection:
    reader = _reader(settings, f"pkc-dlq-inspect-{uuid.uuid4().hex[:8]}")
    try:
        spans = plan_spans(reader, topic, limit, committed_group=False)
        result = Inspection(topic, spans=spans)
        for record in read_spans(reader, spans):
            result.add(record)
        return result
    finally:
        reader.close()


def inspection_table(result: Inspection) -> Any:
    from rich.table import Table

    table = Table(title=f"dead letters in {result.topic}", title_justify="left")
    table.add_column("stage")
    table.add_column("error class")
    table.add_column("count", justify="right")
    table.add_column("first source", overflow="fold")
    table.add_column("last source", overflow="fold")
    table.add_column("example message", overflow="fold", max_width=60)
    for (stage, error_class), stats in sorted(result.reasons.items(), key=lambda kv: (-kv[1].count, kv[0])):
        table.add_row(stage, error_class, f"{stats.count:,}", stats.first, stats.last, stats.example)
    if result.without_headers:
        table.add_row("?", "(no pkc.* headers)", f"{result.without_headers:,}", "", "", "not written by the connector")
    table.add_section()
    table.add_row("total", "", f"{result.records:,}", "", "", "")
    return table


# --------------------------------------------------------------------------------------- dry run


@dataclass(slots=True)
class DryRun:
    would_succeed: int = 0
    would_be_filtered: int = 0  # left out by the route's mapping.include/exclude: committed, not sent
    would_fail: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.would_succeed + self.would_be_filtered + sum(self.would_fail.values()) + sum(self.unknown.values())


def dry_run(settings: Settings, topic: str, group: str, limit: int | None, show: Any,
            route: str | None = None) -> DryRun:
    """Decode and map what a replay would read now; `show(line)` gets one line per record."""
    from connector.app import build_routes
    from connector.decode import RegistryUnavailable
    from connector.observability import Metrics

    # The same decoder and destination the replay worker would use (no call is made with its client).
    [replayed] = build_routes(replay_settings(settings, topic, group, route), Metrics())
    decoder, destination = replayed.decoder, OriginalPositionDestination(replayed.destination)
    result = DryRun()
    # The replay group's own committed offsets: the dry run previews exactly what `replay` would read.
    reader = _reader(settings, group)
    try:
        spans = plan_spans(reader, topic, limit, committed_group=True)
        for record in read_spans(reader, spans):
            headers = parse_error_headers(list(record.headers))
            was = f"{headers.get('pkc.error.stage', '?')}/{headers.get('pkc.error.class', '?')}"
            source = original_position(record)
            origin = f" from {source.position()}" if source is not record else ""
            prefix = f"{record.position()}{origin} (was {was})"
            try:
                event = destination.to_event(decoder.decode(record.value or b""), record)
            except RecordError as error:
                reason = f"{error.stage}/{error.error_class}"
                result.would_fail[reason] += 1
                show(f"{prefix}: still fails: {reason}: {error.message}")
                continue
            except Filtered:
                result.would_be_filtered += 1
                show(f"{prefix}: would be left out by the route's mapping.include/exclude")
                continue
            except RegistryUnavailable as exc:
                result.unknown["registry unavailable"] += 1
                show(f"{prefix}: cannot tell, the schema registry is unavailable: {exc}")
                continue
            result.would_succeed += 1
            session = getattr(event.key, "session_id", None)
            show(f"{prefix}: would be sent now (eventId {event.body.get('eventId')}, session {session})")
    finally:
        reader.close()  # never committed: enable.auto.commit is off and we commit nothing
    return result


def dry_run_table(topic: str, result: DryRun) -> Any:
    from rich.table import Table

    table = Table(title=f"dry run of a replay of {topic} (nothing sent, nothing committed)", title_justify="left")
    table.add_column("outcome")
    table.add_column("records", justify="right")
    table.add_row("dead letters read", f"{result.total:,}")
    table.add_row("would be sent now", f"{result.would_succeed:,}")
    if result.would_be_filtered:  # only with a mapping.include/exclude: the table is unchanged without
        table.add_row("would be left out by the mapping", f"{result.would_be_filtered:,}")
    table.add_row("would fail again", f"{sum(result.would_fail.values()):,}")
    for reason, n in sorted(result.would_fail.items()):
        table.add_row(f"  {reason}", f"{n:,}")
    for reason, n in sorted(result.unknown.items()):
        table.add_row(f"cannot tell: {reason}", f"{n:,}")
    return table


# ----------------------------------------------------------------------------------------- replay


@dataclass(slots=True)
class ReplayResult:
    topic: str
    group: str
    planned: int
    summary: dict[str, Any]
    exit_code: int
    not_reached: dict[str, str]
    stopped_because: str | None = None


def replay_settings(settings: Settings, topic: str, group: str, route: str | None = None) -> Settings:
    """The configuration of the replay worker: the DLQ as one route's only topic, its own group.

    Without `route`, that is the interactions route of kafka.topics; with it, the named route of
    `routes`. Every other route is left out, and the stall guards (a run of dead letters, a share
    of them) are off: a DLQ is nothing but failures.
    """
    kafka_update: dict[str, Any] = {"group_id": group, "auto_offset_reset": "earliest"}
    routes: list[Any] = []
    if route is None:
        if settings.personalize.tracking_id is None:
            raise UsageError("dlq replay sends interaction events: personalize.tracking_id is required "
                             "(or name a route with --route)")
        kafka_update["topics"] = [topic]
        failures = settings.dlq.topic or topic
    else:
        chosen = next((r for r in settings.routes if r.name == route), None)
        if chosen is None:
            names = ", ".join(r.name for r in settings.routes) or "none"
            raise UsageError(f"--route {route!r}: no such route in the configuration's routes (they are: {names})")
        kafka_update["topics"] = []
        failures = chosen.dlq_topic or settings.dlq.topic or topic
        routes = [chosen.model_copy(update={"topics": [topic], "dlq_topic": failures})]
    kafka = settings.kafka.model_copy(update=kafka_update)
    # Failures go back to the configured DLQ; with none configured, to the topic being replayed.
    dlq = settings.dlq.model_copy(update={"topic": failures, "max_consecutive_failures": 0, "max_failure_ratio": 0})
    observability = settings.observability.model_copy(update={"metrics_port": 0})
    return settings.model_copy(update={"kafka": kafka, "dlq": dlq, "observability": observability, "routes": routes})


def replay(settings: Settings, topic: str, limit: int | None, route: str | None = None) -> ReplayResult:
    from connector.app import build_worker

    group = settings.kafka.group_id + REPLAY_GROUP_SUFFIX
    reader = _reader(settings, group)
    try:
        spans = plan_spans(reader, topic, limit, committed_group=True)
    finally:
        reader.close()
    planned = sum(s.size for s in spans.values())
    if not spans:
        return ReplayResult(topic, group, 0, {}, 0, {})
    # Event ids from the original positions (see the module docstring); stop at the ends planned now.
    worker = build_worker(replay_settings(settings, topic, group, route), replaying=True,
                          stop_at={tp: s.stop for tp, s in spans.items()}, wrap_destination=OriginalPositionDestination)

    stopped_because: list[str] = []
    done = threading.Event()

    def watchdog() -> None:
        """A replay that cannot deliver anything (systemic failure) would wait forever: stop it."""
        since: float | None = None
        while not done.wait(1.0):
            if worker.systemic_error is None:
                since = None
                continue
            since = since or time.monotonic()
            if time.monotonic() - since >= SYSTEMIC_GIVE_UP_S:
                stopped_because.append(f"PutEvents failing for {SYSTEMIC_GIVE_UP_S:.0f}s: {worker.systemic_error}")
                worker.request_stop()
                return

    guard = threading.Thread(target=watchdog, name="replay-watchdog", daemon=True)
    guard.start()
    try:
        code = worker.run(exit_when_idle_s=IDLE_SAFETY_S)
    finally:
        done.set()
    not_reached = _not_reached(settings, group, spans)
    if not_reached and code == 0:
        code = 1
    return ReplayResult(topic, group, planned, worker.metrics.summary(), code, not_reached,
                        stopped_because[0] if stopped_because else None)


def _not_reached(settings: Settings, group: str, spans: dict[TopicPartition, Span]) -> dict[str, str]:
    """Partitions whose committed offset in the replay group is still below the planned stop."""
    reader = _reader(settings, group)
    try:
        committed = reader.committed(list(spans), 10)
    finally:
        reader.close()
    out: dict[str, str] = {}
    for tp, offset in committed.items():
        if offset < spans[tp].stop:
            out[str(tp)] = f"committed {max(offset, spans[tp].start)} of {spans[tp].stop}"
    return out


def replay_table(result: ReplayResult) -> Any:
    from rich.table import Table

    s = result.summary
    table = Table(title=f"replay of {result.topic} (group {result.group})", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("dead letters replayed", f"{s.get('records_consumed', 0):,} of {result.planned:,} planned")
    # Every route's entries (for an events route, its events: the same count as pkc_events_delivered).
    table.add_row("delivered now", f"{sum(s.get('delivered_by_route', {}).values()):,}")
    table.add_row("PutEvents calls", f"{s.get('calls', 0):,}")
    table.add_row("failed again (dead-lettered again)", f"{s.get('dead_letters', 0):,}")
    for reason, n in s.get("dead_letters_by_reason", {}).items():
        table.add_row(f"  {reason}", f"{n:,}")
    for tp, where in result.not_reached.items():
        table.add_row(f"not finished: {tp}", where)
    return table


# -------------------------------------------------------------------------------------------- CLI


def _load(args: argparse.Namespace) -> tuple[Settings, str]:
    settings = load_settings(args.config)
    route = next((r for r in settings.routes if r.name == getattr(args, "route", None)), None)
    topic: str | None = args.from_topic or (route.dlq_topic if route else None) or settings.dlq.topic
    if not topic:
        raise UsageError("no dead-letter topic: set dlq.topic in the configuration or pass --from-topic")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    return settings, topic


def quiet_registry_imports() -> None:
    """Import the registry client with its dependencies' deprecation notices silenced (not actionable
    here; authlib re-enables its own warnings on import, so a plain filter would not do)."""
    with warnings.catch_warnings():
        with suppress(ImportError):
            import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401  # its filter first, ours before it
        warnings.simplefilter("ignore")
        import confluent_kafka.schema_registry  # noqa: F401


def inspect_from_cli(args: argparse.Namespace) -> int:
    from rich.console import Console

    quiet_registry_imports()
    console = Console(highlight=False)
    try:
        settings, topic = _load(args)
        result = inspect_topic(settings, topic, args.limit)
    except (ConfigError, UsageError) as exc:
        print(f"personalize-connector dlq inspect: {exc}")
        return 2
    except TimeoutError as exc:
        print(f"personalize-connector dlq inspect: reading {args.from_topic or 'the DLQ'} stalled: {exc}")
        return 1
    except (KafkaAuthError, KafkaUnreachable) as exc:
        print(f"personalize-connector dlq inspect: {exc}")
        return 1
    console.print(inspection_table(result))
    read = ", ".join(f"{tp} {s.start}..{s.stop - 1}" for tp, s in result.spans.items()) or "nothing (empty)"
    print(f"read {result.records:,} dead letter(s) from {topic}: {read}")
    return 0


def replay_from_cli(args: argparse.Namespace) -> int:
    from rich.console import Console

    from connector.logs import configure_logging, register_secrets

    quiet_registry_imports()
    console = Console(highlight=False)
    try:
        settings, topic = _load(args)
    except (ConfigError, UsageError) as exc:
        print(f"personalize-connector dlq replay: {exc}")
        return 2
    configure_logging("text", args.log_level)
    register_secrets(settings.secret_values())  # as `run` does: a library may log one in clear
    group = settings.kafka.group_id + REPLAY_GROUP_SUFFIX
    try:
        if args.dry_run:
            print(f"dry run: decoding and mapping the dead letters of {topic} a replay would read now "
                  f"(group {group}); nothing is sent and nothing committed")
            dry = dry_run(settings, topic, group, args.limit, print, args.route)
            console.print(dry_run_table(topic, dry))
            return 0
        failures = replay_settings(settings, topic, group, args.route).dlq.topic
        print(f"replaying the dead letters of {topic} with consumer group {group}; "
              f"records that fail again go to {failures}")
        result = replay(settings, topic, args.limit, args.route)
    except UsageError as exc:
        print(f"personalize-connector dlq replay: {exc}")
        return 2
    except ConfigError as exc:
        print(f"personalize-connector dlq replay: invalid configuration: {exc}")
        return 2
    except (TimeoutError, KafkaAuthError, KafkaUnreachable) as exc:
        print(f"personalize-connector dlq replay: {exc}")
        return 1
    if result.planned == 0:
        print(f"nothing to replay: group {group} has committed everything in {topic}")
        return 0
    console.print(replay_table(result))
    if result.stopped_because:
        print(f"replay stopped early: {result.stopped_because}")
    if result.not_reached:
        print("replay did not finish; run it again to continue: "
              + "; ".join(f"{tp} {w}" for tp, w in result.not_reached.items()))
    return result.exit_code
