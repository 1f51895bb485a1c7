"""Per-partition bookkeeping of records in flight and the commit watermark.

The whole delivery guarantee is one rule: every record enters the tracker when it is polled and
leaves it exactly once, when it has been delivered or its dead letter acknowledged. The offset
committed for a partition is the first offset that has not left yet (Kafka's committed offset is
"the next record to read"), so a restart can only repeat work, never skip it.
"""

from __future__ import annotations

import base64
import zlib
from collections import deque
from dataclasses import dataclass, field

from connector.records import TopicPartition


@dataclass(slots=True)
class _PartitionState:
    # Offsets in poll order (strictly increasing; gaps are fine: compaction, transaction markers).
    pending: deque[int] = field(default_factory=deque)
    # Offsets that have left but sit above the head of `pending`: they cannot be committed yet.
    done_above: set[int] = field(default_factory=set)
    # The watermark once `pending` is empty: one past the last offset seen.
    next_offset: int | None = None
    committed: int | None = None
    # done_above grew since the last commit: worth committing for its metadata alone.
    dirty: bool = False


class OffsetTracker:
    """Tracks which polled offsets are still open and what may be committed per partition."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _PartitionState] = {}

    def track(self, tp: TopicPartition, offset: int) -> bool:
        """Record that `offset` was polled and is now in flight.

        False (and nothing recorded) when `offset` is below the next one expected: the partition's
        offsets went backwards. Our own rewinds never cause that, because `truncate` lowers the
        expected offset to the seek target before the consumer re-reads from there; so it is the
        log's doing (topic deleted and re-created, truncated, offsets reset by another tool). The
        caller must then start the partition afresh (`reset_to`): ignoring the record would let
        the watermark pass it undelivered.
        """
        state = self._partitions.get(tp)
        if state is None:
            state = self._partitions[tp] = _PartitionState()
        if state.next_offset is not None and offset < state.next_offset:
            return False
        state.pending.append(offset)
        state.next_offset = offset + 1
        return True

    def expected(self, tp: TopicPartition) -> int | None:
        """The lowest offset `track` accepts next for `tp` (None: anything, nothing seen yet)."""
        state = self._partitions.get(tp)
        return state.next_offset if state else None

    def done(self, tp: TopicPartition, offset: int) -> None:
        """Record that `offset` has left (delivered or dead-lettered). Unknown partitions are
        ignored: a late outcome for a partition that was revoked meanwhile must not resurrect it."""
        state = self._partitions.get(tp)
        if state is None or not state.pending or offset < state.pending[0]:
            return
        if state.next_offset is not None and offset >= state.next_offset:
            return  # above a truncation point: it will be polled and tracked again
        if offset == state.pending[0]:
            state.pending.popleft()
            # Advance over everything that already finished above the old head.
            while state.pending and state.pending[0] in state.done_above:
                state.done_above.discard(state.pending.popleft())
        else:
            state.done_above.add(offset)
            state.dirty = True

    def watermark(self, tp: TopicPartition) -> int | None:
        """The offset to commit: the first one not yet done (None if nothing was ever polled)."""
        state = self._partitions.get(tp)
        if state is None:
            return None
        return state.pending[0] if state.pending else state.next_offset

    def in_flight(self, tp: TopicPartition) -> int:
        state = self._partitions.get(tp)
        return len(state.pending) - len(state.done_above) if state else 0

    def total_in_flight(self) -> int:
        return sum(len(s.pending) - len(s.done_above) for s in self._partitions.values())

    def lag(self, tp: TopicPartition) -> int:
        """How many offsets the watermark trails the last polled one by (commit lag of the partition)."""
        state = self._partitions.get(tp)
        if state is None or not state.pending or state.next_offset is None:
            return 0
        return state.next_offset - state.pending[0]

    def delivered_above_watermark(self, tp: TopicPartition) -> list[int]:
        """Offsets already done but not committable yet (what a crash would send twice)."""
        state = self._partitions.get(tp)
        return sorted(state.done_above) if state else []

    def committable(self, include_delivered_above: bool = False) -> dict[TopicPartition, int]:
        """Partitions whose watermark moved since the last commit, with the offset to commit.

        With `include_delivered_above`, also partitions whose watermark stayed but which delivered
        more above it (their commit metadata would change)."""
        result: dict[TopicPartition, int] = {}
        for tp, state in self._partitions.items():
            mark = state.pending[0] if state.pending else state.next_offset
            if mark is not None and (mark != state.committed or (include_delivered_above and state.dirty)):
                result[tp] = mark
        return result

    def mark_committed(self, tp: TopicPartition, offset: int) -> None:
        state = self._partitions.get(tp)
        if state is not None:
            state.committed = offset
            state.dirty = False

    def forget(self, tps: list[TopicPartition] | set[TopicPartition]) -> None:
        """Drop all state of partitions we no longer own (revoked after commit, or lost)."""
        for tp in tps:
            self._partitions.pop(tp, None)

    def truncate(self, tp: TopicPartition, offset: int) -> bool:
        """Stop tracking `offset` and everything after it (they will be polled again after a seek);
        what is below stays in flight. False, and nothing changed, when `offset` was given up
        already by an earlier truncation below it (a late outcome of a record that one dropped):
        the caller must not seek there, reading resumes lower and would skip what lies between."""
        state = self._partitions.get(tp)
        if state is None:
            return True
        if state.next_offset is not None and offset >= state.next_offset:
            return False
        while state.pending and state.pending[-1] >= offset:
            state.pending.pop()
        state.done_above = {o for o in state.done_above if o < offset}
        state.next_offset = offset
        return True

    def reset_to(self, tp: TopicPartition, offset: int) -> None:
        """Forget everything open in `tp` and restart tracking at `offset` (the partition's log is
        not the one we were tracking any more). The last commit is forgotten too, so the next
        commit is made whatever its offset: it replaces the old log's offset and metadata."""
        self._partitions[tp] = _PartitionState(next_offset=offset)


# Commit metadata: the offsets already delivered above the committed one, so that the next owner of
# the partition (after a crash or a rebalance) does not send them again. Kafka keeps one metadata
# string per committed partition (offset.metadata.max.bytes, 4096 by default). With sessions
# interleaved in a partition the delivered offsets are fragmented, so they are stored as a bitmap
# (bit i: offset committed+1+i), zlib-compressed and base64-encoded: dense for both long runs
# and scattered offsets.
METADATA_PREFIX = "pkc2:"
METADATA_MAX_CHARS = 3500


def _pack(committed: int, delivered: list[int], span: int) -> str:
    bitmap = bytearray((span + 7) // 8)
    for offset in delivered:
        i = offset - committed - 1
        if 0 <= i < span:
            bitmap[i >> 3] |= 1 << (i & 7)
    return METADATA_PREFIX + base64.b64encode(zlib.compress(bytes(bitmap), 9)).decode("ascii")


def encode_delivered(committed: int, delivered: list[int], max_chars: int = METADATA_MAX_CHARS) -> str:
    """The delivered offsets above `committed` (sorted) as commit metadata of at most `max_chars`.

    When they do not fit, only those closest to the committed offset are kept, which is safe: the
    others are merely sent again.
    """
    if not delivered:
        return METADATA_PREFIX
    span = delivered[-1] - committed
    text = _pack(committed, delivered, span)
    while len(text) > max_chars and span > 8:
        span //= 2
        text = _pack(committed, delivered, span)
    return text if len(text) <= max_chars else METADATA_PREFIX


def decode_delivered(committed: int, metadata: str) -> list[int]:
    """The offsets `encode_delivered` wrote; empty for any other metadata (never trust a guess)."""
    if not metadata.startswith(METADATA_PREFIX) or committed < 0:
        return []
    body = metadata[len(METADATA_PREFIX):]
    if not body:
        return []
    try:
        bitmap = zlib.decompress(base64.b64decode(body, validate=True))
    except (ValueError, zlib.error):
        return []
    return [committed + 1 + (i << 3) + bit for i, byte in enumerate(bitmap) if byte for bit in range(8)
            if byte >> bit & 1]
