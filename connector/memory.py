"""The C allocator's settings for the worker process: give back what a backlog left behind.

Catching up after a broker restart or a throttling storm, the worker holds more at once (its record
buffer full, librdkafka's fetches large); glibc keeps what is freed afterwards in its arenas, and
reuses it piecemeal, so a process's RSS stayed at the backlog's high-water mark for good: +17 %
after one broker restart in `make soak` (111 -> 130 MB), flat from then on, with nothing of it
live (tracemalloc's traced Python memory did not grow). Two settings undo that:

- a fixed mmap threshold (64 KiB): glibc raises its threshold to the size of every large block it
  frees (up to 32 MiB), after which librdkafka's fetch buffers came from the arenas and were
  placed anywhere in their free space, touching its pages again; at a fixed threshold they are
  mapped and unmapped on their own;
- `malloc_trim` every few seconds, from a daemon thread: returns the arenas' free pages to the
  system (a few milliseconds for the worker's heap).

glibc only (Debian, Ubuntu, RHEL, Amazon Linux images); with another C library (Alpine's musl,
macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 64 * 1024
TRIM_INTERVAL_S = 5.0


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


def release_freed_memory(stop: threading.Event, interval_s: float = TRIM_INTERVAL_S) -> threading.Thread | None:
    """Set the fixed mmap threshold and start the trimming thread (until `stop`); None without glibc."""
    libc = glibc()
    if libc is None:
        log.debug("not glibc: the allocator keeps its defaults")
        return None
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)

    def trim() -> None:
        while not stop.wait(interval_s):
            libc.malloc_trim(0)

    thread = threading.Thread(target=trim, name="malloc-trim", daemon=True)
    thread.start()
    return thread
