"""One rate bucket per quota the service counts, sized by this worker's share of the group."""

from __future__ import annotations

import bisect
import logging
import random
from typing import Any

import pytest
from fixtures.inmemory import FakeClock, InMemorySource, deliver
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.personalize.quotas import MIN_SHARE, QuotaKey, Quotas, Share
from connector.personalize.ratelimit import AdaptiveRateLimiter
from connector.pipeline.quota_share import QuotaShare
from connector.records import Request, TopicPartition
from connector.routes import RouteTable


def events(tracking_id: str) -> Request:
    return Request("PutEvents", {"trackingId": tracking_id, "sessionId": "s", "eventList": []})


def items(dataset_arn: str) -> Request:
    return Request("PutItems", {"datasetArn": dataset_arn, "items": []})


ARN = "arn:aws:personalize:us-east-1:111111111111:dataset/shop/ITEMS"


def test_routes_to_one_tracker_share_its_bucket() -> None:
    quotas = Quotas({"clicks": 100.0, "orders": 100.0})
    assert quotas.bucket(events("t1"), "clicks") is quotas.bucket(events("t1"), "orders")


def test_a_record_supplied_tracker_and_each_dataset_get_their_own_bucket() -> None:
    quotas = Quotas({"clicks": 100.0, "catalogue": 10.0})
    configured = quotas.bucket(events("t1"), "clicks")
    tenant = quotas.bucket(events("tenant-b"), "clicks")
    dataset = quotas.bucket(items(ARN), "catalogue")
    assert len({id(configured), id(tenant), id(dataset)}) == 3
    assert tenant.quota == 100.0 and dataset.quota == 10.0
    assert QuotaKey.of(items(ARN)) == QuotaKey("dataset", ARN)
    assert QuotaKey.of(events("t1")) == QuotaKey("tracker", "t1")


def test_routes_with_different_rates_to_one_tracker_use_the_lowest(caplog: pytest.LogCaptureFixture) -> None:
    quotas = Quotas({"clicks": 100.0, "orders": 40.0})
    bucket = quotas.bucket(events("t1"), "clicks")
    with caplog.at_level(logging.WARNING):
        assert quotas.bucket(events("t1"), "orders").quota == 40.0
    assert bucket.quota == 40.0
    assert "clicks and orders send to the same tracker t1 with different rates" in caplog.text


def test_the_share_of_the_routes_feeding_a_bucket_sizes_it() -> None:
    quotas = Quotas({"clicks": 120.0, "orders": 120.0})
    shared = quotas.bucket(events("t1"), "clicks")
    quotas.bucket(events("t1"), "orders")
    own = quotas.bucket(events("t2"), "clicks")
    # 2 of clicks' 6 partitions and 1 of orders' 3: 3 of the 9 partitions feeding t1.
    quotas.set_shares({"clicks": Share(2, 6), "orders": Share(1, 3)})
    assert shared.quota == pytest.approx(40.0)
    assert own.quota == pytest.approx(40.0)  # t2 is fed by clicks only: 2 of 6
    assert quotas.share("orders") == pytest.approx(1 / 3)
    quotas.set_shares({"clicks": Share(0, 6), "orders": Share(0, 3)})
    assert shared.quota == pytest.approx(120.0 * MIN_SHARE)  # a floor, so admitted calls can finish
    late = quotas.bucket(events("t3"), "clicks")  # created after the shares: sized by them at once
    assert late.quota == pytest.approx(120.0 * MIN_SHARE)


def test_the_buckets_of_record_supplied_trackers_are_bounded() -> None:
    quotas = Quotas({"clicks": 100.0}, max_buckets=3)
    first = quotas.bucket(events("t0"), "clicks")
    for i in range(1, 10):
        quotas.bucket(events(f"t{i}"), "clicks")
    assert quotas.bucket(events("t0"), "clicks") is not first  # forgotten, made again


def _busiest_window(times: list[float]) -> int:
    return max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.0]), min_size=1, max_size=8))
def test_a_new_quota_holds_from_the_moment_it_is_set(fractions: list[float]) -> None:
    now = [0.0]
    limiter = AdaptiveRateLimiter(200.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    sent: list[tuple[float, float]] = []
    for fraction in fractions:
        quota = 200.0 * fraction
        limiter.set_quota(quota)
        for _ in range(int(quota)):  # one second's worth of eager callers
            limiter.acquire()
            sent.append((now[0], quota))
    # Every 1 s window after a change stays within the quota then in force (plus the burst carried).
    for i, (t, quota) in enumerate(sent):
        window = [s for s in sent[i:] if s[0] < t + 1.0]
        if all(q == quota for _, q in window):
            assert len(window) <= quota + 1


def test_a_throttle_cut_carries_over_a_new_quota() -> None:
    limiter = AdaptiveRateLimiter(100.0, clock=lambda: 0.0)
    limiter.on_throttled()
    cut = limiter.rate / limiter.max_rate
    limiter.set_quota(50.0)
    assert limiter.rate / limiter.max_rate == pytest.approx(cut)


# ---------------------------------------------------------------- the share, from the assignment


class _Route:
    def __init__(self, name: str, topics: list[str]) -> None:
        self.name, self.topics = name, topics


def _share(source: InMemorySource, clock: FakeClock, routes: dict[str, list[str]], quotas: Quotas) -> QuotaShare:
    table = RouteTable([_Route(n, t) for n, t in routes.items()])  # type: ignore[misc]
    return QuotaShare(source, table, quotas, refresh_s=30.0, clock=clock)


def tps(topic: str, *partitions: int) -> set[TopicPartition]:
    return {TopicPartition(topic, p) for p in partitions}


def test_the_share_follows_the_assignment_and_the_partition_count() -> None:
    clock = FakeClock()
    source = InMemorySource(clock)
    source.partitions = {"clicks": 6, "other-teams-topic": 50}
    quotas = Quotas({"events": 90.0})
    bucket = quotas.bucket(events("t1"), "events")
    share = _share(source, clock, {"events": ["clicks"]}, quotas)
    share.check(tps("clicks", 0, 1, 2, 3, 4, 5))
    assert bucket.quota == pytest.approx(90.0)
    share.check(tps("clicks", 0, 1))  # two more members joined
    assert bucket.quota == pytest.approx(30.0)
    assert share.shares == {"events": Share(2, 6)}
    source.partitions = {"clicks": 12}  # partitions added: seen at the next refresh
    share.check(tps("clicks", 0, 1))
    assert bucket.quota == pytest.approx(30.0)
    clock.advance(31.0)
    share.check(tps("clicks", 0, 1))
    assert bucket.quota == pytest.approx(15.0)


def test_without_metadata_the_last_counts_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    source = InMemorySource(clock)
    source.partitions = {"clicks": 4}
    quotas = Quotas({"events": 80.0})
    bucket = quotas.bucket(events("t1"), "events")
    share = _share(source, clock, {"events": ["clicks"]}, quotas)
    share.check(tps("clicks", 0, 1))
    monkeypatch.setattr(source, "partition_counts", lambda topics, timeout_s: None)  # the broker is gone
    share.check(tps("clicks", 0))
    assert bucket.quota == pytest.approx(20.0)


def test_pattern_routes_count_every_matching_topic() -> None:
    clock = FakeClock()
    source = InMemorySource(clock)
    source.partitions = {"shop-eu": 3, "shop-us": 3, "audit": 10}
    quotas = Quotas({"shops": 60.0})
    bucket = quotas.bucket(events("t1"), "shops")
    share = _share(source, clock, {"shops": ["^shop-.*"]}, quotas)
    share.check(tps("shop-eu", 0, 1, 2))
    assert share.shares == {"shops": Share(3, 6)}
    assert bucket.quota == pytest.approx(30.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 12), st.integers(1, 12), st.randoms(use_true_random=False))
def test_over_the_group_the_shares_add_up_to_the_quota(members: int, clicks: int, orders: int,
                                                       rng: random.Random) -> None:
    """Whatever the assignment, the members' buckets for a shared tracker add up to its quota
    (members without partitions keep only the floor)."""
    partitions = [TopicPartition("clicks", p) for p in range(clicks)]
    partitions += [TopicPartition("orders", p) for p in range(orders)]
    owner = {tp: rng.randrange(members) for tp in partitions}
    clock = FakeClock()
    total = 0.0
    for member in range(members):
        source = InMemorySource(clock)
        source.partitions = {"clicks": clicks, "orders": orders}
        quotas = Quotas({"a": 100.0, "b": 100.0})
        bucket = quotas.bucket(events("t1"), "a")
        quotas.bucket(events("t1"), "b")
        share = _share(source, clock, {"a": ["clicks"], "b": ["orders"]}, quotas)
        held = {tp for tp in partitions if owner[tp] == member}
        share.check(held)
        total += bucket.quota if held else 0.0
    assert total == pytest.approx(100.0)


def test_a_new_assignment_is_sent_at_its_share_from_its_first_call() -> None:
    """The share is set between the poll that brought the assignment and the intake of its
    records: the first calls of a joining member never go out at the whole quota."""
    from fixtures.inmemory import WorkerHarness

    quotas = Quotas({"events": 60.0})
    h = WorkerHarness(quotas=quotas)
    h.source.partitions = {"interactions": 3}
    seen: list[float] = []

    def answer(batch: Any) -> Any:
        seen.append(quotas.share("events"))
        return deliver(batch)

    h.sink.default = answer
    h.source.produce(TopicPartition("interactions", 0), b"ok")
    h.source.assign(TopicPartition("interactions", 0))
    h.step(2)
    assert seen == [pytest.approx(1 / 3)]
