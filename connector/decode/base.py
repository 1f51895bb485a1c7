"""What every decoder promises: bytes in, a dict out, or a DecodeError that says what was wrong."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import fastavro
from fastavro.read import SchemaResolutionError

import avro_schemas
from connector.decode.logical import api_logical_types
from connector.decode.nesting import check_nesting, static_depth
from connector.records import DecodeError

Schema = dict[str, Any]
CANONICAL_SCHEMA = "interaction_event.avsc"
# Defaults of decode.max_nesting_depth and decode.unknown_schema_retry_s (connector/config.py says why).
MAX_NESTING_DEPTH = 64
UNKNOWN_SCHEMA_RETRY_S = 60.0
# A registry that just said "unknown" is asked again for that id at most this often: records with
# it wait without a request each, and one registered a moment later is found a moment later.
UNKNOWN_RECHECK_S = 1.0
# Ids remembered as unknown; beyond this (hostile values with random ids) the oldest are forgotten.
MAX_UNKNOWN_IDS = 10_000


class Decoder(Protocol):
    def decode(self, value: bytes | None) -> dict[str, Any]:
        """The record as a dict; raises DecodeError (per record) and nothing else per record.

        A decoder that needs a remote service may also raise RegistryUnavailable, which is not
        about the record.
        """
        ...


class RegistryUnavailable(Exception):
    """The schema registry could not answer (network, 5xx, auth).

    Deliberately NOT a RecordError: the record is probably fine, the registry is not. Dead-lettering
    it would drain the whole topic into the DLQ during a registry outage, so the worker must back
    off and retry the same record instead.
    """


class SchemaNotYetKnown(RegistryUnavailable):
    """The registry does not know the record's schema id, for less than decode.unknown_schema_retry_s.

    Registries replicate asynchronously and producers register a schema just before they produce
    with it, so a miss is usually a moment early, not a bad record: the worker rewinds the partition
    and retries after a backoff, as in an outage, and dead-letters only once the id has stayed
    unknown longer than the bound.
    """


class UnknownIds:
    """Since when each schema id has been unknown, and whether to ask the registry again yet.

    `check(key)` before a fetch raises the id's error without a request if it was missed less than
    UNKNOWN_RECHECK_S ago; `missed(key)` after a "not found" returns the error to raise:
    SchemaNotYetKnown while the id has been unknown for less than `retry_s`, else the DecodeError
    from `final(...)`. `found(key)` forgets it.

    Ids that are never registered are garbage more often than early (a value that only looks
    framed: Avro starting with a null union branch is a 0x00 byte too), and each distinct one would
    hold its partition for the whole bound. So once an id has been given up on, an id first missed
    within `retry_s` of that is given up on at once: a burst of garbage costs one wait, not one per id.
    """

    def __init__(self, retry_s: float, final: Callable[[str], DecodeError], describe: Callable[[Any], str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._retry_s, self._final, self._describe, self._clock = retry_s, final, describe, clock
        self._since: dict[Hashable, float] = {}  # first miss
        self._asked: dict[Hashable, float] = {}  # latest miss
        self._gave_up_at: float | None = None  # the latest final verdict on any id
        self._not_waited: dict[Hashable, float] = {}  # ids given up on at once -> the verdict they followed

    def check(self, key: Hashable) -> None:
        asked = self._asked.get(key)
        if asked is not None and self._clock() - asked < UNKNOWN_RECHECK_S:
            raise self._error(key)

    def missed(self, key: Hashable) -> Exception:
        now = self._clock()
        if key not in self._since:
            while len(self._since) >= MAX_UNKNOWN_IDS:
                oldest = next(iter(self._since))
                del self._since[oldest]
                self._asked.pop(oldest, None)
                self._not_waited.pop(oldest, None)
            self._since[key] = now
        self._asked[key] = now
        return self._error(key)

    def found(self, key: Hashable) -> None:
        self._since.pop(key, None)
        self._asked.pop(key, None)
        self._not_waited.pop(key, None)

    def _error(self, key: Hashable) -> Exception:
        now, since = self._clock(), self._since[key]
        waited, what, gave_up = now - since, self._describe(key), self._gave_up_at
        if key not in self._not_waited and waited < self._retry_s:
            if gave_up is None or not 0 <= since - gave_up < self._retry_s:
                return SchemaNotYetKnown(f"{what} is not registered yet; records with it wait for it up to "
                                         f"{self._retry_s:g} s (decode.unknown_schema_retry_s), "
                                         f"unknown for {waited:.1f} s")
            self._not_waited[key] = since - gave_up
        self._gave_up_at = now
        if key in self._not_waited:
            return self._final(f"{what} is not registered (not waited for: it appeared "
                               f"{self._not_waited[key]:.0f} s after another unknown id was given up on, "
                               f"within decode.unknown_schema_retry_s = {self._retry_s:g} s)")
        return self._final(f"{what} is not registered (unknown for {waited:.0f} s; "
                           f"decode.unknown_schema_retry_s is {self._retry_s:g} s)")


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """A writer schema as decided once per schema id: how its records are read."""

    schema: Schema
    reader: Schema | None  # None: identical to the writer, no resolution needed
    scan_limit: int | None  # a nesting bound each record is checked against first; None: it cannot exceed it

    def read(self, value: bytes, start: int) -> dict[str, Any]:
        if self.scan_limit is not None:
            check_nesting(value, start, self.schema, self.scan_limit)
        return read_body(value, start, self.schema, self.reader)


def prepare_reader(schema: Schema) -> Schema:
    """The reader schema in the form writers are compared with (logical types rewritten as theirs)."""
    return parse(api_logical_types(schema))


def prepare_writer(schema: Any, reader: Schema, max_depth: int) -> WriterSchema:
    """Parse a writer schema (JSON form) for `reader` (from prepare_reader); raises what parse raises."""
    writer = parse(api_logical_types(schema))
    scan_limit = max_depth if static_depth(writer) > max_depth else None
    # fastavro compares writer and reader on every call; decide it once here instead.
    if writer == reader:
        return WriterSchema(reader, None, scan_limit)
    return WriterSchema(writer, reader, scan_limit)


def load_schema(path: str | Path | None) -> Schema:
    """An .avsc file as a parsed fastavro schema; None means the packaged canonical schema."""
    text = Path(path).read_text("utf-8") if path is not None else canonical_schema_text()
    return parse(json.loads(text))


def canonical_schema_text() -> str:
    return avro_schemas.read(CANONICAL_SCHEMA)


def parse(schema: Any) -> Schema:
    parsed = fastavro.parse_schema(schema)
    if not isinstance(parsed, dict):
        raise ValueError(f"expected an Avro record schema, got {parsed!r:.80}")
    return parsed


def read_body(value: bytes, start: int, writer: Schema, reader: Schema | None) -> dict[str, Any]:
    """Decode the Avro binary body value[start:]; every failure becomes a specific DecodeError.

    `reader` is None when it equals the writer (fastavro then skips resolution entirely).
    """
    buf = io.BytesIO(value)
    buf.seek(start)
    try:
        record = fastavro.schemaless_reader(buf, writer, reader)
    except DecodeError:
        raise  # from a logical type's reader (connector.decode.logical): already specific
    except SchemaResolutionError as exc:
        raise DecodeError(f"writer schema cannot be read as the reader schema: {exc}",
                          error_class="IncompatibleSchema") from None
    except EOFError:
        raise DecodeError(f"Avro body ends early ({len(value) - start} bytes)",
                          error_class="Truncated") from None
    except Exception as exc:  # fastavro raises ValueError, IndexError, UnicodeDecodeError, ... on garbage
        raise DecodeError(f"Avro body cannot be decoded: {type(exc).__name__}: {exc}",
                          error_class="CorruptBody") from None
    # A valid prefix followed by junk usually means the wrong schema; don't accept it silently.
    trailing = len(value) - buf.tell()
    if trailing:
        raise DecodeError(f"{trailing} trailing byte(s) after the Avro record", error_class="CorruptBody")
    if not isinstance(record, dict):
        raise DecodeError(f"expected an Avro record, got {type(record).__name__}", error_class="CorruptBody")
    return record
