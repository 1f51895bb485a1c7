"""--db FILE keeps accepted records across restarts."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from fixtures.emulator import EmulatorProcess, make_personalize_client

DATASET = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


def test_events_survive_restart(start_emulator: Callable[..., EmulatorProcess], tmp_path: Path) -> None:
    db = tmp_path / "emulator.sqlite"
    first = start_emulator("--db", str(db))
    client = make_personalize_client(first.url)
    for n in range(25):
        client.put_events(
            trackingId="t", sessionId=f"s{n}", eventList=[{"eventType": "click", "sentAt": 1700000000.5 + n}]
        )
    client.put_items(datasetArn=DATASET, items=[{"itemId": "i1"}])
    before = first.events()
    assert len(before) == 25  # reads see rows not yet flushed by the background writer
    assert first.stop() == 0

    second = start_emulator("--db", str(db))
    assert second.events() == before
    assert [i["itemId"] for i in second.items()] == ["i1"]
    make_personalize_client(second.url).put_events(
        trackingId="t2", sessionId="s", eventList=[{"eventType": "view", "sentAt": 1}]
    )
    assert len(second.events()) == 26
    assert len(second.events("t2")) == 1
    second.reset()
    assert second.events() == []
    assert second.stop() == 0

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM calls").fetchone() == (0,)


def test_unwritable_db_fails_cleanly(start_emulator: Callable[..., EmulatorProcess], tmp_path: Path) -> None:
    try:
        start_emulator("--db", str(tmp_path / "missing-dir" / "x.sqlite"))
    except RuntimeError as exc:
        assert "cannot open --db" in str(exc)
    else:
        raise AssertionError("the emulator started with an unusable --db")
