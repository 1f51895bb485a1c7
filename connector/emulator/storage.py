"""Where accepted calls go: memory by default, SQLite with --db.

One row per accepted *call* (not per event) keeps the hot path to a list append; rows are
expanded into one record per event/item/user only when someone reads them. With SQLite, a
background thread writes pending rows in batches (WAL, synchronous=OFF) so the event loop never
waits on the disk. synchronous=OFF still survives a process restart (only an OS crash can lose the
last rows); with NORMAL the WAL checkpoint fsyncs cut throughput by a third.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

# kind -> (the request member naming the target, the list member, request members copied into
# every record besides the target)
KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "events": ("trackingId", "eventList", ("sessionId", "userId")),
    "items": ("datasetArn", "items", ()),
    "users": ("datasetArn", "users", ()),
    "actions": ("datasetArn", "actions", ()),
    "action-interactions": ("trackingId", "actionInteractions", ()),
}


class StoredCall(NamedTuple):
    kind: str
    key: str  # trackingId or datasetArn
    received_at: float  # epoch seconds
    request: Mapping[str, Any]  # the decoded request body, as received


def expand(call: StoredCall) -> Iterator[dict[str, Any]]:
    """One record per entry: the call's context fields, the entry as received, then receivedAt."""
    key_name, list_name, context = KINDS[call.kind]
    common: dict[str, Any] = {key_name: call.key}
    for name in context:
        if name in call.request:
            common[name] = call.request[name]
    for entry in call.request[list_name]:
        yield {**common, **entry, "receivedAt": call.received_at}


class Store(Protocol):
    def add(self, call: StoredCall, body: bytes) -> None: ...
    def calls(self, kind: str, key: str | None = None) -> Iterator[StoredCall]: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self._calls: list[StoredCall] = []

    def add(self, call: StoredCall, body: bytes) -> None:
        self._calls.append(call)

    def calls(self, kind: str, key: str | None = None) -> Iterator[StoredCall]:
        for call in list(self._calls):  # a snapshot: appends while streaming are not seen
            if call.kind == kind and (key is None or call.key == key):
                yield call

    def clear(self) -> None:
        self._calls.clear()

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    received_at REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_kind_key ON calls (kind, key, id);
"""


class SqliteStore:
    """Accepted calls persisted in SQLite; survives restarts."""

    FLUSH_INTERVAL = 0.05  # seconds between background batch writes
    PAGE = 500  # rows per read query while streaming

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()  # one connection, used by the writer thread and by readers
        # deque.append / popleft are thread-safe, so the event loop never takes the lock to add.
        self._pending: deque[tuple[str, str, float, bytes]] = deque()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="emulator-sqlite", daemon=True)
        self._writer.start()

    def add(self, call: StoredCall, body: bytes) -> None:
        self._pending.append((call.kind, call.key, call.received_at, body))

    def flush(self) -> None:
        with self._lock:
            pending = self._pending
            batch = [pending.popleft() for _ in range(len(pending))]
            if batch:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO calls (kind, key, received_at, body) VALUES (?, ?, ?, ?)", batch)
                self._db.execute("COMMIT")

    def _write_loop(self) -> None:
        while not self._stop.wait(self.FLUSH_INTERVAL):
            self.flush()

    def calls(self, kind: str, key: str | None = None) -> Iterator[StoredCall]:
        self.flush()
        last = 0
        while True:
            with self._lock:
                if key is None:
                    rows = self._db.execute(
                        "SELECT id, key, received_at, body FROM calls WHERE kind = ? AND id > ? ORDER BY id LIMIT ?",
                        (kind, last, self.PAGE),
                    ).fetchall()
                else:
                    rows = self._db.execute(
                        "SELECT id, key, received_at, body FROM calls WHERE kind = ? AND key = ? "
                        "AND id > ? ORDER BY id LIMIT ?",
                        (kind, key, last, self.PAGE),
                    ).fetchall()
            for row_id, row_key, received_at, body in rows:
                last = row_id
                yield StoredCall(kind, row_key, received_at, json.loads(body))
            if len(rows) < self.PAGE:
                return

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._db.execute("DELETE FROM calls")

    def close(self) -> None:
        self._stop.set()
        self._writer.join()
        self.flush()
        self._db.close()
