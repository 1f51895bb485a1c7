"""batching.max_buffered_records: auto holds what the quota can send in twice the linger (at least
1 s), 1,000..100,000; a number is kept as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import ConfigError, load_settings
from connector.pipeline.flow import AUTO_BUFFER_HIGHEST, AUTO_BUFFER_LOWEST, buffer_bound


@pytest.mark.parametrize(("quota", "events", "linger_s", "bound"), [
    (1000.0, 10, 1.0, 20_000),  # the defaults
    (200.0, 10, 1.0, 4_000),
    (10.0, 10, 1.0, AUTO_BUFFER_LOWEST),  # a small quota: a few polls' worth still
    (1000.0, 10, 0.0, 10_000),  # no linger: one second of the quota
    (1000.0, 10, 3.0, 60_000),
    (1e6, 10, 1.0, AUTO_BUFFER_HIGHEST),  # a lifted quota: the old fixed bound
    (float("inf"), 10, 1.0, AUTO_BUFFER_HIGHEST),
])
def test_auto_is_the_quota_over_twice_the_linger_within_its_bounds(quota: float, events: int, linger_s: float,
                                                                   bound: int) -> None:
    assert buffer_bound(quota, events, linger_s) == bound


def _load(tmp_path: Path, batching: str) -> object:
    path = tmp_path / "c.yaml"
    path.write_text("kafka: {bootstrap_servers: '127.0.0.1:9', topics: [interactions]}\n"
                    f"personalize: {{tracking_id: t}}\nbatching: {batching}\n")
    return load_settings(path, {}).batching.max_buffered_records


def test_auto_is_the_default_and_a_number_stays_selectable(tmp_path: Path) -> None:
    assert _load(tmp_path, "{}") == "auto"
    assert _load(tmp_path, "{max_buffered_records: 1000}") == 1000
    with pytest.raises(ConfigError, match="max_buffered_records"):
        _load(tmp_path, "{max_buffered_records: lots}")


@pytest.mark.parametrize("bad", ["0", "-5", "Auto", "true", "1.5", "''", "'\\xff'"])
def test_a_bound_that_is_not_auto_or_a_positive_integer_is_refused_naming_the_key(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="max_buffered_records"):
        _load(tmp_path, f"{{max_buffered_records: {bad}}}")


def test_the_environment_sets_it_as_text(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("kafka: {bootstrap_servers: '127.0.0.1:9', topics: [interactions]}\n"
                    "personalize: {tracking_id: t}\n")
    for raw, expected in (("auto", "auto"), ("5000", 5000)):
        env = {"PKC_BATCHING__MAX_BUFFERED_RECORDS": raw}
        assert load_settings(path, env).batching.max_buffered_records == expected
    with pytest.raises(ConfigError, match="max_buffered_records"):
        load_settings(path, {"PKC_BATCHING__MAX_BUFFERED_RECORDS": "0"})
