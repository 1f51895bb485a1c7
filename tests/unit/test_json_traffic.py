"""`produce --format json|json_schema` writes what the JSON decoders read back, and bad records stay bad."""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import struct
from pathlib import Path
from typing import Any

import pytest

import avro_schemas
from connector.cli import build_parser
from connector.decode import ConfluentWireDecoder, JsonSchemaWireDecoder, PlainJsonDecoder, load_schema
from connector.destinations.fields import EPOCH
from connector.records import DecodeError
from connector.tools.json_traffic import make_json_encoder
from connector.tools.produce import make_encoder
from connector.tools.samples import KINDS
from connector.tools.workload import SCHEMA_FILE, UNDECODABLE_KINDS, generate

SCHEMA_ID = 7


def _decoder(schema_id: int | None) -> Any:
    if schema_id is None:
        return PlainJsonDecoder(load_schema(None))
    registered = {SCHEMA_ID: avro_schemas.read(avro_schemas.INTERACTION_EVENT_JSON_SCHEMA)}
    return JsonSchemaWireDecoder(registered.__getitem__, load_schema(None), unknown_schema_retry_s=0)


@pytest.mark.parametrize("schema_id", [None, SCHEMA_ID])
def test_good_records_decode_to_their_values_with_sent_at_as_the_avro_datetime(schema_id: int | None) -> None:
    encode, decoder = make_json_encoder(schema_id), _decoder(schema_id)
    good = [r for r in generate(200, 10, seed=3) if r.value is not None]
    for record in good:
        assert record.value is not None
        sent_at = EPOCH + dt.timedelta(milliseconds=record.value["sentAt"])
        assert decoder.decode(encode(record)) == {**record.value, "sentAt": sent_at}


@pytest.mark.parametrize("schema_id", [None, SCHEMA_ID])
def test_undecodable_kinds_stay_undecodable_in_json(schema_id: int | None) -> None:
    encode, decoder = make_json_encoder(schema_id), _decoder(schema_id)
    bad = [r for r in generate(400, 20, seed=5, bad_ratio=0.5) if r.bad_kind in UNDECODABLE_KINDS]
    assert {r.bad_kind for r in bad} == UNDECODABLE_KINDS
    for record in bad:
        with pytest.raises(DecodeError):
            decoder.decode(encode(record))


def test_format_option_defaults_to_avro() -> None:
    parser = build_parser()
    assert parser.parse_args(["produce", "--config", "c", "--events", "1"]).format == "avro"
    assert parser.parse_args(["produce", "--config", "c", "--events", "1", "--format", "json_schema"]).format \
        == "json_schema"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_decodes_from_json_as_from_avro(kind: str) -> None:
    """Each destination's reader schema shapes JSON records like Avro ones (defaults, timestamps)."""
    sample = KINDS[kind]
    text = avro_schemas.read(sample.schema)
    avro_decoder = ConfluentWireDecoder(lambda _id: text, load_schema(None if sample.schema == SCHEMA_FILE
                                                                    else _packaged(sample.schema)))
    json_decoder = PlainJsonDecoder(load_schema(_packaged(sample.schema)))
    avro_encode, json_encode = make_encoder(1, sample.schema), make_json_encoder(None)
    records = [r for r in sample.generate(60, 5, 11, 0.0) if r.value is not None]
    assert records
    float_fields = [f["name"] for f in json.loads(text)["fields"] if "float" in json.dumps(f["type"])]
    for record in records:
        from_json = json_decoder.decode(json_encode(record))
        for name in float_fields:  # Avro's float is 32 bits; JSON keeps the double (docs/configuration.md)
            if from_json[name] is not None:
                from_json[name] = struct.unpack("<f", struct.pack("<f", from_json[name]))[0]
        assert from_json == avro_decoder.decode(avro_encode(record))


def _packaged(name: str) -> Path:
    return Path(str(importlib.resources.files("avro_schemas") / name))
