"""The small values that flow between the stages; no stage knows more of its neighbours than these.

source -> SourceRecord -> decode -> dict -> destination -> Event -> batcher -> Batch -> sink -> outcomes
Any stage may instead raise a RecordError, which sends the record to the dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Stage = Literal["decode", "validate", "send"]


@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int
    # The pipeline keys its per-partition state by these, ~15 lookups per record: hashed once.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.topic, self.partition)))  # the generated __hash__'s value

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


_SHARED: dict[tuple[str, int], TopicPartition] = {}


def shared_topic_partition(topic: str, partition: int) -> TopicPartition:
    """One TopicPartition object per partition for every record of it: dict lookups by an identical
    key skip __eq__. Bounded by the partitions this process ever reads."""
    tp = _SHARED.get((topic, partition))
    if tp is None:
        tp = _SHARED.setdefault((topic, partition), TopicPartition(topic, partition))
    return tp


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One Kafka record as the source hands it over, independent of the client library.

    Header keys are bytes on the wire and nothing guarantees they are UTF-8. They are held as `str`
    decoded losslessly: valid UTF-8 as is, anything else with surrogate escapes, so
    `header_key_bytes(key)` gives back the exact bytes (see `header_key`). `headers_unreadable`
    says why the headers are missing when the client library could not read them at all.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None
    headers_unreadable: str | None = None
    # Made once per record (the pipeline asks a record for its partition about ten times).
    tp: TopicPartition = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tp", shared_topic_partition(self.topic, self.partition))

    def position(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def header_key(raw: bytes) -> str:
    """A header key as `SourceRecord` holds it: never fails, and `header_key_bytes` reverses it."""
    return raw.decode("utf-8", "surrogateescape")


def header_key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class Request:
    """One Personalize write call: the operation's name as the service model spells it
    ("PutEvents") and its parameters in boto3's form."""

    operation: str
    params: dict[str, Any]


class BatchKey(Protocol):
    """What entries are batched by. Each destination has its own kind of key (a session, a dataset
    partition); keys are hashable values, and a key knows the call that sends its entries."""

    @property
    def route(self) -> str: ...

    def request(self, entries: list[dict[str, Any]]) -> Request:
        """The call that sends these entries (entry bodies, in order) for this key."""
        ...


@dataclass(slots=True)
class Event:
    """One entry of a write call in boto3's parameter form (a PutEvents Event, or a PutItems Item /
    PutUsers User), with the key it is batched by and its origin."""

    key: BatchKey
    body: dict[str, Any]
    record: SourceRecord


@dataclass(slots=True)
class Batch:
    """Entries of one key (a session, or a dataset partition) in their original order, sent in one call."""

    key: BatchKey
    events: list[Event] = field(default_factory=list)


class RecordError(Exception):
    """A per-record failure: the record goes to the dead-letter topic with this context."""

    stage: Stage = "decode"
    # The record names a tracker that is not its route's own, and that tracker is the trouble: one
    # tenant's problem, not the stream's. Its dead letter neither extends nor ends its partition's
    # run of dead letters (connector.pipeline.dead_letters explains why).
    tenant_scoped: bool = False

    def __init__(self, message: str, *, error_class: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_class = error_class or type(self).__name__


class DecodeError(RecordError):
    stage: Stage = "decode"


class InvalidEvent(RecordError):
    stage: Stage = "validate"


class NotAnUpsert(InvalidEvent):
    """A tombstone or delete marker on an items/users route: PutItems/PutUsers cannot delete."""


class TrackerNotAllowed(InvalidEvent):
    """The record names a tracker outside personalize.allowed_tracking_ids (and not its route's)."""

    tenant_scoped = True


class Filtered(Exception):
    """The route's mapping.include/exclude leaves this record out: counted, committed, not sent."""


class RejectedBySink(RecordError):
    stage: Stage = "send"


class UnknownTracker(RejectedBySink):
    """The service does not know the tracker the record names (ResourceNotFoundException for a
    tracker other than its route's), still after a short retry."""

    tenant_scoped = True
