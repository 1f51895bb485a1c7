"""Broker-free: generated schemas and values through decode + map, in a crash-proof child process.

Property: whatever the bytes and the writer schema (nesting, recursion, every logical type, unions,
values at and beyond the API's limits, arbitrary bytes), only a RecordError (dead letter) or an
event the service can take as JSON comes out: no other exception, no crash, no NaN in the output.
Second property (wrong results): records whose fields use the Avro logical types the API's types
naturally hold (uuid, decimal, timestamp-micros, local-timestamp-*) map to an event.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from adversarial.avro_gen import CANONICAL, UUID, Case, encode, limit_cases, record_cases
from adversarial.decode_sandbox import SCHEMA_ID, DecodeSandbox
from adversarial.figures import Tally
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from connector.decode.base import load_schema

RUN = settings(deadline=None, database=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
               suppress_health_check=list(HealthCheck))
FAILURE_PREFIXES = ("escaped:", "crashed:", "invalid-output:", "hung")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[DecodeSandbox]:
    box = DecodeSandbox()
    yield box
    box.close()


def _framed(body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", SCHEMA_ID) + body


hostile_values = st.one_of(
    st.binary(max_size=300),  # anything at all, framing included
    st.binary(max_size=300).map(_framed),  # a valid frame with garbage Avro
    st.binary(max_size=300).map(lambda b: b"\x00" + struct.pack(">I", 987_654) + b),  # unknown schema id
    st.integers(0, 5).map(lambda n: b"\x00" * n),  # empty and truncated headers
)


def _check(tally: Tally, failures: list[str], label: str, outcome: tuple[str, str]) -> None:
    kind, detail = outcome
    tally.cases += 1
    tally.add(f"{label}>{kind}")
    if kind.startswith(FAILURE_PREFIXES):
        failures.append(f"{label}: {kind}: {detail.strip().splitlines()[-1] if detail.strip() else ''}")


# Each family gets its own budget, so every run covers each of them whatever hypothesis draws.
FAMILIES: dict[str, tuple[st.SearchStrategy[Case | bytes], int]] = {
    "arbitrary-bytes": (hostile_values, 80),
    "canonical-reader": (record_cases(own_reader=False), 100),
    "own-reader": (record_cases(own_reader=True), 60),
    "at-limits": (limit_cases().map(lambda c: Case(CANONICAL, encode(CANONICAL, c[1]), False, c[0])), 80),
    "recursive": (st.booleans().flatmap(lambda own: record_cases(own_reader=own, deep_tail=True)), 20),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_only_record_errors_escape_decode_and_map(sandbox: DecodeSandbox, family: str) -> None:
    tally = Tally()
    failures: list[str] = []
    canonical = load_schema(None)
    strategy, budget = FAMILIES[family]
    restarts = sandbox.restarts

    @settings(RUN, max_examples=budget)
    @given(case=strategy)
    def case(case: Case | bytes) -> None:
        if isinstance(case, bytes):
            _check(tally, failures, "arbitrary-bytes", sandbox.run(canonical, case, False))
        else:
            _check(tally, failures, case.label, sandbox.run(case.writer, _framed(case.body), case.reader_is_writer))

    case()
    line = tally.report(f"decode+map {family}, child restarts={sandbox.restarts - restarts}")
    assert not failures, (f"{len(failures)} of {tally.cases} cases escaped, crashed or produced invalid JSON "
                          f"({line}); first ones:\n" + "\n".join(sorted(set(failures))[:12]))


LOGICAL_TIMESTAMPS = ("timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros")


@st.composite
def logical_records(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A valid event whose fields use logical types; (which logical types, writer schema, value)."""
    sent_at = draw(st.sampled_from(LOGICAL_TIMESTAMPS))
    id_type = draw(st.sampled_from(["uuid", "string"]))
    value_type = draw(st.sampled_from(["decimal", "double"]))
    prop_type = draw(st.sampled_from(["uuid", "decimal", "string"]))
    ident = UUID if id_type == "uuid" else "string"
    decimal_type = {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2}
    writer = {"type": "record", "name": "InteractionEvent", "namespace": "com.personalize.connector", "fields": [
        {"name": "eventId", "type": ident},
        {"name": "sessionId", "type": ident},
        {"name": "userId", "type": ["null", ident]},
        {"name": "eventType", "type": "string"},
        {"name": "eventValue", "type": decimal_type if value_type == "decimal" else "double"},
        {"name": "itemId", "type": ident},
        {"name": "sentAt", "type": {"type": "long", "logicalType": sent_at}},
        {"name": "properties", "type": {"type": "map", "values": {"uuid": UUID, "decimal": decimal_type,
                                                                  "string": "string"}[prop_type]}},
    ]}
    when = draw(st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2030, 1, 1)))
    cents = draw(st.integers(-10**6, 10**6))
    value = {
        "eventId": uuid.UUID(int=draw(st.integers(0, 2**128 - 1))),
        "sessionId": uuid.UUID(int=draw(st.integers(0, 2**128 - 1))),
        "userId": uuid.UUID(int=draw(st.integers(0, 2**128 - 1))),
        "eventType": "view",
        "eventValue": decimal.Decimal(cents).scaleb(-2) if value_type == "decimal" else cents / 100,
        "itemId": uuid.UUID(int=draw(st.integers(0, 2**128 - 1))),
        "sentAt": when if sent_at.startswith("local") else when.replace(tzinfo=dt.UTC),
        "properties": {"p": {"uuid": uuid.UUID(int=7), "decimal": decimal.Decimal("1.50"),
                             "string": "x"}[prop_type]},
    }
    if id_type == "string":
        for name in ("eventId", "sessionId", "userId", "itemId"):
            value[name] = str(value[name])
    label = f"ids:{id_type} eventValue:{value_type} sentAt:{sent_at} properties:{prop_type}"
    return label, writer, value


def test_logical_types_map_to_the_apis_types(sandbox: DecodeSandbox) -> None:
    tally = Tally()
    failures: list[str] = []

    @settings(RUN, max_examples=60)
    @given(case=logical_records())
    def case(case: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
        label, writer, value = case
        kind, detail = sandbox.run(writer, _framed(encode(writer, value)), True)
        tally.cases += 1
        tally.add(kind)
        if kind != "mapped":
            failures.append(f"{label}: {kind}: {detail[:160]}")

    case()
    line = tally.report("logical types, writer schema as reader")
    assert not failures, (f"{len(failures)} of {tally.cases} valid records with logical types were not mapped "
                          f"({line}); kinds:\n" + "\n".join(sorted({f.split(': ', 1)[0] + ': ' + f.split(': ')[1]
                                                                    for f in failures})[:16]))
