"""The C allocator's settings for the worker process: give back what a backlog left behind.

After a broker restart `make soak`'s worker stayed 17 % above its earlier RSS for good (111 -> 130
MB in 10 minutes), with tracemalloc's traced Python memory flat: the growth was in glibc's thread
arenas (/proc/PID/smaps: one arena, shared by a librdkafka broker thread and pool threads, grew by
~8 MB while the worker caught up, and kept it). librdkafka's prefetch limits did not change it
(queued.max.messages.kbytes 1 MiB and queued.min.messages 1,000 alike), so it is freed memory that
glibc keeps and reuses piecemeal. Two settings give it back:

- a fixed mmap threshold (64 KiB): glibc otherwise raises its threshold to the size of every large
  block it frees (up to 32 MiB) and serves later large blocks from the arenas. Measured only
  together with the trim below; alone it changed nothing (1.12x in a 3-minute soak);
- `malloc_trim` every few seconds, from a daemon thread, while the process is quiet: returns the
  arenas' free pages to the system. Only then: a trim holds each arena's lock while it walks the
  free memory, and a thread that allocates meanwhile waits, with the interpreter's lock if it holds
  it; behind a backlog at the quota (`make bench`, 1,000 calls/s of 50 ms) every trim stopped the
  whole process for 150-300 ms, a sixth of a second's calls each time. A worker using under half a
  core (live traffic, the soak's 13-25 %) does not notice it; one working off a backlog is busier
  and trims once it is done.

In the 10-minute `make soak` the RSS now peaks while the worker catches up after the restart (103
-> 118 MB) and comes back (108 MB at the end) instead of staying at the peak. glibc only (Debian,
Ubuntu, RHEL, Amazon Linux images); with another C library (Alpine's musl, macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 64 * 1024
TRIM_INTERVAL_S = 5.0
QUIET_CPU_SHARE = 0.5  # of one core, over the last interval: busier, and the trim waits


def glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has mallopt and malloc_trim), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    return libc


def release_freed_memory(stop: threading.Event, interval_s: float = TRIM_INTERVAL_S, *,
                         cpu_clock: Callable[[], float] = time.process_time,
                         clock: Callable[[], float] = time.monotonic) -> threading.Thread | None:
    """Set the fixed mmap threshold and start the trimming thread (until `stop`); None without glibc."""
    libc = glibc()
    if libc is None:
        log.debug("not glibc: the allocator keeps its defaults")
        return None
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)

    def trim() -> None:
        cpu, wall = cpu_clock(), clock()
        while not stop.wait(interval_s):
            cpu_now, wall_now = cpu_clock(), clock()
            quiet = cpu_now - cpu < QUIET_CPU_SHARE * (wall_now - wall)
            cpu, wall = cpu_now, wall_now
            if quiet:
                libc.malloc_trim(0)

    thread = threading.Thread(target=trim, name="malloc-trim", daemon=True)
    thread.start()
    return thread
