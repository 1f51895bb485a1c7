"""Decode cost per record, in-memory (no Kafka, no registry): the decoder's hot path alone.

    python -m bench.decode_cost [--records N] [--repeats R]

Prints one JSON line per schema: µs/record for `ConfluentWireDecoder.decode` (best of R runs of N
records, so other processes on the machine inflate it less), and with the EventMapper after it.
"canonical" is avro_schemas/interaction_event.avsc; "logical" adds four logical-type fields (read
with a reader schema that has them, and mapped into properties); "canonical+transforms" maps the
canonical records with every mapping transform on (time window, camelCase keys, joined lists,
filters); "protobuf" is the canonical records as avro_schemas/interaction_event.proto messages
through `ProtobufWireDecoder`.
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

from connector.config import MappingConfig
from connector.decode import ConfluentWireDecoder, ProtobufWireDecoder
from connector.decode.base import canonical_schema_text, parse
from connector.decode.protobuf_wire import frame
from connector.destinations.events import EventMapper
from connector.records import SourceRecord
from connector.tools.protobuf_records import MessageEncoder, interaction_event_proto

LOGICAL_FIELDS: list[dict[str, Any]] = [
    {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
]


def _record(i: int, logical: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventId": f"e-{i}", "trackingId": None, "sessionId": f"s-{i % 100}", "userId": f"u-{i % 1000}",
        "eventType": "click", "eventValue": 1.5, "itemId": f"item-{i}", "properties": {"color": "red", "n": i},
        "sentAt": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC) + dt.timedelta(milliseconds=i),
        "recommendationId": None, "impression": [f"item-{i + 1}", f"item-{i + 2}"],
        "eventAttributionSource": None,
    }
    if logical:
        record |= {"ref": uuid.UUID(int=i), "price": decimal.Decimal("12.34"), "day": dt.date(2024, 5, 1),
                   "at": dt.datetime(2024, 5, 1, tzinfo=dt.UTC)}
    return record


def _values(schema: dict[str, Any], n: int, logical: bool) -> list[bytes]:
    parsed = fastavro.parse_schema(json.loads(json.dumps(schema)))
    out = []
    for i in range(n):
        buf = io.BytesIO(b"\x00" + (1).to_bytes(4, "big"))
        buf.seek(5)
        fastavro.schemaless_writer(buf, parsed, _record(i, logical))
        out.append(buf.getvalue())
    return out


def _protobuf_case(n: int) -> tuple[Callable[[bytes], Any], EventMapper, list[bytes]]:
    """The canonical records as packaged InteractionEvent Protobuf messages (decode.format protobuf)."""
    encoder = MessageEncoder()
    values = [frame(1, encoder.encode(_record(i, False))) for i in range(n)]
    decoder = ProtobufWireDecoder(lambda _id: (interaction_event_proto(), {}))
    return decoder.decode, EventMapper(MappingConfig(), "tracker"), values


def _best_us(run: Callable[[], None], n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decode_cost")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    canonical = json.loads(canonical_schema_text())
    logical = {**canonical, "fields": [*canonical["fields"], *LOGICAL_FIELDS]}
    mapping = MappingConfig(property_fields=[f["name"] for f in LOGICAL_FIELDS])
    # The mapping transforms a route may add (docs/configuration.md, "Transforms"), every one on.
    transforms = MappingConfig(time_not_before=dt.datetime(2000, 1, 1, tzinfo=dt.UTC), time_max_ahead_s=86400,
                               property_keys="camelCase", join_lists=True, include={"eventType": ["click"]},
                               exclude={"userId": ["bot"]})
    cases: list[tuple[str, Callable[[bytes], Any], EventMapper, list[bytes]]] = []
    for name, schema, with_logical, route_mapping in (
        ("canonical", canonical, False, MappingConfig()), ("logical", logical, True, mapping),
        ("canonical+transforms", canonical, False, transforms),
    ):
        text = json.dumps(schema)
        # The reader schema is the writer's: a reader without the extra fields would drop them.
        decoder = ConfluentWireDecoder(lambda _id, text=text: text, parse(json.loads(text)))
        mapper = EventMapper(route_mapping, "tracker")
        cases.append((name, decoder.decode, mapper, _values(schema, args.records, with_logical)))
    cases.append(("protobuf", *_protobuf_case(args.records)))
    source = SourceRecord("t", 0, 0, None, None)
    for name, decode, mapper, values in cases:

        def decode_all(values: list[bytes] = values, decode: Callable[[bytes], Any] = decode) -> None:
            for value in values:
                decode(value)

        def map_all(values: list[bytes] = values, decode: Callable[[bytes], Any] = decode,
                    mapper: EventMapper = mapper, source: SourceRecord = source) -> None:
            for value in values:
                mapper.to_event(decode(value), source)

        decode_all()  # fetch + parse (or compile) the writer schema once, outside the measurement
        row: dict[str, Any] = {"schema": name, "records": args.records,
                               "decode_us": round(_best_us(decode_all, args.records, args.repeats), 2)}
        try:
            row["decode_and_map_us"] = round(_best_us(map_all, args.records, args.repeats), 2)
        except Exception as exc:  # before logical types were mapped, the logical schema could not be
            row["decode_and_map_us"] = f"fails: {type(exc).__name__}: {exc}"
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
