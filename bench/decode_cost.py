"""Stage `decode`: decode (+ map) cost per record for every value format, in memory (no Kafka,
no registry), and the measurements that chose the JSON parser and validator.

    python -m bench.decode_cost [--records N] [--repeats R]

Prints JSON lines, µs/record, best of R runs of N records (so other processes on the machine
inflate it less), all of the same events:
- "format": the connector's decoders alone and followed by the EventMapper: Avro (Confluent wire
  format; "avro+logical" adds four logical-type fields, read with a reader schema that has them and
  mapped into properties), json, json_schema without and with validation, protobuf
  (avro_schemas/interaction_event.proto through `ProtobufWireDecoder`); `vs_avro` = its decode +
  map time ÷ Avro's, from the same run;
- "transform": Avro decode + map with one mapping transform on (time window, camelCase keys, joined
  lists, filters) and with all of them, `vs_plain` = ÷ the plain Avro decode + map;
- "parser": the candidate JSON parsers alone (json, orjson, msgspec) on a typical event and a
  ~10 KB one (250 impression-like ids): the measurement that chose orjson for
  connector.decode.json_value;
- "validator": checking a parsed event against the packaged JSON Schema with fastjsonschema
  (compiled, what decode.validate_json_schema uses) and with jsonschema (interpreted).
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import io
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import fastavro
import fastjsonschema
import jsonschema
import msgspec
import orjson

import avro_schemas
from connector.config import MappingConfig
from connector.decode import (
    ConfluentWireDecoder,
    JsonSchemaWireDecoder,
    PlainJsonDecoder,
    ProtobufWireDecoder,
    load_schema,
)
from connector.decode.base import canonical_schema_text, parse
from connector.decode.protobuf_wire import frame
from connector.destinations.events import EventMapper
from connector.records import SourceRecord
from connector.tools.protobuf_records import MessageEncoder, interaction_event_proto

HEADER = b"\x00" + (1).to_bytes(4, "big")
SENT_AT_MS = 1_714_564_800_000
LOGICAL_FIELDS: list[dict[str, Any]] = [
    {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
]
# The mapping transforms a route may add (docs/configuration.md, "Transforms"), one at a time.
TRANSFORMS: dict[str, dict[str, Any]] = {
    "time window": {"time_not_before": dt.datetime(2000, 1, 1, tzinfo=dt.UTC), "time_max_ahead_s": 86400},
    "camelCase keys": {"property_keys": "camelCase"},
    "joined lists": {"join_lists": True},
    "filters": {"include": {"eventType": ["click"]}, "exclude": {"userId": ["bot"]}},
}


def _event(i: int, impressions: int = 2) -> dict[str, Any]:
    """An event as a JSON producer writes it (sentAt in epoch milliseconds)."""
    return {
        "eventId": f"e-{i}", "trackingId": None, "sessionId": f"s-{i % 100}", "userId": f"u-{i % 1000}",
        "eventType": "click", "eventValue": 1.5, "itemId": f"item-{i}", "properties": {"color": "red", "n": i},
        "sentAt": SENT_AT_MS + i, "recommendationId": None,
        "impression": [f"item-{i + k:06d}-aaaaaaaaaaaaaaaaaaaa" for k in range(impressions)],
        "eventAttributionSource": None,
    }


def _avro_record(i: int, logical: bool) -> dict[str, Any]:
    record = _event(i) | {"sentAt": dt.datetime.fromtimestamp((SENT_AT_MS + i) / 1000, dt.UTC)}
    if logical:
        record |= {"ref": uuid.UUID(int=i), "price": decimal.Decimal("12.34"), "day": dt.date(2024, 5, 1),
                   "at": dt.datetime(2024, 5, 1, tzinfo=dt.UTC)}
    return record


def _avro_values(schema: dict[str, Any], n: int, logical: bool) -> list[bytes]:
    parsed = fastavro.parse_schema(json.loads(json.dumps(schema)))
    out = []
    for i in range(n):
        buf = io.BytesIO(HEADER)
        buf.seek(5)
        fastavro.schemaless_writer(buf, parsed, _avro_record(i, logical))
        out.append(buf.getvalue())
    return out


def _avro_decoder(schema: dict[str, Any]) -> Callable[[bytes], dict[str, Any]]:
    text = json.dumps(schema)
    # The reader schema is the writer's: a reader without the extra fields would drop them.
    return ConfluentWireDecoder(lambda _id: text, parse(json.loads(text))).decode


def _best_us(cases: dict[str, tuple[Callable[[], object], int]], repeats: int) -> dict[str, float]:
    """µs per record of each case's best run. The cases take turns, repetition by repetition, so
    a burst of load from other processes hits all of them alike rather than one case's runs."""
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):
        for name, (run, _n) in cases.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: round(best[name] / n * 1e6, 2) for name, (_run, n) in cases.items()}


def _each(function: Callable[[Any], object], values: list[Any]) -> Callable[[], None]:
    def run() -> None:
        for value in values:
            function(value)
    return run


def _json_choices(n: int, repeats: int) -> list[dict[str, Any]]:
    """The "parser" and "validator" rows."""
    rows: list[dict[str, Any]] = []
    typical = [orjson.dumps(_event(i)) for i in range(n)]
    large = [orjson.dumps(_event(i, impressions=250)) for i in range(max(1, n // 10))]
    parsers: dict[str, Callable[[bytes], object]] = {
        "json": json.loads, "orjson": orjson.loads, "msgspec": msgspec.json.Decoder().decode}
    for size, values in (("typical", typical), ("10KB", large)):
        row: dict[str, Any] = {"parser": size, "bytes": len(values[0])}
        row |= _best_us({name: (_each(parse, values), len(values)) for name, parse in parsers.items()}, repeats)
        rows.append(row)
    schema = json.loads(avro_schemas.read(avro_schemas.INTERACTION_EVENT_JSON_SCHEMA))
    # A tenth of the records: the interpreted validator is ~30x slower than the others measured.
    parsed = [orjson.loads(v) for v in typical[: max(1, n // 10)]]
    validators: dict[str, Callable[[Any], object]] = {
        "fastjsonschema": fastjsonschema.compile(schema, use_default=False),
        "jsonschema": jsonschema.Draft7Validator(schema).validate}
    rows.append({"validator": "typical"}
                | _best_us({name: (_each(check, parsed), len(parsed)) for name, check in validators.items()}, repeats))
    return rows


def measure(n: int = 20_000, repeats: int = 5) -> list[dict[str, Any]]:
    """Every row the module docstring lists (what `make bench` reports)."""
    canonical = json.loads(canonical_schema_text())
    logical = {**canonical, "fields": [*canonical["fields"], *LOGICAL_FIELDS]}
    avro = _avro_values(canonical, n, False)
    typical = [orjson.dumps(_event(i)) for i in range(n)]
    reader = load_schema(None)
    json_schema = avro_schemas.read(avro_schemas.INTERACTION_EVENT_JSON_SCHEMA)
    encoder = MessageEncoder()
    plain = MappingConfig()
    formats: dict[str, tuple[Callable[[bytes], dict[str, Any]], list[bytes], MappingConfig]] = {
        "avro": (_avro_decoder(canonical), avro, plain),
        "avro+logical": (_avro_decoder(logical), _avro_values(logical, n, True),
                         MappingConfig(property_fields=[f["name"] for f in LOGICAL_FIELDS])),
        "json": (PlainJsonDecoder(reader).decode, typical, plain),
        "json_schema": (JsonSchemaWireDecoder(lambda _id: json_schema, reader, validate=False).decode,
                        [HEADER + v for v in typical], plain),
        "json_schema_validated": (JsonSchemaWireDecoder(lambda _id: json_schema, reader).decode,
                                  [HEADER + v for v in typical], plain),
        "protobuf": (ProtobufWireDecoder(lambda _id: (interaction_event_proto(), {})).decode,
                     [frame(1, encoder.encode(_event(i))) for i in range(n)], plain),
    }
    source = SourceRecord("t", 0, 0, None, None)

    def decode_and_map(decode: Callable[[bytes], dict[str, Any]], values: list[bytes],
                       mapping: MappingConfig) -> Callable[[], None]:
        mapper = EventMapper(mapping, "tracker")
        return _each(lambda v: mapper.to_event(decode(v), source), values)

    # The time window is on by default, so the rows are measured against a mapping with it off
    # ("none"): each row adds one transform to that, "time window" is the default mapping.
    off = {"time_not_before": None, "time_max_ahead_s": None}
    transforms = {"none": MappingConfig(**off),
                  **{k: MappingConfig(**(off | v)) for k, v in TRANSFORMS.items()},
                  "all": MappingConfig(**{k: v for t in TRANSFORMS.values() for k, v in t.items()})}
    cases: dict[str, tuple[Callable[[], object], int]] = {}
    for name, (decode, values, mapping) in formats.items():
        decode(values[0])  # fetch + prepare the schema once, outside the measurement
        cases[f"decode {name}"] = (_each(decode, values), n)
        cases[f"decode+map {name}"] = (decode_and_map(decode, values, mapping), n)
    for name, mapping in transforms.items():
        cases[f"transform {name}"] = (decode_and_map(formats["avro"][0], avro, mapping), n)
    us = _best_us(cases, repeats)
    avro_us = us["decode+map avro"]
    rows: list[dict[str, Any]] = [
        {"format": name, "records": n, "repeats": repeats, "decode_us": us[f"decode {name}"],
         "decode_and_map_us": us[f"decode+map {name}"], "vs_avro": round(us[f"decode+map {name}"] / avro_us, 2)}
        for name in formats]
    none_us = us["transform none"]
    rows += [{"transform": name, "records": n, "decode_and_map_us": us[f"transform {name}"],
              "vs_plain": round(us[f"transform {name}"] / none_us, 2)} for name in transforms if name != "none"]
    return rows + _json_choices(n, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decode_cost")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    for row in measure(args.records, args.repeats):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
