"""Produce sample traffic to Kafka in Confluent Avro wire format (or, with `--format`, as JSON,
Confluent JSON Schema (connector.tools.json_traffic) or Confluent Protobuf): interactions (from
`connector.tools.workload`) or, with `--kind`, items, users, actions or action interactions (from
`connector.tools.samples`).

Good records are encoded with the kind's packaged schema (by default the canonical InteractionEvent
schema), registered once under the `<topic>-value` subject. We frame them ourselves (magic byte 0 +
4-byte schema id + fastavro schemaless body) instead of calling confluent-kafka's AvroSerializer
per record: the bytes are identical (the unit tests check that) and it is ~25% faster, and it
sidesteps the serializer's default "associated" subject-name lookup, an extra registry round trip
that older registries 404.
Bad records go out exactly as the generator labelled them, so the connector's dead-letter path
can be exercised and counted.
`--format json_schema` / `protobuf`: the kind's packaged JSON Schema / .proto twin of its .avsc
(avro_schemas.JSON_SCHEMAS / PROTOS) is registered instead and each value is framed in that format;
bad records stay bad as labelled (json_traffic, make_protobuf_encoder).
"""

from __future__ import annotations

import argparse
import io
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connector.tools.workload import (
    MAGIC_BYTE,
    SCHEMA_FILE,
    SampleRecord,
    canonical_schema_str,
    parsed_schema,
    truncate_frame,
)

if TYPE_CHECKING:
    from rich.progress import Progress

    from connector.kafka.clients import KafkaClients

# Throughput-oriented defaults; `extra_config` (the connector's kafka.config) overrides them.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,  # no duplicates or reordering within a session on retries
    "acks": "all",
    "linger.ms": 10,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 1_048_576,
    # Only failures come back as delivery reports: one Python callback per message would
    # cost more than the encoding.
    "delivery.report.only.error": True,
}
POLL_EVERY = 512  # serve delivery reports / free queue space this often (records)
PROGRESS_EVERY = 2_000  # progress-bar refresh granularity (records)
FLUSH_TIMEOUT_S = 120.0


class ProduceError(RuntimeError):
    """Some records were not delivered (or the producer hit a fatal error)."""


@dataclass(slots=True)
class ProduceSummary:
    topic: str
    schema_id: int | None  # None: plain JSON, no schema registered
    produced: int = 0
    good: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    elapsed_s: float = 0.0

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())

    @property
    def events_per_s(self) -> float:
        return self.produced / self.elapsed_s if self.elapsed_s > 0 else 0.0


def register_schema(
    registry_url: str, subject: str, registry_config: Mapping[str, Any] | None = None, schema: str = SCHEMA_FILE,
    wire_format: str = "avro",
) -> int:
    """Register the packaged `schema` (default: the canonical one) under `subject` (idempotent); its id.

    `wire_format` "protobuf" registers the schema's packaged .proto twin instead.
    """
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    # new_client() also understands "mock://" URLs, which the unit tests use.
    client = SchemaRegistryClient.new_client({**(registry_config or {}), "url": registry_url})
    if wire_format == "protobuf":
        from connector.tools.protobuf_records import packaged_proto

        return int(client.register_schema(subject, Schema(packaged_proto(schema), "PROTOBUF")))
    return int(client.register_schema(subject, Schema(canonical_schema_str(schema), "AVRO")))


def make_protobuf_encoder(schema_id: int, schema: str = SCHEMA_FILE) -> Callable[[SampleRecord], bytes]:
    """make_encoder's Protobuf twin: records as framed messages of the packaged .proto twin of `schema`."""
    # Imported here: Avro-only runs never load the Protobuf runtime.
    from connector.decode.protobuf_wire import frame
    from connector.tools.protobuf_records import MessageEncoder

    messages = MessageEncoder(schema)

    def encode(record: SampleRecord) -> bytes:
        if record.raw is not None:  # not-avro (no magic byte) and unknown-schema-id stay as they are
            return record.raw
        assert record.value is not None  # SampleRecord: exactly one of value and raw
        framed = frame(schema_id, messages.encode(record.value))
        # Half a Protobuf body may end on a field boundary and decode; the last byte never can here:
        # a truncated sample's last field is always length-delimited (an event's sentAt or a string
        # after it; an entity's id or properties, its delete marker being unset; an action interaction's
        # fields are all strings, messages or maps).
        return framed[:-1] if record.bad_kind == "truncated" else framed

    return encode


def make_encoder(schema_id: int, schema: str = SCHEMA_FILE) -> Callable[[SampleRecord], bytes]:
    """Turn a SampleRecord into the exact bytes to produce (Confluent wire format for values), its
    value written with the packaged `schema` (default: the canonical one)."""
    import fastavro

    header = MAGIC_BYTE + struct.pack(">I", schema_id)
    parsed = parsed_schema(schema)
    write = fastavro.schemaless_writer

    def encode(record: SampleRecord) -> bytes:
        if record.raw is not None:
            return record.raw
        buf = io.BytesIO()
        buf.write(header)
        write(buf, parsed, record.value)
        framed = buf.getvalue()
        return truncate_frame(framed) if record.bad_kind == "truncated" else framed

    return encode


def produce(
    records: Iterable[SampleRecord],
    bootstrap: str,
    registry_url: str,
    topic: str,
    *,
    extra_config: Mapping[str, Any] | None = None,
    registry_config: Mapping[str, Any] | None = None,
    progress: bool = True,
    total: int | None = None,
    clients: KafkaClients | None = None,
    schema: str = SCHEMA_FILE,
    value_format: str = "avro",
) -> ProduceSummary:
    """Produce `records` to `topic`, wait for every delivery, and raise ProduceError on any failure.

    `extra_config` is passed through to librdkafka (security settings, ...) over our defaults.
    `clients` (the connector's factory, which `produce` on the command line uses): the producer is
    built by it, from `kafka.config` and `kafka.msk_iam_region`, instead of `bootstrap` and `extra_config`.
    `schema`: the packaged schema the records' values are written with (see connector.tools.samples).
    `value_format`: "avro" (Confluent wire format), "json" (plain JSON objects, `registry_url` unused),
    "json_schema" (Confluent JSON Schema wire format with `schema`'s packaged JSON Schema twin)
    or "protobuf" (Confluent's Protobuf framing of messages of `schema`'s packaged .proto twin).
    The progress bar shows only when `progress` is true and stderr is a terminal (or rich is forced
    with FORCE_TERMINAL=1); `total` sizes it (default: len(records) when records is Sized).
    """
    from confluent_kafka import KafkaError, Producer

    schema_id, encode = _encoder(value_format, registry_url, f"{topic}-value", registry_config, schema)

    errors: list[str] = []
    n_failed = 0
    fatal: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        nonlocal n_failed
        if err is not None:
            n_failed += 1
            if len(errors) < 5:  # enough to diagnose; don't keep a million copies
                errors.append(f"{msg.topic()}: {err.str()}")

    def on_error(err: KafkaError) -> None:
        # Transient errors (broker down for a moment) are retried by librdkafka; only fatal ones
        # (e.g. idempotence state lost) make the remaining deliveries pointless.
        if err.fatal():
            fatal.append(err)

    callbacks = {"on_delivery": on_delivery, "error_cb": on_error}
    if clients is not None:
        producer = clients.producer({**PRODUCER_DEFAULTS, **callbacks})
    else:
        producer = Producer({**PRODUCER_DEFAULTS, **(extra_config or {}), "bootstrap.servers": bootstrap, **callbacks})

    if total is None and isinstance(records, Sized):
        total = len(records)
    bar = _progress_bar(progress)
    task = bar.add_task(f"producing to {topic}", total=total) if bar is not None else None

    summary = ProduceSummary(topic=topic, schema_id=schema_id)
    bad: Counter[str] = Counter()
    sessions: set[str] = set()
    started = time.perf_counter()
    n = 0
    try:
        if bar is not None:
            bar.start()
        for record in records:
            value = encode(record)
            while True:
                try:
                    producer.produce(topic, value=value, key=record.key)
                    break
                except BufferError:
                    # Local queue full: let librdkafka drain some batches, then retry this record.
                    producer.poll(0.1)
            n += 1
            if record.bad_kind is not None:
                bad[record.bad_kind] += 1
            if record.session_id:  # items, users and actions have none
                sessions.add(record.session_id)
            if n % POLL_EVERY == 0:
                producer.poll(0)
                if fatal:
                    raise ProduceError(f"fatal producer error: {fatal[0].str()}")
            if bar is not None and task is not None and n % PROGRESS_EVERY == 0:
                bar.update(task, completed=n)
        remaining = producer.flush(FLUSH_TIMEOUT_S)
        if bar is not None and task is not None:
            bar.update(task, completed=n)
    finally:
        if bar is not None:
            bar.stop()

    summary.elapsed_s = time.perf_counter() - started
    summary.produced = n
    summary.bad = dict(sorted(bad.items()))
    summary.good = n - summary.bad_total
    summary.sessions = len(sessions)
    if fatal:
        raise ProduceError(f"fatal producer error: {fatal[0].str()}")
    if remaining:
        raise ProduceError(f"{remaining} record(s) still undelivered after {FLUSH_TIMEOUT_S:.0f}s flush")
    if n_failed:
        raise ProduceError(f"{n_failed} of {n} record(s) failed delivery, e.g. " + "; ".join(errors))
    return summary


def _encoder(value_format: str, registry_url: str, subject: str, registry_config: Mapping[str, Any] | None,
             schema: str) -> tuple[int | None, Callable[[SampleRecord], bytes]]:
    """The schema id registered for `value_format` (None: plain JSON) and the records' encoder."""
    if value_format == "avro":
        schema_id = register_schema(registry_url, subject, registry_config, schema)
        return schema_id, make_encoder(schema_id, schema)
    if value_format == "protobuf":
        schema_id = register_schema(registry_url, subject, registry_config, schema, wire_format="protobuf")
        return schema_id, make_protobuf_encoder(schema_id, schema)
    from connector.tools.json_traffic import make_json_encoder, register_json_schema

    if value_format == "json":
        return None, make_json_encoder(None)
    if value_format == "json_schema":
        schema_id = register_json_schema(registry_url, subject, registry_config, schema)
        return schema_id, make_json_encoder(schema_id)
    raise ValueError(f"unknown value format {value_format!r}")


def _progress_bar(enabled: bool) -> Progress | None:
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    # rich's is_terminal honours FORCE_TERMINAL, which is how "forced" works for e.g. CI logs.
    if not console.is_terminal:
        return None
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def summary_table(summary: ProduceSummary) -> Any:
    """A rich Table of the summary (typed Any so callers needn't import rich)."""
    from rich.table import Table

    table = Table(title="sample traffic produced")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("topic", summary.topic)
    table.add_row("schema id", "none (plain JSON)" if summary.schema_id is None else str(summary.schema_id))
    table.add_row("records produced", f"{summary.produced:,}")
    table.add_row("good events", f"{summary.good:,}")
    table.add_row("bad records", f"{summary.bad_total:,}")
    for kind, count in summary.bad.items():
        table.add_row(f"  {kind}", f"{count:,}")
    if summary.sessions:
        table.add_row("sessions", f"{summary.sessions:,}")
    table.add_row("elapsed", f"{summary.elapsed_s:.2f} s")
    table.add_row("events/s", f"{summary.events_per_s:,.0f}")
    return table


def run_from_cli(args: argparse.Namespace) -> int:
    from rich.console import Console

    from connector.app import registry_client_config
    from connector.config import ConfigError, load_settings
    from connector.kafka.auth import KafkaAuthError
    from connector.kafka.clients import KafkaClients
    from connector.tools.samples import KINDS

    err = Console(stderr=True)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        return 2
    kind = KINDS[args.kind]
    # Default: the first topic routed to the kind's destination (for interactions, kafka.topics[0]).
    routed = [t for route in settings.effective_routes() if route.destination == kind.destination for t in route.topics]
    topic: str | None = args.topic or next(iter(routed), None)
    if topic is None:
        err.print(f"[red]no route of the config sends to {kind.destination}; pass --topic NAME[/red]")
        return 2
    if topic.startswith("^"):
        err.print(f"[red]the config's first topic {topic!r} is a regex; pass --topic NAME[/red]")
        return 2
    value_format: str = getattr(args, "format", "avro")
    registry_url = settings.schema_registry.url or ""
    if not registry_url and value_format != "json":
        err.print(f"[red]schema_registry.url is required to produce {value_format} records[/red]")
        return 2
    records = kind.generate(args.events, args.sessions, args.seed, args.bad_ratio)
    try:
        summary = produce(
            records,
            settings.kafka.bootstrap_servers,
            registry_url,
            topic,
            registry_config=registry_client_config(settings),
            total=args.events,
            clients=KafkaClients.from_settings(settings),
            schema=kind.schema,
            value_format=value_format,
        )
    except (ProduceError, KafkaAuthError) as exc:
        err.print(f"[red]produce failed: {exc}[/red]", highlight=False)
        return 1
    Console().print(summary_table(summary))
    return 0
