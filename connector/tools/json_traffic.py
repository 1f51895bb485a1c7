"""Sample traffic as JSON values: plain (decode.format json) or Confluent JSON Schema framed (json_schema).

The same records as the Avro traffic (connector.tools.workload / samples), written as the JSON a
producer of these formats sends: field names as in the Avro schema, timestamps in epoch milliseconds;
json_schema registers the kind's packaged JSON Schema twin (avro_schemas.JSON_SCHEMAS).
Bad records stay bad in JSON: a "not-avro" record that happens to be a JSON object loses its closing
brace (else it would be a good JSON record), a truncated one is cut halfway through its JSON text.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Mapping
from typing import Any

import orjson

import avro_schemas
from connector.destinations.fields import epoch_millis
from connector.tools.workload import MAGIC_BYTE, SampleRecord


def register_json_schema(registry_url: str, subject: str, registry_config: Mapping[str, Any] | None = None,
                         schema: str = avro_schemas.INTERACTION_EVENT) -> int:
    """Register the packaged JSON Schema twin of the Avro schema `schema` under `subject` (idempotent); its id."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    client = SchemaRegistryClient.new_client({**(registry_config or {}), "url": registry_url})
    text = avro_schemas.read(avro_schemas.JSON_SCHEMAS[schema])
    return int(client.register_schema(subject, Schema(text, "JSON")))


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return epoch_millis(value)  # as Avro's timestamp-millis carries it
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def make_json_encoder(schema_id: int | None) -> Callable[[SampleRecord], bytes]:
    """SampleRecord -> JSON bytes; framed with magic byte and `schema_id` unless it is None (plain)."""
    header = b"" if schema_id is None else MAGIC_BYTE + struct.pack(">I", schema_id)

    def encode(record: SampleRecord) -> bytes:
        if record.raw is not None:
            if record.bad_kind == "not-avro" and record.raw.startswith(b"{"):
                return header + record.raw[:-1]
            return record.raw
        body = orjson.dumps(record.value, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
        if record.bad_kind == "truncated":
            body = body[: max(1, len(body) // 2)]
        return header + body

    return encode
