"""bytes -> dict: the decoders behind one protocol, and the factory the worker uses."""

from __future__ import annotations

from typing import Any

from connector.decode.base import Decoder, RegistryUnavailable, load_schema
from connector.decode.confluent_wire import ConfluentWireDecoder, SchemaNotFound
from connector.decode.plain import PlainAvroDecoder

__all__ = [
    "ConfluentWireDecoder",
    "Decoder",
    "PlainAvroDecoder",
    "RegistryUnavailable",
    "SchemaNotFound",
    "build_decoder",
    "load_schema",
]


def build_decoder(settings: Any, registry_client: Any = None) -> Decoder:
    """The decoder `settings.decode` asks for (`settings` is connector.config.Settings).

    `registry_client` is a confluent_kafka SchemaRegistryClient, required for format "confluent".
    """
    reader = load_schema(settings.decode.reader_schema)
    if settings.decode.format == "plain":
        return PlainAvroDecoder(load_schema(settings.decode.writer_schema), reader)
    if registry_client is None:
        raise ValueError("decode.format 'confluent' needs a schema registry client")
    return ConfluentWireDecoder.from_registry(registry_client, reader)
