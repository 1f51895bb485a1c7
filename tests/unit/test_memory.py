"""connector.memory: the allocator settings are applied where glibc is, and the trimming thread
stops when told (the worker's process never needs to, but a thread must not outlive its test)."""

from __future__ import annotations

import threading
import time

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


class _Libc:
    def __init__(self) -> None:
        self.trims = 0
        self.options: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.options.append((param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.trims += 1
        return 1


def test_it_trims_only_while_the_process_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy process (a backlog at the quota) is not stopped by a trim; a quiet one is trimmed."""
    libc = _Libc()
    monkeypatch.setattr(memory, "glibc", lambda: libc)
    wall = [0.0]
    cpu = [0.0]
    busy = threading.Event()
    busy.set()
    stop = threading.Event()

    def tick() -> float:  # every interval: 1 s of wall time, and 0.9 s (busy) or 0.1 s of CPU
        wall[0] += 1.0
        cpu[0] += 0.9 if busy.is_set() else 0.1
        return wall[0]

    thread = memory.release_freed_memory(stop, 0.001, cpu_clock=lambda: cpu[0], clock=tick)
    assert thread is not None
    assert libc.options == [(memory.M_MMAP_THRESHOLD, memory.MMAP_THRESHOLD_BYTES)]
    deadline = time.monotonic() + 5
    while wall[0] < 20 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert libc.trims == 0
    busy.clear()
    while libc.trims == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    stop.set()
    thread.join(timeout=5)
    assert libc.trims > 0
