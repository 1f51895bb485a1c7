"""A real worker (subprocess, both Kafka clients) on the real stack against generated hostile records.

Hypothesis generates one list of hostile records per input class, they are produced (with their
keys and raw-byte headers) to one topic, a real `personalize-connector run --exit-when-idle` works
through them against the emulator, and then the property is checked on what really happened:

- the worker exits 0 (it never dies, whatever the input);
- every produced offset is delivered (its eventId at the emulator) xor dead-lettered with its real
  position (pkc.source.* = the true topic/partition/offset, the dead letter's value = the record's);
  repeats of one outcome are allowed (at-least-once) and counted;
- the committed offsets equal the end offsets, and nothing below them is neither.

The worker is a subprocess so that a crash (a SIGSEGV in the decoder) fails the test instead of
killing pytest. No shrinking: one generated list per class and client, so the run stays bounded.
"""

from __future__ import annotations

import io
import json
import struct
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
from adversarial.avro_gen import CANONICAL, record_cases, valid_canonical_value
from adversarial.figures import Tally
from adversarial.kafka_raw import Hostile, Letter, produce_hostile, read_all
from fixtures.pipeline import committed_and_end_offsets, connector_config, register, write_config
from fixtures.workers import worker_processes
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

PARTITIONS = 2
# Hypothesis draws GENERATED_LISTS lists of RECORDS_PER_LIST records; all go to one topic, one worker.
GENERATED_LISTS = 4
RECORDS_PER_LIST = 12
DLQ_MAX_BYTES = 64 * 1024  # the dead-letter topic's max.message.bytes: smaller than the source's
SOURCE_MAX_BYTES = 1024 * 1024
IDLE_S = 3.0  # the worker calls itself idle only when caught up with nothing in flight
UNKNOWN_SCHEMA_ID = 2_000_000_001  # never registered
PADDED = {**CANONICAL, "fields": [*CANONICAL["fields"], {"name": "padding", "type": "string"}]}
RUN = settings(max_examples=GENERATED_LISTS, deadline=None, database=None, derandomize=True,
               phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


def _frame(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + body


def _encode(value: dict[str, Any], schema: dict[str, Any] = CANONICAL) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(json.dumps(schema))), value)
    return buf.getvalue()


header_keys = st.one_of(
    st.binary(min_size=1, max_size=12),  # often not UTF-8
    st.sampled_from([b"pkc.source.topic", b"pkc.source.partition", b"pkc.source.offset", b"pkc.error.stage",
                     b"__connect.errors.topic", b"\xff\xfe", b"\xc3\x28", b"k"]),
)
header_values = st.one_of(st.binary(max_size=16), st.sampled_from([b"999999", b"-1", b"other-topic", b""]))
headers = st.lists(st.tuples(header_keys, header_values), max_size=4)
# UTF-8 keys only, most of them the connector's own: a forged source position must not win.
forged_keys = st.one_of(st.sampled_from([b"pkc.source.topic", b"pkc.source.partition", b"pkc.source.offset",
                                         b"pkc.error.class"]), st.text(min_size=1, max_size=8).map(str.encode))
forged_headers = st.lists(st.tuples(forged_keys, header_values), min_size=1, max_size=4)


@st.composite
def hostile(draw: st.DrawFn, kind: str, canonical_id: int) -> dict[str, Any]:
    """One record of input class `kind` (a dict so schemas can be registered after drawing)."""
    good = draw(st.integers(0, 9)) < 4  # some good records between the bad ones
    key = draw(st.one_of(st.none(), st.binary(max_size=24)))
    spec: dict[str, Any] = {"partition": draw(st.integers(0, PARTITIONS - 1)), "key": key, "headers": [],
                            "schema": None}
    if good:
        spec.update(kind="good", body=None)
    elif kind in ("headers", "forged-headers"):
        spec.update(kind=draw(st.sampled_from(["good-with-headers", "garbage-with-headers"])),
                    value=draw(st.binary(max_size=40)))
    elif kind == "values":
        choice = draw(st.sampled_from(["arbitrary-bytes", "framed-garbage", "unknown-schema-id", "tombstone",
                                       "nan-eventValue", "nan-property", "empty"]))
        spec["kind"] = choice
        if choice == "arbitrary-bytes":
            spec["value"] = draw(st.binary(max_size=200))
        elif choice == "framed-garbage":
            spec["value"] = _frame(canonical_id, draw(st.binary(max_size=200)))
        elif choice == "unknown-schema-id":
            # One id for all: once fixed, an unknown id is retried for a while before its dead letter.
            spec["value"] = _frame(UNKNOWN_SCHEMA_ID, draw(st.binary(max_size=50)))
        elif choice == "tombstone":
            spec["value"] = None
            spec["key"] = key or b"k"  # kafka-python cannot produce a record without key and value
        elif choice == "empty":
            spec["value"] = b""
    elif kind == "schemas":
        # Kept under the dead-letter topic's limit, so the "sizes" class alone tests that.
        # 25,000 levels of a node without other fields is a ~25 KB value (finding 3 of issue 13).
        case = draw(record_cases(own_reader=False, deep_tail=draw(st.booleans()), depths=(50, 5_000, 25_000))
                    .filter(lambda c: len(c.body) < DLQ_MAX_BYTES // 2))
        spec.update(kind=f"schema:{case.label}", schema=case.writer, case=case)
    else:  # sizes: records around the dead-letter topic's limit, bad ones and good padded ones
        size = draw(st.sampled_from([DLQ_MAX_BYTES // 2, DLQ_MAX_BYTES - 200, DLQ_MAX_BYTES + 100,
                                     3 * DLQ_MAX_BYTES, SOURCE_MAX_BYTES // 2]))
        if draw(st.booleans()):
            spec.update(kind=f"garbage-{size}B", value=b"\x01" * size)
        else:
            # A valid event whose writer schema adds a field the reader skips: big, but deliverable.
            spec.update(kind=f"good-padded-{size}B", padding=size)
    if kind == "headers":
        spec["headers"] = draw(headers)
    elif kind == "forged-headers":
        spec["headers"] = draw(forged_headers)
    return spec


def _materialise(specs: list[dict[str, Any]], canonical_id: int, registry: Any, subject: str,
                 run: str) -> list[Hostile]:
    """Register the generated writer schemas and build each record's bytes."""
    out = []
    padded_id = register(registry, f"{subject}-padded", PADDED)
    for i, spec in enumerate(specs):
        event_id = None
        value: bytes | None
        if spec["kind"] in ("good", "good-with-headers", "nan-eventValue", "nan-property"):
            fields = valid_canonical_value()
            event_id = fields["eventId"] = f"{run}-{i}"
            if spec["kind"] == "nan-eventValue":
                fields["eventValue"] = float("nan")
            if spec["kind"] == "nan-property":
                fields["properties"] = {"score": float("nan")}
            value = _frame(canonical_id, _encode(fields))
        elif "padding" in spec:
            fields = {**valid_canonical_value(), "padding": "p" * spec["padding"]}
            event_id = fields["eventId"] = f"{run}-{i}"
            value = _frame(padded_id, _encode(fields, PADDED))
        elif spec["schema"] is not None:
            schema_id = register(registry, f"{subject}-{i}", spec["schema"])
            # Its eventId and tracker set (where the schema lets us) so a delivery is traceable.
            event_id = f"{run}-{i}"
            case = spec["case"].with_identity(event_id, run)
            value = _frame(schema_id, case.body)
        else:
            value = spec["value"]
        out.append(Hostile(spec["partition"], spec["key"], value, spec["headers"], spec["kind"], event_id))
    return out


SOURCE_HEADERS = ("pkc.source.topic", "pkc.source.partition", "pkc.source.offset")


def _source_positions(letter: Letter) -> dict[str, set[str]]:
    """The values of the connector's three source headers (a record's own colliding headers may be
    kept under other names; those are not looked at)."""
    found: dict[str, set[str]] = defaultdict(set)
    for k, v in letter.headers:
        if k in SOURCE_HEADERS:
            found[k].add(v.decode("utf-8", "replace"))
    return found


def _kept_as(key: bytes) -> bytes:
    """How a dead letter keeps an original header key (connector.dlq's documented contract): names the
    connector writes itself are kept under `pkc.original.<name>`, keys that are not UTF-8 are written
    with backslash escapes (and listed in pkc.source.header_keys_escaped); values stay byte-exact."""
    name = key.decode("utf-8", "surrogateescape")
    if name.startswith(("pkc.", "__connect.errors.")):
        name = "pkc.original." + name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").encode()


def _check(records: list[Hostile], offsets: list[int], topic: str, received: list[dict[str, Any]],
           letters: list[Letter], committed: dict[int, int], ends: dict[int, int], tally: Tally) -> list[str]:
    problems: list[str] = []
    by_position = {(r.partition, o): (i, r) for i, (r, o) in enumerate(zip(records, offsets, strict=True))}
    by_event_id = {r.event_id: (r.partition, o) for r, o in zip(records, offsets, strict=True) if r.event_id}
    delivered: Counter[tuple[int, int]] = Counter()
    # Records with generated writer schemas carry generated eventIds the test does not know; their
    # deliveries are counted, and excuse as many of those records below (an approximation).
    unattributed: list[str] = []
    for event in received:
        position = by_event_id.get(event["eventId"])
        if position is None:
            if any(r.kind.startswith("schema:") for r in records):
                unattributed.append(event["eventId"])
                continue
            problems.append(f"delivered an event no deliverable record has: {event['eventId']}")
        else:
            delivered[position] += 1
            kind = by_position[position][1].kind
            if kind.startswith("nan-"):
                problems.append(f"{position} ({kind}) delivered: NaN is not JSON, the service must refuse it")
    dead: Counter[tuple[int, int]] = Counter()
    for letter in letters:
        source = _source_positions(letter)
        if any(len(v) != 1 for v in source.values()) or set(source) != set(SOURCE_HEADERS):
            # The connector's three pkc.source.* headers, one value each, or it is not its position.
            problems.append(f"dead letter {letter.offset} does not name its source unambiguously: {dict(source)}")
            continue
        (t,), (p,), (o,) = source["pkc.source.topic"], source["pkc.source.partition"], source["pkc.source.offset"]
        position = (int(p), int(o)) if p.lstrip("-").isdigit() and o.lstrip("-").isdigit() else None
        if t != topic or position not in by_position:
            problems.append(f"dead letter {letter.offset} names a position that is not its record's: {t}[{p}]@{o}")
            continue
        _, record = by_position[position]
        marked = any("trunc" in k or "omit" in k or "size" in k for k, _ in letter.headers if k.startswith("pkc."))
        kept = Counter(zip(letter.raw_header_keys(), (v for _, v in letter.headers), strict=True))
        originals = Counter((_kept_as(k), v) for k, v in record.headers)
        if any(k == b"pkc.source.headers_unreadable" for k, _ in kept):
            # confluent-kafka cannot read a record's headers at all when one key is not UTF-8:
            # documented, and the dead letter says so; the values and position are still checked.
            originals = Counter()
        if originals - kept:
            problems.append(f"dead letter {letter.offset} for {position} lost original headers {originals - kept}")
        if letter.key != record.key:
            problems.append(f"dead letter {letter.offset} for {position} ({record.kind}) does not carry its key")
        if letter.value != record.value and not marked:
            problems.append(f"dead letter {letter.offset} for {position} ({record.kind}) does not carry its value")
            continue
        stage = next((v.decode() for k, v in letter.headers if k == "pkc.error.stage"), "?")
        cls = next((v.decode() for k, v in letter.headers if k == "pkc.error.class"), "?")
        dead[position] += 1
        tally.add(f"{record.kind}>dead-lettered:{stage}/{cls}")
    for position, (_, record) in by_position.items():
        n_delivered, n_dead = delivered[position], dead[position]
        if n_delivered:
            tally.add(f"{record.kind}>delivered")
        if n_delivered + n_dead > 1:
            tally.add("repeats(at-least-once)", n_delivered + n_dead - 1)
        if n_delivered and n_dead:
            problems.append(f"{position} ({record.kind}) both delivered and dead-lettered")
        if not n_delivered and not n_dead and record.kind.startswith("schema:") and unattributed:
            unattributed.pop()
            tally.add(f"{record.kind}>delivered-unattributed")
            continue
        if not n_delivered and not n_dead:
            tally.add(f"{record.kind}>NEITHER")
            below = position[1] < committed.get(position[0], 0)
            problems.append(f"{position} ({record.kind}) neither delivered nor dead-lettered"
                            + (" and the commit is past it" if below else ""))
    # A partition that never had a record has nothing to commit (-1001: no committed offset).
    committed = {p: 0 if o < 0 and ends.get(p) == 0 else o for p, o in committed.items()}
    if committed != ends:
        problems.append(f"committed {committed} != end offsets {ends}")
    return problems


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Any]:
    with worker_processes(tmp_path / "workers") as start:
        yield start


@pytest.mark.parametrize("kafka_client", ["confluent", "kafka-python"])
@pytest.mark.parametrize("input_class", ["headers", "forged-headers", "values", "schemas", "sizes"])
def test_hostile_records_are_delivered_or_dead_lettered_and_the_worker_survives(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, subject_name: str, emulator: Any,
    tracking_id: str, aws_env: None, tmp_path: Path, workers: Any, kafka_client: str, input_class: str,
) -> None:
    canonical_id = register(registry_client, subject_name, CANONICAL)
    tally = Tally()

    drawn: list[dict[str, Any]] = []

    # Drawing is cheap; the worker run is not: collect every generated list (hypothesis's first,
    # simplest one included), then put them all through one topic and one worker.
    @RUN
    @given(specs=st.lists(hostile(input_class, canonical_id), min_size=RECORDS_PER_LIST,
                          max_size=RECORDS_PER_LIST))
    def draw_lists(specs: list[dict[str, Any]]) -> None:
        drawn.extend(specs)

    draw_lists()
    records = _materialise(drawn, canonical_id, registry_client, subject_name, tracking_id)
    topic = new_topic(partitions=PARTITIONS, config={"max.message.bytes": str(SOURCE_MAX_BYTES + 1024)})
    dlq = new_topic(partitions=1, suffix="dlq", config={"max.message.bytes": str(DLQ_MAX_BYTES)})
    offsets = produce_hostile(stack.bootstrap, topic, records, max_request_size=SOURCE_MAX_BYTES + 1024)
    config = connector_config(
        client=kafka_client, bootstrap=stack.bootstrap, registry_url=stack.registry_url,
        emulator_url=emulator.url, topics=[topic], group_id=group_id, tracking_id=tracking_id,
        dlq_topic=dlq, batching={"linger_ms": 100},
        # Hostile lists are mostly bad on purpose: no stall limit may hold them, and an id that is
        # never registered is given up on quickly (the wait itself is tested in test_hostile_avro).
        dlq={"max_consecutive_failures": 0, "max_failure_ratio": 0}, decode={"unknown_schema_retry_s": 2},
    )
    worker = workers(write_config(tmp_path, config), "adversarial", exit_when_idle=IDLE_S)
    code = worker.wait(timeout=240)
    tally.cases += len(records)
    tally.add(f"worker-exit:{code}")
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    problems = _check(records, offsets, topic, emulator.events(tracking_id), read_all(stack.bootstrap, dlq),
                      committed, ends, tally)
    if code != 0:
        problems.insert(0, f"the worker exited {code}; log tail:\n{worker.tail(12)}")
    line = tally.report(f"pipeline {input_class}, {kafka_client}")
    assert not problems, f"{len(problems)} violations ({line}):\n" + "\n".join(problems[:10])
