"""bytes -> dict: the decoders behind one protocol, and the factory the worker uses."""

from __future__ import annotations

from typing import Any

from connector.decode.base import (
    MAX_NESTING_DEPTH,
    UNKNOWN_SCHEMA_RETRY_S,
    Decoder,
    RegistryUnavailable,
    SchemaNotYetKnown,
    load_schema,
)
from connector.decode.confluent_wire import ConfluentWireDecoder, SchemaNotFound
from connector.decode.glue_wire import GlueWireDecoder, SchemaVersionNotFound, glue_client
from connector.decode.json_schema_wire import JsonSchemaWireDecoder
from connector.decode.json_value import PlainJsonDecoder
from connector.decode.plain import PlainAvroDecoder
from connector.decode.protobuf_wire import ProtobufWireDecoder

__all__ = [
    "ConfluentWireDecoder",
    "Decoder",
    "GlueWireDecoder",
    "JsonSchemaWireDecoder",
    "PlainAvroDecoder",
    "PlainJsonDecoder",
    "ProtobufWireDecoder",
    "RegistryUnavailable",
    "SchemaNotFound",
    "SchemaNotYetKnown",
    "SchemaVersionNotFound",
    "build_decoder",
    "load_schema",
]


def build_decoder(settings: Any, registry_client: Any = None, glue: Any = None) -> Decoder:
    """The decoder `settings.decode` asks for (`settings` is connector.config.Settings).

    `registry_client` is a confluent_kafka SchemaRegistryClient, required for "confluent",
    "json_schema" and "protobuf".
    `glue` is a boto3 glue client for format "glue"; None builds one from `settings.glue`
    (region defaulting to `personalize.region`).
    """
    fmt = settings.decode.format
    depth = getattr(settings.decode, "max_nesting_depth", MAX_NESTING_DEPTH)
    retry_s = getattr(settings.decode, "unknown_schema_retry_s", UNKNOWN_SCHEMA_RETRY_S)
    if fmt == "protobuf":  # the registered .proto is the schema: no Avro reader schema
        if registry_client is None:
            raise ValueError("decode.format 'protobuf' needs a schema registry client")
        return ProtobufWireDecoder.from_registry(registry_client, unknown_schema_retry_s=retry_s,
                                                 max_nesting_depth=depth)
    reader = load_schema(settings.decode.reader_schema)
    if fmt == "plain":
        return PlainAvroDecoder(load_schema(settings.decode.writer_schema), reader, max_nesting_depth=depth)
    if fmt == "json":
        return PlainJsonDecoder(reader, max_nesting_depth=depth)
    options = {"unknown_schema_retry_s": retry_s, "max_nesting_depth": depth}
    if fmt == "glue":
        section = getattr(settings, "glue", None)
        registry_name = getattr(section, "registry_name", None)
        if glue is None:
            region = getattr(section, "region", None) or settings.personalize.region
            glue = glue_client(region, getattr(section, "endpoint_url", None))
        return GlueWireDecoder.from_client(glue, reader, registry_name=registry_name, **options)
    if registry_client is None:
        raise ValueError(f"decode.format '{fmt}' needs a schema registry client")
    if fmt == "json_schema":
        validate = getattr(settings.decode, "validate_json_schema", True)
        return JsonSchemaWireDecoder.from_registry(registry_client, reader, validate=validate, **options)
    return ConfluentWireDecoder.from_registry(registry_client, reader, **options)
