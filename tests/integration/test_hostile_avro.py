"""Hostile Avro on the real stack: a recursive schema nested deep, schema ids the registry does not
know (yet), and logical types, through the real worker, Kafka, Apicurio and the emulator.

Everything is produced to one partition, so "the good records after the bad one" is exact.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fixtures.faults import run_worker, wait_until
from fixtures.pipeline import (
    canonical_schema,
    committed_and_end_offsets,
    confluent_frame,
    connector_config,
    produce_raw,
    read_topic,
    register,
    run_in_process,
    write_config,
)
from fixtures.workers import WorkerProcess, worker_processes

pytestmark = pytest.mark.integration

CANONICAL = canonical_schema()
SENT_AT_MS = 1_748_736_000_000
NODE = {"type": "record", "name": "Node", "fields": [
    {"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"]}]}


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    with worker_processes(tmp_path / "workers") as start:
        yield start


def _event(event_id: str, **changes: Any) -> dict[str, Any]:
    return {"eventId": event_id, "trackingId": None, "sessionId": "s-1", "userId": None, "eventType": "view",
            "eventValue": None, "itemId": "item-1", "properties": {}, "sentAt": SENT_AT_MS,
            "recommendationId": None, "impression": [], "eventAttributionSource": None, **changes}


def _unique(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema with content no other test registered (Apicurio ids are per content)."""
    return {**schema, "doc": f"{schema.get('doc', '')} test {uuid.uuid4()}"}


def _dead_letters(bootstrap: str, dlq: str) -> dict[int, dict[str, str]]:
    """source offset -> pkc.* headers of every dead letter."""
    out = {}
    for letter in read_topic(bootstrap, dlq):
        headers = {k: v.decode() for k, v in letter.headers.items() if k.startswith("pkc.")}
        out[int(headers["pkc.source.offset"])] = headers
    return out


def test_a_recursive_value_nested_deep_is_dead_lettered_and_the_worker_survives(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path, workers: Callable[..., WorkerProcess],
) -> None:
    """Before: fastavro's C reader overflowed the stack on the deep record and the worker died with
    SIGSEGV, without a log line, at every restart. Now: that record is dead-lettered as
    NestingTooDeep, the shallow records of the same recursive schema and the rest are delivered."""
    topic, dlq = new_topic(partitions=1), new_topic(partitions=1, suffix="dlq")
    writer = _unique({**CANONICAL, "fields": [*CANONICAL["fields"],
                                              {"name": "chain", "type": ["null", NODE], "default": None}]})
    writer_id = register(registry_client, f"{topic}-value", writer)
    canonical_id = register(registry_client, f"{topic}-canonical-value", CANONICAL)

    def with_chain(event_id: str, levels: int) -> bytes:
        # Encoded by hand: fastavro's writer recurses without a bound too. chain is the last field.
        head = confluent_frame(writer_id, CANONICAL, _event(event_id))
        return head + (b"\x02" + b"\x02\x02" * (levels - 1) + b"\x02\x00" if levels else b"\x00")

    records = [(b"s-1", confluent_frame(canonical_id, CANONICAL, _event(f"before-{i}"))) for i in range(10)]
    records += [(b"s-1", with_chain(f"shallow-{i}", i)) for i in range(5)]
    deep_offset = len(records)
    records.append((b"s-1", with_chain("deep", 20_000)))  # ~40 KB of value
    records += [(b"s-1", confluent_frame(canonical_id, CANONICAL, _event(f"after-{i}"))) for i in range(10)]
    produce_raw(stack.bootstrap, topic, records, partition_for=lambda _i: 0)

    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq)
    worker = workers(write_config(tmp_path, config), "recursive", exit_when_idle=3)
    assert worker.wait(timeout=180) == 0, worker.tail()

    delivered = {e["eventId"] for e in emulator.events(tracking_id)}
    assert delivered == {f"before-{i}" for i in range(10)} | {f"shallow-{i}" for i in range(5)} | {
        f"after-{i}" for i in range(10)}
    dead = _dead_letters(stack.bootstrap, dlq)
    assert list(dead) == [deep_offset]
    assert dead[deep_offset]["pkc.error.class"] == "NestingTooDeep"
    assert "64 levels" in dead[deep_offset]["pkc.error.message"]
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends == {0: len(records)}


# Ids other tests may take while our worker starts (the other pytest-xdist worker registers new
# schemas all the time): the records name an id this far ahead, and fillers use up the ids before it
# just before our schema is registered, so only a registration in that last round trip collides.
ID_LEAD = 100


def _register_probe(registry_client: Any, subject: str) -> int:
    """Register new content and return its id. A new name, not a new doc: within one subject the
    registry matches by canonical form, which drops docs, and would hand back the previous id."""
    return register(registry_client, subject, {"type": "record", "name": f"Probe_{uuid.uuid4().hex}", "fields": []})


def _future_schema_id(registry_client: Any, subject: str) -> int:
    """An id Apicurio hands out soon: ids are sequential per new content, so a probe's + ID_LEAD."""
    return _register_probe(registry_client, subject) + ID_LEAD


def _register_as(registry_client: Any, filler_subject: str, subject: str, schema: dict[str, Any], wanted: int) -> int:
    """Register fillers until the last id handed out is `wanted - 1`, then `schema`; its id, which is
    not `wanted` if another test took that id first. The caller checks and retries."""
    last = _register_probe(registry_client, filler_subject)
    for _ in range(ID_LEAD):  # a bound, not a wait: ids advance by at least one per filler
        if last >= wanted - 1:
            break
        last = _register_probe(registry_client, filler_subject)
    return register(registry_client, subject, schema)


def test_records_whose_schema_is_registered_during_the_wait_are_all_delivered(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path, workers: Callable[..., WorkerProcess],
) -> None:
    """Before: every record with the not-yet-registered id was dead-lettered (and a 30 s negative
    cache kept dead-lettering after it was registered). Now: the partition waits and retries, the
    registry is asked about the id at most once a second, one warning per backoff, none is lost."""
    n = 200
    for attempt in range(3):  # another test registering between our probe and our schema: try again
        topic, dlq = new_topic(partitions=1), new_topic(partitions=1, suffix="dlq")
        schema = _unique(CANONICAL)
        expected_id = _future_schema_id(registry_client, f"{topic}-probe-value")
        produce_raw(stack.bootstrap, topic,
                    [(b"s-1", confluent_frame(expected_id, schema, _event(f"e-{i}"))) for i in range(n)],
                    partition_for=lambda _i: 0)
        config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url,
                                  emulator_url=emulator.url, topics=[topic], group_id=group_id,
                                  tracking_id=tracking_id, dlq_topic=dlq, decode={"unknown_schema_retry_s": 120})
        started = time.monotonic()
        worker = workers(write_config(tmp_path, config, f"config-{attempt}.yaml"), f"wait-{attempt}")
        assert worker.wait_for(rf"schema id {expected_id} is not registered yet", timeout=120), worker.tail()
        registered = _register_as(registry_client, f"{topic}-probe-value", f"{topic}-value", schema, expected_id)
        if registered != expected_id:
            worker.terminate()
            worker.wait(60)
            continue
        wait_until(lambda: len(emulator.events(tracking_id)) >= n, "every record is delivered")
        worker.terminate()
        assert worker.wait(60) == 0, worker.tail()
        elapsed = time.monotonic() - started
        break
    else:
        pytest.fail("the registry kept handing the predicted id to another test's schema")

    assert {e["eventId"] for e in emulator.events(tracking_id)} == {f"e-{i}" for i in range(n)}
    assert read_topic(stack.bootstrap, dlq, timeout_s=5) == []
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends == {0: n}
    # No flood: one warning per partition per decode backoff (5 s), not one per record.
    warnings = len(re.findall(r"must wait: schema id", worker.log()))
    assert 1 <= warnings <= 1 + elapsed / 5, worker.log()[-3000:]


def test_an_id_never_registered_is_dead_lettered_after_the_bound(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    topic, dlq = new_topic(partitions=1), new_topic(partitions=1, suffix="dlq")
    good_id = register(registry_client, f"{topic}-value", CANONICAL)
    never = 2**31 - 7  # far above anything the registry hands out in a test run
    records = [(b"s-1", confluent_frame(good_id, CANONICAL, _event(f"before-{i}"))) for i in range(5)]
    records += [(b"s-1", confluent_frame(never, CANONICAL, _event(f"lost-{i}"))) for i in range(20)]
    records += [(b"s-1", confluent_frame(good_id, CANONICAL, _event(f"after-{i}"))) for i in range(5)]
    produce_raw(stack.bootstrap, topic, records, partition_for=lambda _i: 0)
    config = connector_config(bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq,
                              decode={"unknown_schema_retry_s": 2})
    expected = {f"{when}-{i}" for when in ("before", "after") for i in range(5)}
    # No --exit-when-idle: a partition waiting out its decode backoff counts as idle for it.
    with run_worker(write_config(tmp_path, config)) as running:
        wait_until(lambda: {e["eventId"] for e in emulator.events(tracking_id)} >= expected,
                   "the records after the unknown id are delivered")
        wait_until(lambda: committed_and_end_offsets(stack.bootstrap, group_id, topic)[0] == {0: len(records)},
                   "everything is committed")
        assert running.stop() == 0
    assert {e["eventId"] for e in emulator.events(tracking_id)} == expected
    dead = _dead_letters(stack.bootstrap, dlq)
    assert sorted(dead) == list(range(5, 25))
    assert {h["pkc.error.class"] for h in dead.values()} == {"UnknownSchemaId"}
    assert "decode.unknown_schema_retry_s" in dead[5]["pkc.error.message"]
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends == {0: len(records)}


def test_logical_types_are_delivered_as_api_values(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    """A producer's schema with a uuid eventId, a micros sentAt and decimal/date/time properties,
    read with a reader schema that has them: before, every such record was dead-lettered."""
    fields = [
        {"name": "eventId", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "sessionId", "type": "string"},
        {"name": "eventType", "type": "string"},
        {"name": "sentAt", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "seen", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
    ]
    schema = _unique({"type": "record", "name": "Typed", "namespace": "com.example", "fields": fields})
    reader_path = tmp_path / "typed.avsc"
    reader_path.write_text(json.dumps(schema))
    topic, dlq = new_topic(partitions=1), new_topic(partitions=1, suffix="dlq")
    schema_id = register(registry_client, f"{topic}-value", schema)
    sent_at = dt.datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    ids = [uuid.uuid4() for _ in range(5)]
    records = []
    for i, event_id in enumerate(ids):
        buf = io.BytesIO(b"\x00" + schema_id.to_bytes(4, "big"))
        buf.seek(5)
        fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(json.dumps(schema))), {
            "eventId": event_id, "sessionId": "s-1", "eventType": "buy", "sentAt": sent_at,
            "price": decimal.Decimal(f"{i}.50"), "day": dt.date(2025, 6, 1), "at": dt.time(13, 45, 30, 123000),
            "seen": dt.datetime(2025, 6, 1, 12, 0)})
        records.append((b"s-1", buf.getvalue()))
    produce_raw(stack.bootstrap, topic, records, partition_for=lambda _i: 0)
    config = connector_config(
        bootstrap=stack.bootstrap, registry_url=stack.registry_url, emulator_url=emulator.url, topics=[topic],
        group_id=group_id, tracking_id=tracking_id, dlq_topic=dlq, decode={"reader_schema": str(reader_path)},
        mapping={"property_fields": ["price", "day", "at", "seen"]})
    code, summary = run_in_process(write_config(tmp_path, config))
    assert code == 0 and summary["dead_letters"] == 0, summary
    received = {e["eventId"]: e for e in emulator.events(tracking_id)}
    assert sorted(received) == sorted(str(i) for i in ids)
    first = received[str(ids[1])]
    assert json.loads(first["properties"]) == {"price": 1.5, "day": "2025-06-01", "at": "13:45:30.123",
                                               "seen": int(dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC).timestamp()
                                                           * 1000)}
    assert received[str(ids[0])]["properties"].startswith('{"price":0.5,')
    assert first["sentAt"] == 1748779200.123  # timestamp-micros, to the millisecond PutEvents keeps
    print(f"\nlogical types: first event as stored by the emulator: {first}")
