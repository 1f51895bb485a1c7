"""The five streams of `make demo`: one topic per Personalize operation, its route, and its check.

A stream is one kind of sample traffic (connector.tools.samples) on its own topic, sent to its own
tracker or dataset. The interactions go through kafka.topics (the implicit route "events"); the
other four through `routes`. Verification asks the emulator for what each operation stored under
the stream's tracker or dataset, and names every record by the id that must be there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from connector.destinations.events import derived_event_id
from connector.emulator.storage import KINDS as EMULATOR_KINDS
from connector.records import RecordError, SourceRecord
from connector.tools.samples import KINDS, SampleKind

# Sizes relative to the interactions: a catalogue, fewer profiles, a few actions, and a tenth as
# many action interactions. Items, users and actions go at their routes' default 10 calls/s (the
# service's quota), 100 entries/s: these sizes keep them inside the interactions' run time.
SHARE_OF_INTERACTIONS = {"items": 1 / 40, "users": 1 / 80, "actions": 1 / 400, "action-interactions": 1 / 10}
MIN_RECORDS = 20  # so a small run still sends a few calls of each


@dataclass(frozen=True, slots=True)
class Stream:
    kind: SampleKind
    topic: str
    count: int
    target: str  # the tracking id or dataset ARN the operation is sent to

    @property
    def operation(self) -> str:
        return self.kind.operation

    @property
    def emulator_kind(self) -> str:
        return self.kind.destination.replace("_", "-")  # action_interactions: /action-interactions

    @property
    def target_name(self) -> str:
        """The request member naming the target: trackingId or datasetArn."""
        return EMULATOR_KINDS[self.emulator_kind][0]

    def route(self) -> dict[str, Any]:
        """Its entry in the configuration's `routes` (not for interactions: they are kafka.topics)."""
        route: dict[str, Any] = {"name": self.kind.name, "destination": self.kind.destination, "topics": [self.topic]}
        route["tracking_id" if self.target_name == "trackingId" else "dataset_arn"] = self.target
        return route

    def inspect_path(self) -> str:
        """The emulator's endpoint listing what this stream's operation stored, one JSON line each."""
        return f"/_emulator/{self.emulator_kind}?{self.target_name}={self.target}"

    def delivered_id(self, decoded: Mapping[str, Any], record: SourceRecord) -> str:
        """The id this record must have at Personalize: its own, or (events) the one derived from its position."""
        own = decoded.get(self.kind.id_field)
        if own:
            return str(own)
        return derived_event_id(SourceRecord(record.topic, record.partition, record.offset, None, None))


def demo_streams(events: int, run_id: str, tracking_id: str, action_tracking_id: str) -> list[Stream]:
    """The interactions first (`events` of them), then the four other kinds, sized from them."""
    dataset = f"arn:aws:personalize:us-east-1:123456789012:dataset/demo-{run_id}"
    targets = {"interactions": tracking_id, "items": f"{dataset}/ITEMS", "users": f"{dataset}/USERS",
               "actions": f"{dataset}/ACTIONS", "action-interactions": action_tracking_id}
    streams = []
    for name, kind in KINDS.items():
        count = events if name == "interactions" else max(MIN_RECORDS, round(events * SHARE_OF_INTERACTIONS[name]))
        streams.append(Stream(kind, f"demo-{name}-{run_id}", count, targets[name]))
    return streams


@dataclass(slots=True)
class StreamCheck:
    """What became of one stream's records: each delivered or dead-lettered, or named as missing."""

    stream: Stream
    produced: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    at_personalize: int = 0  # distinct ids the operation stored under the stream's tracker or dataset
    duplicates: int = 0  # entries stored more than once (at-least-once: the same id again)
    missing: list[str] = field(default_factory=list)


def check_stream(stream: Stream, records: Iterable[SourceRecord], stored_ids: Iterable[str],
                 dead_positions: Set[tuple[str, int, int]],
                 decode: Callable[[bytes], Mapping[str, Any]]) -> StreamCheck:
    """Every record of the stream's topic against the ids stored at the emulator and the dead letters.

    `decode` raises RecordError for what the connector cannot decode (which must then be a dead letter).
    """
    ids = Counter(stored_ids)
    check = StreamCheck(stream, at_personalize=len(ids), duplicates=sum(n - 1 for n in ids.values()))
    for record in records:
        check.produced += 1
        if (record.topic, record.partition, record.offset) in dead_positions:
            check.dead_lettered += 1
            continue
        try:
            wanted = stream.delivered_id(decode(record.value or b""), record)
        except RecordError as exc:
            check.missing.append(f"{record.position()} (undecodable: {exc.message}) is not in the dead-letter topic")
            continue
        if wanted in ids:
            check.delivered += 1
        else:
            check.missing.append(f"{record.position()} ({stream.kind.id_field} {wanted}) reached neither "
                                 f"{stream.operation} nor the DLQ")
    return check
