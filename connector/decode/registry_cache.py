"""Schemas fetched from a registry by id, prepared once and cached, with outages and unknown ids handled.

Shared by every Confluent-framed format (Avro, JSON Schema): what differs is only how a fetched
schema text is prepared for reading records (`prepare`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from connector.decode.base import UNKNOWN_SCHEMA_RETRY_S, RegistryUnavailable, UnknownIds
from connector.records import DecodeError

# After the registry failed to answer, fail fast for this long instead of asking again for every
# partition's next record: each attempt can block the poll loop for seconds.
OUTAGE_BACKOFF_S = 5.0

Prepared = TypeVar("Prepared")


def unknown_id(message: str) -> DecodeError:
    return DecodeError(message, error_class="UnknownSchemaId")


class RegistrySchemas(Generic[Prepared]):
    """`get(schema_id)`: the prepared schema of an id, fetched and prepared once.

    `fetch(schema_id)` returns the schema's text; it raises a LookupError for an unknown id,
    RegistryUnavailable when the registry cannot answer, or DecodeError for a schema that can never
    be used; anything else is taken as RegistryUnavailable. `prepare(schema_id, text)` raises
    DecodeError for a schema it cannot use (not cached: a broken fetch might be fixed).
    """

    def __init__(self, fetch: Callable[[int], str], prepare: Callable[[int, str], Prepared], *,
                 unknown_schema_retry_s: float = UNKNOWN_SCHEMA_RETRY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch, self._prepare, self._clock = fetch, prepare, clock
        self._prepared: dict[int, Prepared] = {}
        self._unknown = UnknownIds(unknown_schema_retry_s, unknown_id, lambda sid: f"schema id {sid}", clock)
        self._outage_until = 0.0  # monotonic time until which the registry is taken as down
        self._outage: RegistryUnavailable | None = None
        self._lock = threading.Lock()  # decoders may be shared by threads; fetch each id once

    def get(self, schema_id: int) -> Prepared:
        cached = self._prepared.get(schema_id)
        return cached if cached is not None else self._load(schema_id)

    def _load(self, schema_id: int) -> Prepared:
        with self._lock:
            cached = self._prepared.get(schema_id)
            if cached is not None:
                return cached
            self._unknown.check(schema_id)
            if self._outage is not None and self._clock() < self._outage_until:
                raise RegistryUnavailable(f"schema id {schema_id}: the registry was unavailable moments ago "
                                          f"({self._outage})")
            try:
                text = self._fetch(schema_id)
            except LookupError:
                raise self._unknown.missed(schema_id) from None
            except DecodeError:
                raise
            except Exception as exc:
                outage = exc if isinstance(exc, RegistryUnavailable) else RegistryUnavailable(
                    f"schema id {schema_id}: {type(exc).__name__}: {exc}")
                self._outage, self._outage_until = outage, self._clock() + OUTAGE_BACKOFF_S
                raise outage from exc
            self._outage = None
            self._unknown.found(schema_id)
            prepared = self._prepare(schema_id, text)
            self._prepared[schema_id] = prepared
            return prepared
