"""Every kind's samples in JSON Schema and Protobuf framing decode to the Avro decoder's dict, and bad ones stay bad.

What `produce --format json_schema|protobuf --kind K` writes, read back by the connector's own
decoders with the kind's packaged twin as the registered schema, against the same records in Avro
(the pattern of test_json_traffic.py::test_every_kind_decodes_from_json_as_from_avro).
"""

from __future__ import annotations

import importlib.resources
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import avro_schemas
from connector.decode import ConfluentWireDecoder, Decoder, JsonSchemaWireDecoder, ProtobufWireDecoder, load_schema
from connector.records import DecodeError
from connector.tools.json_traffic import make_json_encoder
from connector.tools.produce import make_encoder, make_protobuf_encoder
from connector.tools.samples import KINDS
from connector.tools.workload import UNDECODABLE_KINDS, SampleRecord

SCHEMA_ID = 3
FORMATS = ("json_schema", "protobuf")


def packaged(name: str) -> Path:
    return Path(str(importlib.resources.files("avro_schemas") / name))


def twin(value_format: str, schema: str) -> tuple[Decoder, Callable[[SampleRecord], bytes]]:
    """The connector's decoder with the kind's packaged twin registered as SCHEMA_ID, and produce's encoder."""
    if value_format == "protobuf":
        proto = avro_schemas.read(avro_schemas.PROTOS[schema])
        return (ProtobufWireDecoder({SCHEMA_ID: (proto, {})}.__getitem__, unknown_schema_retry_s=0),
                make_protobuf_encoder(SCHEMA_ID, schema))
    registered = {SCHEMA_ID: avro_schemas.read(avro_schemas.JSON_SCHEMAS[schema])}
    return (JsonSchemaWireDecoder(registered.__getitem__, load_schema(packaged(schema)), unknown_schema_retry_s=0),
            make_json_encoder(SCHEMA_ID))


def avro(schema: str) -> tuple[Decoder, Callable[[SampleRecord], bytes]]:
    text = avro_schemas.read(schema)
    return ConfluentWireDecoder(lambda _id: text, load_schema(packaged(schema))), make_encoder(1, schema)


def as_avro_reads_it(decoded: dict[str, Any], value_format: str, schema: str) -> dict[str, Any]:
    """Avro's and Protobuf's float is 32 bits; JSON keeps the double (docs/configuration.md)."""
    if value_format != "json_schema":
        return decoded
    floats = [f["name"] for f in json.loads(avro_schemas.read(schema))["fields"] if "float" in json.dumps(f["type"])]
    return decoded | {name: struct.unpack("<f", struct.pack("<f", decoded[name]))[0]
                      for name in floats if decoded[name] is not None}


@pytest.mark.parametrize("value_format", FORMATS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_decodes_as_from_avro(kind: str, value_format: str) -> None:
    sample = KINDS[kind]
    (avro_decoder, avro_encode), (decoder, encode) = avro(sample.schema), twin(value_format, sample.schema)
    records = [r for r in sample.generate(80, 6, 13, 0.0) if r.value is not None]
    assert records
    for record in records:
        decoded = as_avro_reads_it(decoder.decode(encode(record)), value_format, sample.schema)
        assert decoded == avro_decoder.decode(avro_encode(record))


@pytest.mark.parametrize("value_format", FORMATS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bad_samples_stay_bad_as_labelled(kind: str, value_format: str) -> None:
    """Undecodable kinds fail to decode; the others decode to what Avro gives, for validation to refuse."""
    sample = KINDS[kind]
    (avro_decoder, avro_encode), (decoder, encode) = avro(sample.schema), twin(value_format, sample.schema)
    bad = [r for r in sample.generate(600, 30, 5, 0.5) if r.bad_kind is not None]
    assert {r.bad_kind for r in bad} & UNDECODABLE_KINDS >= {"not-avro", "truncated"}
    assert {r.bad_kind for r in bad} - UNDECODABLE_KINDS  # each kind has some that only validation catches
    for record in bad:
        if record.bad_kind in UNDECODABLE_KINDS:
            with pytest.raises(DecodeError):
                decoder.decode(encode(record))
        else:
            decoded = as_avro_reads_it(decoder.decode(encode(record)), value_format, sample.schema)
            assert decoded == avro_decoder.decode(avro_encode(record)), record.bad_kind
