"""AWS Glue Schema Registry wire format, as the AWS serde library (GlueSchemaRegistrySerializer) frames it:

    byte 0       header version, always 3
    byte 1       compression: 0 none, 5 zlib (java.util.zip.Deflater's default, i.e. a zlib stream)
    bytes 2-17   the schema version id, a UUID: most significant 8 bytes, then least (= uuid.bytes)
    bytes 18-    the Avro binary body, zlib-compressed when byte 1 is 5

The writer schema comes from Glue's GetSchemaVersion (boto3 `glue` client), fetched and parsed once
per schema version id and compared with the reader schema once, like the Confluent decoder.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

from connector.decode.base import (
    MAX_NESTING_DEPTH,
    UNKNOWN_SCHEMA_RETRY_S,
    RegistryUnavailable,
    Schema,
    UnknownIds,
    WriterSchema,
    prepare_reader,
    prepare_writer,
)
from connector.records import DecodeError

HEADER_VERSION = 3
COMPRESSION_NONE = 0
COMPRESSION_ZLIB = 5
HEADER_SIZE = 18
# PutEvents events are small; a compressed body inflating past this is corrupt or hostile.
MAX_INFLATED_BYTES = 16 * 1024 * 1024


class SchemaVersionNotFound(LookupError):
    """Raised by a fetch function when Glue does not know the schema version id."""


class GlueSchemaVersion(NamedTuple):
    data_format: str  # "AVRO", "JSON" or "PROTOBUF"
    definition: str  # the schema text
    registry_name: str | None = None


class GlueWireDecoder:
    """Decodes Glue-framed Avro into dicts shaped by `reader_schema`.

    `fetch_schema(version_id)` returns the GlueSchemaVersion. It raises a LookupError
    (SchemaVersionNotFound, KeyError) for an unknown id, or RegistryUnavailable when Glue cannot
    answer; any other exception is treated as RegistryUnavailable. A version that is not Avro,
    or not valid Avro, is remembered as such: a schema version never changes.

    `registry_name`, when given, accepts only schema versions of that registry (when the fetch
    reports the registry, as GetSchemaVersion does through the schema ARN).

    A version id Glue does not know may be one being created right now: it raises SchemaNotYetKnown
    (retryable) until it has been unknown for `unknown_schema_retry_s`, then a DecodeError
    UnknownSchemaVersion; Glue is asked about it at most once a second meanwhile.
    """

    def __init__(
        self,
        fetch_schema: Callable[[uuid.UUID], GlueSchemaVersion],
        reader_schema: Schema,
        *,
        registry_name: str | None = None,
        unknown_schema_retry_s: float = UNKNOWN_SCHEMA_RETRY_S,
        max_nesting_depth: int = MAX_NESTING_DEPTH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch_schema
        self._reader = prepare_reader(reader_schema)
        self._registry_name = registry_name
        self._max_depth = max_nesting_depth
        self._writers: dict[bytes, WriterSchema | DecodeError] = {}
        self._unknown = UnknownIds(unknown_schema_retry_s, _unknown_version,
                                   lambda vid: f"schema version {uuid.UUID(bytes=vid)}", clock)
        self._lock = threading.Lock()  # decoders may be shared by threads; fetch each id once

    @classmethod
    def from_client(
        cls, client: Any, reader_schema: Schema, *, registry_name: str | None = None, **options: Any
    ) -> GlueWireDecoder:
        """A decoder over a boto3 `glue` client."""
        return cls(glue_fetcher(client), reader_schema, registry_name=registry_name, **options)

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value:
            raise DecodeError("record value is empty (a tombstone?)", error_class="EmptyValue")
        if value[0] != HEADER_VERSION:
            raise DecodeError(f"first byte is 0x{value[0]:02x}, expected the Glue header version 0x03",
                              error_class="WrongHeaderVersion")
        if len(value) < HEADER_SIZE:
            raise DecodeError(f"value has {len(value)} bytes; the Glue header alone has {HEADER_SIZE}",
                              error_class="Truncated")
        compression = value[1]
        if compression not in (COMPRESSION_NONE, COMPRESSION_ZLIB):
            raise DecodeError(f"compression byte is {compression}; known: 0 (none), 5 (zlib)",
                              error_class="UnknownCompression")
        version_id = value[2:HEADER_SIZE]
        writer = self._writers.get(version_id) or self._load(version_id)
        if isinstance(writer, DecodeError):
            raise writer
        if compression == COMPRESSION_NONE:
            return writer.read(value, HEADER_SIZE)
        return writer.read(_inflate(value, HEADER_SIZE), 0)

    def _load(self, version_id: bytes) -> WriterSchema | DecodeError:
        with self._lock:
            cached = self._writers.get(version_id)
            if cached is not None:
                return cached
            vid = uuid.UUID(bytes=version_id)
            self._unknown.check(version_id)
            try:
                version = self._fetch(vid)
            except LookupError:
                raise self._unknown.missed(version_id) from None
            except RegistryUnavailable:
                raise
            except Exception as exc:
                raise RegistryUnavailable(f"schema version {vid}: {type(exc).__name__}: {exc}") from exc
            self._unknown.found(version_id)
            writer = self._writer(vid, version)
            self._writers[version_id] = writer
            return writer

    def _writer(self, vid: uuid.UUID, version: GlueSchemaVersion) -> WriterSchema | DecodeError:
        if self._registry_name and version.registry_name and version.registry_name != self._registry_name:
            return DecodeError(f"schema version {vid} belongs to registry {version.registry_name!r}, "
                               f"not {self._registry_name!r}", error_class="UnknownSchemaVersion")
        if version.data_format.upper() != "AVRO":
            return DecodeError(f"schema version {vid} is a {version.data_format} schema, not Avro",
                               error_class="NotAvro")
        try:
            return prepare_writer(json.loads(version.definition), self._reader, self._max_depth)
        except Exception as exc:
            return DecodeError(f"schema version {vid} is not a valid Avro record schema: {exc}",
                               error_class="IncompatibleSchema")


def _unknown_version(message: str) -> DecodeError:
    return DecodeError(f"Glue Schema Registry: {message}", error_class="UnknownSchemaVersion")


def _inflate(value: bytes, start: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(memoryview(value)[start:], MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise DecodeError(f"zlib-compressed body cannot be inflated: {exc}", error_class="CorruptBody") from None
    if inflater.unconsumed_tail:
        raise DecodeError(f"zlib-compressed body inflates past {MAX_INFLATED_BYTES} bytes",
                          error_class="CorruptBody")
    if not inflater.eof:
        raise DecodeError("zlib-compressed body ends early", error_class="Truncated")
    if inflater.unused_data:
        raise DecodeError(f"{len(inflater.unused_data)} trailing byte(s) after the zlib stream",
                          error_class="CorruptBody")
    return body


def _registry_of(schema_arn: str | None) -> str | None:
    # arn:aws:glue:<region>:<account>:schema/<registry>/<schema>
    if not schema_arn:
        return None
    _, _, resource = schema_arn.rpartition(":schema/")
    registry, sep, _ = resource.partition("/")
    return registry if sep else None


def glue_fetcher(client: Any) -> Callable[[uuid.UUID], GlueSchemaVersion]:
    """Adapt boto3 glue `get_schema_version` to the fetch contract.

    EntityNotFoundException -> SchemaVersionNotFound; every other service or connection error ->
    RegistryUnavailable (throttling, access denied, network: the record is probably fine).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    def fetch(version_id: uuid.UUID) -> GlueSchemaVersion:
        try:
            response = client.get_schema_version(SchemaVersionId=str(version_id))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "EntityNotFoundException":
                raise SchemaVersionNotFound(str(version_id)) from None
            raise RegistryUnavailable(f"schema version {version_id}: {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise RegistryUnavailable(f"schema version {version_id}: {type(exc).__name__}: {exc}") from exc
        return GlueSchemaVersion(
            str(response.get("DataFormat") or "AVRO"),
            str(response["SchemaDefinition"]),
            _registry_of(response.get("SchemaArn")),
        )

    return fetch


def glue_client(region: str | None, endpoint_url: str | None = None) -> Any:
    """A boto3 glue client with short timeouts: it is called on the worker's polling thread."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=10)
    return boto3.client("glue", region_name=region, endpoint_url=endpoint_url, config=config)
