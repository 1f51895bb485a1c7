"""JSON decode cost per record, in-memory (no Kafka, no registry), next to Avro's.

    python -m bench.json_decode_cost [--records N] [--repeats R]

Prints JSON lines, µs/record, best of R runs of N records:
- "parser": the candidate parsers alone (json, orjson, msgspec) on a typical event and a ~10 KB one
  (250 impression-like ids), the measurement that chose orjson for connector.decode.json_value;
- "validator": checking a parsed event against the packaged JSON Schema with fastjsonschema
  (compiled, what decode.validate_json_schema uses) and with jsonschema (interpreted);
- "format": the connector's decoders, decode alone and decode + EventMapper, for Avro (Confluent),
  json, json_schema without and with validation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import time
from collections.abc import Callable
from typing import Any

import fastavro
import fastjsonschema
import jsonschema
import msgspec
import orjson

import avro_schemas
from connector.config import MappingConfig
from connector.decode import ConfluentWireDecoder, JsonSchemaWireDecoder, PlainJsonDecoder, load_schema
from connector.decode.base import canonical_schema_text
from connector.destinations.events import EventMapper
from connector.records import SourceRecord

HEADER = b"\x00" + (1).to_bytes(4, "big")
SENT_AT_MS = 1_714_564_800_000


def _event(i: int, impressions: int = 2) -> dict[str, Any]:
    """An event as a JSON producer writes it (sentAt in epoch milliseconds)."""
    return {
        "eventId": f"e-{i}", "trackingId": None, "sessionId": f"s-{i % 100}", "userId": f"u-{i % 1000}",
        "eventType": "click", "eventValue": 1.5, "itemId": f"item-{i}", "properties": {"color": "red", "n": i},
        "sentAt": SENT_AT_MS + i, "recommendationId": None,
        "impression": [f"item-{i + k:06d}-aaaaaaaaaaaaaaaaaaaa" for k in range(impressions)],
        "eventAttributionSource": None,
    }


def _avro_values(n: int) -> list[bytes]:
    parsed = fastavro.parse_schema(json.loads(canonical_schema_text()))
    out = []
    for i in range(n):
        buf = io.BytesIO(HEADER)
        buf.seek(5)
        record = _event(i) | {"sentAt": dt.datetime.fromtimestamp((SENT_AT_MS + i) / 1000, dt.UTC)}
        fastavro.schemaless_writer(buf, parsed, record)
        out.append(buf.getvalue())
    return out


def _best_us(run: Callable[[], object], n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return round(best / n * 1e6, 2)


def _each(function: Callable[[Any], object], values: list[Any]) -> Callable[[], None]:
    def run() -> None:
        for value in values:
            function(value)
    return run


def measure(n: int = 20_000, repeats: int = 7) -> list[dict[str, Any]]:
    """Every row the module docstring lists (what `make bench` reports too)."""
    rows: list[dict[str, Any]] = []
    typical = [orjson.dumps(_event(i)) for i in range(n)]
    large = [orjson.dumps(_event(i, impressions=250)) for i in range(max(1, n // 10))]
    parsers: dict[str, Callable[[bytes], object]] = {
        "json": json.loads, "orjson": orjson.loads, "msgspec": msgspec.json.Decoder().decode}
    for size, values in (("typical", typical), ("10KB", large)):
        row: dict[str, Any] = {"parser": size, "bytes": len(values[0])}
        row |= {name: _best_us(_each(parse, values), len(values), repeats) for name, parse in parsers.items()}
        rows.append(row)

    schema = json.loads(avro_schemas.read(avro_schemas.INTERACTION_EVENT_JSON_SCHEMA))
    parsed = [orjson.loads(v) for v in typical]
    validators: dict[str, Callable[[Any], object]] = {
        "fastjsonschema": fastjsonschema.compile(schema, use_default=False),
        "jsonschema": jsonschema.Draft7Validator(schema).validate}
    rows.append({"validator": "typical"} | {name: _best_us(_each(check, parsed), n, repeats)
                                             for name, check in validators.items()})

    reader = load_schema(None)
    text = avro_schemas.read(avro_schemas.INTERACTION_EVENT_JSON_SCHEMA)
    decoders: dict[str, tuple[Callable[[bytes], dict[str, Any]], list[bytes]]] = {
        "avro": (ConfluentWireDecoder(lambda _id: canonical_schema_text(), reader).decode, _avro_values(n)),
        "json": (PlainJsonDecoder(reader).decode, typical),
        "json_schema": (JsonSchemaWireDecoder(lambda _id: text, reader, validate=False).decode,
                        [HEADER + v for v in typical]),
        "json_schema_validated": (JsonSchemaWireDecoder(lambda _id: text, reader).decode,
                                  [HEADER + v for v in typical]),
    }
    mapper, source = EventMapper(MappingConfig(), "tracker"), SourceRecord("t", 0, 0, None, None)
    for name, (decode, values) in decoders.items():
        decode(values[0])  # fetch + prepare the schema once, outside the measurement
        map_each = _each(lambda v, decode=decode: mapper.to_event(decode(v), source), values)
        rows.append({"format": name, "records": n, "decode_us": _best_us(_each(decode, values), n, repeats),
                     "decode_and_map_us": _best_us(map_each, n, repeats)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.json_decode_cost")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    for row in measure(args.records, args.repeats):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
