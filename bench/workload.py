"""The benchmark workloads, how they reach Kafka, and the offline ideal number of PutEvents calls.

- default: `connector.tools.workload.generate(n, None, seed)`, the project's realistic clickstream
  (geometric-like sessions with a heavy tail, Zipf items, ~15% anonymous sessions, 48 sessions
  interleaved);
- full sessions: the same events regrouped so every session has exactly 10 events (every call
  can be full), still 48 sessions interleaved;
- live: the default generator replayed at its recorded rate, with sentAt gaps compressed so the
  replay takes `live_seconds`; each event's sentAt is rewritten to the wall time it was produced,
  so the emulator's receivedAt - sentAt is the delivery latency.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.tools.workload import MAX_ACTIVE_SESSIONS, SampleRecord, generate

MAX_EVENTS_PER_CALL = 10


def default_records(n: int, seed: int) -> list[SampleRecord]:
    return list(generate(n, None, seed))


def full_session_records(n: int, seed: int, length: int = MAX_EVENTS_PER_CALL) -> list[SampleRecord]:
    """`n` (rounded down to a multiple of `length`) events in sessions of exactly `length` events.

    Event bodies (types, items, properties, ...) come from `generate`; only the session structure is
    replaced: 48 sessions active at once, each next event drawn from a random active session.
    """
    n -= n % length
    rng = random.Random(seed ^ 0xF0115E55)
    source = generate(n, None, seed)
    active: list[list[Any]] = []  # [session id, user id, remaining]
    next_index = 0
    total_sessions = n // length

    def new_session() -> list[Any]:
        nonlocal next_index
        user = None if rng.random() < 0.15 else f"user-{rng.randrange(max(1, total_sessions // 2)):06d}"
        session = [f"full-{seed}-{next_index:07d}", user, length]
        next_index += 1
        return session

    while len(active) < min(MAX_ACTIVE_SESSIONS, total_sessions):
        active.append(new_session())
    out: list[SampleRecord] = []
    for record in source:
        slot = rng.randrange(len(active))
        session = active[slot]
        assert record.value is not None
        value = {**record.value, "sessionId": session[0], "userId": session[1]}
        out.append(SampleRecord(session[0].encode(), value, None, None, session[0], record.event_id))
        session[2] -= 1
        if session[2] == 0:
            if next_index < total_sessions:
                active[slot] = new_session()
            else:
                active[slot] = active[-1]
                active.pop()
    return out


def describe(records: Sequence[SampleRecord]) -> dict[str, Any]:
    """Shape of a workload, for the page."""
    per_session: dict[str, int] = defaultdict(int)
    anonymous: set[str] = set()
    items: dict[str, int] = defaultdict(int)
    for r in records:
        per_session[r.session_id] += 1
        if r.value is not None:
            if r.value.get("userId") is None:
                anonymous.add(r.session_id)
            items[str(r.value.get("itemId"))] += 1
    lengths = sorted(per_session.values())
    top = sorted(items.values(), reverse=True)
    n = len(records)
    return {
        "events": n,
        "sessions": len(lengths),
        "mean_session_length": round(n / len(lengths), 2) if lengths else 0,
        "median_session_length": lengths[len(lengths) // 2] if lengths else 0,
        "p99_session_length": lengths[min(len(lengths) - 1, int(len(lengths) * 0.99))] if lengths else 0,
        "max_session_length": lengths[-1] if lengths else 0,
        "sessions_over_10": sum(1 for x in lengths if x > MAX_EVENTS_PER_CALL),
        "anonymous_sessions_pct": round(100 * len(anonymous) / len(lengths), 1) if lengths else 0,
        "distinct_items": len(items),
        "top_10_items_pct": round(100 * sum(top[:10]) / n, 1) if n else 0,
    }


# ------------------------------------------------------------------------------ ideal call counts


def ideal_backlog_calls(records: Iterable[SampleRecord], max_events: int = MAX_EVENTS_PER_CALL) -> int:
    """Backlog drained at full speed: all of a session's events are available at once (the buffer
    bound, 100,000 records, is far larger than any session's span), so no batcher can do better
    than sum over sessions of ceil(n_s / 10)."""
    per_session: dict[str, int] = defaultdict(int)
    for r in records:
        per_session[r.session_id] += 1
    return sum(math.ceil(n / max_events) for n in per_session.values())


def ideal_live_calls(arrivals: Iterable[tuple[str, float]], linger_s: float,
                     max_events: int = MAX_EVENTS_PER_CALL) -> int:
    """Live traffic: the fewest calls such that no event waits longer than `linger_s`.

    A call holding events e_i..e_j of one session can only be sent after e_j arrived and before e_i
    has waited `linger_s`, so t_j - t_i <= linger and j - i < 10. Per session (arrival order), the
    greedy split (a window opens at the first unsent event and takes every later event within
    `linger_s` of it, up to 10) is optimal, and it is what the connector's batcher does.
    """
    by_session: dict[str, list[float]] = defaultdict(list)
    for session, t in arrivals:
        by_session[session].append(t)
    calls = 0
    for times in by_session.values():
        times.sort()
        i = 0
        while i < len(times):
            start = times[i]
            j = i + 1
            while j < len(times) and j - i < max_events and times[j] - start <= linger_s:
                j += 1
            calls += 1
            i = j
    return calls


# ------------------------------------------------------------------------------ live replay


@dataclass
class LiveReplay:
    """Paces records at their recorded rate (gaps divided by `compression`), rewriting sentAt."""

    records: Sequence[SampleRecord]
    target_seconds: float
    produced_at: list[tuple[str, float]] = field(default_factory=list)  # (session, wall time)
    started: float = 0.0
    finished: float = 0.0

    @property
    def recorded_span_s(self) -> float:
        first = self.records[0].value or {}
        last = self.records[-1].value or {}
        return max(0.001, float(last["sentAt"] - first["sentAt"]) / 1000)

    @property
    def compression(self) -> float:
        return self.recorded_span_s / self.target_seconds

    def __iter__(self) -> Iterator[SampleRecord]:
        base_ms = (self.records[0].value or {})["sentAt"]
        factor = self.compression
        self.started = t0 = time.time()
        self.produced_at.clear()
        for record in self.records:
            assert record.value is not None
            due = t0 + (record.value["sentAt"] - base_ms) / 1000 / factor
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            now = time.time()
            self.produced_at.append((record.session_id, now))
            value = {**record.value, "sentAt": int(now * 1000)}
            yield SampleRecord(record.key, value, None, None, record.session_id, record.event_id)
        self.finished = time.time()


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=name, timeout=5).topics.get(name)
        if md is not None and md.error is None and len(md.partitions) == partitions and all(
            p.leader >= 0 for p in md.partitions.values()
        ):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topic {name} has no leaders after 30s")
