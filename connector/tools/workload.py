"""Pure, seeded generator of realistic interaction traffic (plus labelled bad records).

Used by `personalize-connector produce`, the integration tests and the benchmarks. Nothing here
touches Kafka: `generate()` yields `SampleRecord`s and `connector.tools.produce` serialises and sends them.

Shape of the traffic, chosen to look like a shop's live clickstream:
- sessions of geometric-like length (mean ~9) with a 10% heavy tail of long sessions;
- several sessions active at once, their events interleaved, each session's events in time order;
- Zipf-like item popularity over 10,000 items (a few hits, a long tail);
- ~15% anonymous sessions (userId null), a view/click/add-to-cart/purchase funnel;
- optional fields (properties, impressions, recommendationId, eventAttributionSource, eventId)
  present on a realistic share of events, so every code path of the connector gets exercised.

Everything derives from one `random.Random(seed)`: the same arguments give the same records.
"""

from __future__ import annotations

import io
import json
import math
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from itertools import accumulate
from typing import Any, Final

import avro_schemas

# A fixed start keeps output deterministic; 2025-06-01T00:00:00Z is "recent" for PutEvents purposes.
DEFAULT_START_MS: Final = 1_748_736_000_000

N_ITEMS: Final = 10_000
N_USERS_PER_SESSION: Final = 0.5  # users come back: about two sessions per known user
MEAN_SESSION_LENGTH: Final = 9.0
MAX_ACTIVE_SESSIONS: Final = 48  # sessions in flight at once, interleaved like live traffic
ANONYMOUS_SHARE: Final = 0.15
EVENT_ID_SHARE: Final = 0.5  # the connector derives ids for the others
MEAN_GAP_MS: Final = 40.0  # mean time between two consecutive events of the whole stream

SCHEMA_FILE: Final = avro_schemas.INTERACTION_EVENT

# Confluent wire format: magic byte 0, then the 4-byte big-endian schema id, then the Avro body.
MAGIC_BYTE: Final = b"\x00"
UNKNOWN_SCHEMA_ID: Final = 999_999

BAD_KINDS: Final[tuple[str, ...]] = (
    "not-avro",
    "unknown-schema-id",
    "truncated",
    "missing-session",
    "reserved-property",
    "too-many-impressions",
    "long-recommendation-id",
)
# Kinds that fail before Avro decoding yields a record (bytes are broken) vs. kinds that are valid
# Avro but break a PutEvents rule, which the connector's validation must catch.
UNDECODABLE_KINDS: Final = frozenset({"not-avro", "unknown-schema-id", "truncated"})
INVALID_EVENT_KINDS: Final = frozenset(BAD_KINDS) - UNDECODABLE_KINDS

_EVENT_TYPES: Final = ("view", "click", "add-to-cart", "purchase")
_EVENT_CUM_WEIGHTS: Final = tuple(accumulate((0.62, 0.24, 0.09, 0.05)))
_DEVICES: Final = ("mobile", "desktop", "tablet", "app-ios", "app-android")
_PAGES: Final = ("home", "search", "category", "product", "cart", "checkout")
_ATTRIBUTION_SOURCES: Final = ("email-campaign", "homepage-carousel", "push-notification", "partner-site")


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One record to produce.

    `key` is the Kafka key: the session id, so a session stays in one partition and in order (the
    items, users and actions of connector.tools.samples: their id, with an empty `session_id`).
    Exactly one of `value` (an event dict to Avro-encode) and `raw` (pre-framed bytes sent as-is)
    is set. `bad_kind` labels deliberately broken records (one of BAD_KINDS) and is None for good
    ones; a `truncated` record carries a good `value` that the producer cuts short after framing,
    because only the producer knows the registered schema id that makes the frame otherwise valid.
    """

    key: bytes
    value: dict[str, Any] | None
    raw: bytes | None
    bad_kind: str | None
    session_id: str
    event_id: str | None


@cache
def canonical_schema_str(name: str = SCHEMA_FILE) -> str:
    """A packaged schema of the `avro_schemas` package: by default the canonical InteractionEvent."""
    return avro_schemas.read(name)


@cache
def parsed_schema(name: str = SCHEMA_FILE) -> dict[str, Any]:
    import fastavro

    parsed = fastavro.parse_schema(json.loads(canonical_schema_str(name)))
    assert isinstance(parsed, dict)  # a record schema parses to a dict
    return parsed


def encode_body(event: dict[str, Any]) -> bytes:
    """Schemaless Avro encoding of one event with the canonical schema (no wire-format header)."""
    import fastavro

    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(), event)
    return buf.getvalue()


def truncate_frame(framed: bytes) -> bytes:
    """Cut a framed good record so decoding must fail: keep the header and half the body."""
    body_len = len(framed) - 5
    return framed[: 5 + max(1, body_len // 2)]


@dataclass(slots=True)
class _Session:
    session_id: str
    user_id: str | None
    remaining: int
    device: str
    last_item: str | None = None
    cart: list[str] | None = None


class _Generator:
    """Holds the precomputed tables; one instance per `generate()` call."""

    def __init__(self, seed: int, n_sessions: int, start_ms: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.n_sessions = n_sessions
        self.clock_ms = start_ms
        self.n_users = max(1, int(n_sessions * N_USERS_PER_SESSION))
        # Zipf-like (s=1.07) popularity: precomputed cumulative weights so each pick is one bisect.
        self.item_ids = [f"item-{k:05d}" for k in range(N_ITEMS)]
        self.item_cum = list(accumulate(1.0 / (rank**1.07) for rank in range(1, N_ITEMS + 1)))
        self.item_total = self.item_cum[-1]
        # Prices are a property of the item, not of the event, so repeated purchases agree.
        price_rng = random.Random(seed ^ 0x5EED)
        self.prices = [round(math.exp(price_rng.gauss(3.0, 0.9)), 2) for _ in range(N_ITEMS)]
        self.rec_counter = 0

    def item(self) -> str:
        return self.item_ids[bisect_right(self.item_cum, self.rng.random() * self.item_total)]

    def item_index(self, item_id: str) -> int:
        return int(item_id[5:])

    def session_lengths(self, n_events: int) -> list[int]:
        """Lengths summing to exactly n_events, geometric-like with a heavy tail of long sessions."""
        rng = self.rng
        mean = n_events / self.n_sessions
        # 90% "browsing" sessions around 0.7*mean, 10% long ones around 3.7*mean: overall mean ~ mean.
        short_p = 1.0 / max(1.0, 0.7 * mean)
        long_p = 1.0 / max(1.0, 3.7 * mean)
        lengths = []
        for _ in range(self.n_sessions):
            p = long_p if rng.random() < 0.1 else short_p
            # Inverse-CDF geometric on {1, 2, ...}; p == 1 means every session has exactly one event.
            n = 1 if p >= 1.0 else 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - p))
            lengths.append(n)
        # Nudge random sessions until the total is exact; the excess is O(sqrt(n)), so this is cheap.
        diff = n_events - sum(lengths)
        while diff > 0:
            lengths[rng.randrange(self.n_sessions)] += 1
            diff -= 1
        while diff < 0:
            k = rng.randrange(self.n_sessions)
            if lengths[k] > 1:
                # Take as much as possible at once so very short sessions don't make this quadratic.
                take = min(lengths[k] - 1, -diff, max(1, lengths[k] // 2))
                lengths[k] -= take
                diff += take
        return lengths

    def new_session(self, index: int, length: int) -> _Session:
        rng = self.rng
        user_id = None if rng.random() < ANONYMOUS_SHARE else f"user-{rng.randrange(self.n_users):06d}"
        return _Session(
            session_id=f"sess-{self.seed}-{index:07d}",
            user_id=user_id,
            remaining=length,
            device=_DEVICES[rng.randrange(len(_DEVICES))],
        )

    def event(self, session: _Session, i: int) -> dict[str, Any]:
        rng = self.rng
        # Integer gaps of at least 1 ms: sentAt strictly increases within a session (and overall).
        self.clock_ms += 1 + int(rng.expovariate(1.0 / MEAN_GAP_MS))
        event_type = _EVENT_TYPES[bisect_right(_EVENT_CUM_WEIGHTS, rng.random() * _EVENT_CUM_WEIGHTS[-1])]

        # A small funnel: carts hold what was just looked at, purchases come from the cart.
        item_id: str
        if event_type == "add-to-cart" and session.last_item is not None and rng.random() < 0.8:
            item_id = session.last_item
        elif event_type == "purchase" and session.cart:
            item_id = session.cart.pop()
        else:
            item_id = self.item()
        if event_type == "add-to-cart":
            if session.cart is None:
                session.cart = []
            session.cart.append(item_id)
        session.last_item = item_id

        event_value: float | None = None
        if event_type == "purchase":
            event_value = self.prices[self.item_index(item_id)]

        properties: dict[str, Any] = {}
        r = rng.random()
        if r < 0.35:
            properties["device"] = session.device
            if r < 0.15:
                properties["page"] = _PAGES[rng.randrange(len(_PAGES))]
            if r < 0.05:
                # Doubles and booleans only: an int would come back as a double (the map's union
                # lists double before long), which makes round-trip checks needlessly fuzzy.
                properties["dwellSeconds"] = round(rng.uniform(0.5, 120.0), 1)
                properties["loggedIn"] = session.user_id is not None

        recommendation_id: str | None = None
        impression: list[str] = []
        if event_type in ("view", "click") and rng.random() < 0.25:
            # Shown in a recommendation widget: the widget's items plus the one interacted with.
            self.rec_counter += 1
            recommendation_id = f"rec-{self.seed}-{self.rec_counter}"
            impression = [self.item() for _ in range(rng.randint(2, 9))]
            impression.insert(rng.randrange(len(impression) + 1), item_id)

        attribution = _ATTRIBUTION_SOURCES[rng.randrange(len(_ATTRIBUTION_SOURCES))] if rng.random() < 0.03 else None
        return {
            "eventId": f"evt-{self.seed}-{i}" if rng.random() < EVENT_ID_SHARE else None,
            "trackingId": None,
            "sessionId": session.session_id,
            "userId": session.user_id,
            "eventType": event_type,
            "eventValue": event_value,
            "itemId": item_id,
            "properties": properties,
            "sentAt": self.clock_ms,
            "recommendationId": recommendation_id,
            "impression": impression,
            "eventAttributionSource": attribution,
        }

    def bad(self, kind: str, event: dict[str, Any]) -> tuple[dict[str, Any] | None, bytes | None]:
        """Turn a good event into a bad record of `kind`: (value, raw)."""
        rng = self.rng
        if kind == "not-avro":
            if rng.random() < 0.5:
                # Someone producing JSON to the topic: first byte '{' is not the magic byte.
                return None, json.dumps(event, separators=(",", ":")).encode()
            junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
            return None, (b"\x01" + junk[1:]) if junk[0] == 0 else junk
        if kind == "unknown-schema-id":
            return None, MAGIC_BYTE + UNKNOWN_SCHEMA_ID.to_bytes(4, "big") + encode_body(event)
        if kind == "truncated":
            return event, None  # cut by the producer after framing, see SampleRecord
        if kind == "missing-session":
            event["sessionId"] = ""
        elif kind == "reserved-property":
            event["properties"] = {**event["properties"], "userId": event["userId"] or "someone"}
        elif kind == "too-many-impressions":
            event["impression"] = [self.item() for _ in range(26)]
        elif kind == "long-recommendation-id":
            event["recommendationId"] = "rec-" + "x" * 37  # 41 characters, the limit is 40
        else:  # pragma: no cover - BAD_KINDS is closed
            raise ValueError(f"unknown bad kind {kind!r}")
        return event, None


def default_sessions(n_events: int) -> int:
    return max(1, round(n_events / MEAN_SESSION_LENGTH))


def generate(
    n_events: int,
    n_sessions: int | None,
    seed: int,
    bad_ratio: float = 0.0,
    *,
    start_ms: int = DEFAULT_START_MS,
) -> Iterator[SampleRecord]:
    """Yield exactly `n_events` records spread over `n_sessions` sessions (default: ~9 per session).

    Each record is bad with probability `bad_ratio`, its kind drawn uniformly from BAD_KINDS; a bad
    record takes the place of one of its session's events, keyed by that session. Deterministic:
    the same arguments always yield the same records.
    """
    if n_events < 0:
        raise ValueError("n_events must be >= 0")
    if not 0.0 <= bad_ratio <= 1.0:
        raise ValueError("bad_ratio must be between 0 and 1")
    if n_sessions is not None and n_sessions < 1:
        raise ValueError("n_sessions must be >= 1")
    if n_events == 0:
        return
    # A session has at least one event, so there can't be more sessions than events.
    sessions_total = min(n_sessions or default_sessions(n_events), n_events)
    gen = _Generator(seed, sessions_total, start_ms)
    rng = gen.rng
    lengths = gen.session_lengths(n_events)

    active: list[_Session] = []
    next_session = 0
    n_active = min(MAX_ACTIVE_SESSIONS, sessions_total)
    while next_session < n_active:
        active.append(gen.new_session(next_session, lengths[next_session]))
        next_session += 1

    for i in range(n_events):
        # Pick any in-flight session: its events stay ordered while sessions interleave.
        slot = rng.randrange(len(active))
        session = active[slot]
        event = gen.event(session, i)
        session.remaining -= 1
        if session.remaining == 0:
            if next_session < sessions_total:
                active[slot] = gen.new_session(next_session, lengths[next_session])
                next_session += 1
            else:
                # Swap-remove keeps this O(1); order of `active` carries no meaning.
                active[slot] = active[-1]
                active.pop()

        key = session.session_id.encode()
        if bad_ratio and rng.random() < bad_ratio:
            kind = BAD_KINDS[rng.randrange(len(BAD_KINDS))]
            value, raw = gen.bad(kind, event)
            yield SampleRecord(key, value, raw, kind, session.session_id, event["eventId"])
        else:
            yield SampleRecord(key, event, None, None, session.session_id, event["eventId"])
