"""connector.memory: the allocator settings are applied where glibc is, and the trimming thread
stops when told (the worker's process never needs to, but a thread must not outlive its test)."""

from __future__ import annotations

import threading

import pytest

from connector import memory


def test_the_trimming_thread_runs_and_stops() -> None:
    stop = threading.Event()
    thread = memory.release_freed_memory(stop, interval_s=0.01)
    if memory.glibc() is None:
        assert thread is None
        return
    assert thread is not None and thread.daemon and thread.name == "malloc-trim"
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_without_glibc_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory.ctypes.util, "find_library", lambda _name: None)
    assert memory.glibc() is None
    assert memory.release_freed_memory(threading.Event()) is None
