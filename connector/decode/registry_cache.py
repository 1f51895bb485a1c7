"""Schemas fetched from a registry once per schema id: unknown ids waited for, outages backed off.

Shared by the Confluent-framed decoders (Avro, Protobuf): they differ in what a schema is prepared
into, not in how the registry is asked.
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

Fetched = TypeVar("Fetched")
Prepared = TypeVar("Prepared")


class RegistrySchemas(Generic[Fetched, Prepared]):
    """`get(schema_id)`: the prepared schema of an id, fetched and prepared at most once.

    `fetch(schema_id)` raises a LookupError for an unknown id, RegistryUnavailable when the registry
    cannot answer, or DecodeError for a schema that can never be used; any other exception is
    treated as RegistryUnavailable. `prepare(schema_id, fetched)` may raise DecodeError, which is
    not cached (a registry never changes a schema id, but a broken fetch might be fixed).
    An unknown id raises SchemaNotYetKnown until it has been unknown for `unknown_schema_retry_s`,
    then a DecodeError UnknownSchemaId.
    """

    def __init__(self, fetch: Callable[[int], Fetched], prepare: Callable[[int, Fetched], Prepared], *,
                 unknown_schema_retry_s: float = UNKNOWN_SCHEMA_RETRY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch, self._prepare, self._clock = fetch, prepare, clock
        self.prepared: dict[int, Prepared] = {}  # read-only outside
        self._unknown = UnknownIds(unknown_schema_retry_s, _unknown_id, lambda sid: f"schema id {sid}", clock)
        self._outage_until = 0.0  # monotonic time until which the registry is taken as down
        self._outage: RegistryUnavailable | None = None
        self._lock = threading.Lock()  # decoders may be shared by threads; fetch each id once

    def get(self, schema_id: int) -> Prepared:
        cached = self.prepared.get(schema_id)
        return cached if cached is not None else self._load(schema_id)

    def _load(self, schema_id: int) -> Prepared:
        with self._lock:
            cached = self.prepared.get(schema_id)
            if cached is not None:
                return cached
            self._unknown.check(schema_id)
            if self._outage is not None and self._clock() < self._outage_until:
                raise RegistryUnavailable(f"schema id {schema_id}: the registry was unavailable moments ago "
                                          f"({self._outage})")
            try:
                fetched = self._fetch(schema_id)
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
            prepared = self._prepare(schema_id, fetched)
            self.prepared[schema_id] = prepared
            return prepared


def _unknown_id(message: str) -> DecodeError:
    return DecodeError(message, error_class="UnknownSchemaId")
