"""Handing memory that the process has freed back to the operating system.

On Linux with glibc, memory freed by torch's CPU tensors goes back to malloc's arenas, not to
the system. Every batch has another shape (windows and spans vary), so new allocations seldom
fit the freed holes exactly, and the heap grows with the number of batches, not with their
size. Measured with the default model on 400 short documents (``benchmarks/engine_memory.py``,
docs/performance.md): untrimmed, resident memory climbed from 1.3 GB after loading to 2.5 GB
(``lookahead_tokens=8192``) and 3.5 GB (65,536) and was still climbing at the end; trimmed,
it stayed flat at 1.8 to 1.9 GB. Trimming after every batch hands back pages that the next
batch faults in again (one run of it measured 8 to 16% slower, a second one no slower: the
runs' times vary by about 10% here), so :class:`HeapGuard` trims only once resident memory
has grown by a slack since the last trim: about one batch in ten, for the same bound within
0.1 GB. Elsewhere (macOS, musl) trimming is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Callable
from typing import cast

__all__ = ["HeapGuard", "release_freed_heap", "resident_bytes"]

# Larger than the activations of one batch at the default budget (about 200 MB for the default
# model at 2,048 tokens), so a trim does not hand back pages the next batch needs at once.
DEFAULT_SLACK_BYTES = 256 << 20


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)  # glibc only
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    # getattr gives Any: the foreign function takes a size_t and returns an int.
    return cast("Callable[[int], int] | None", trim)


def release_freed_heap() -> bool:
    """Return the free pages of malloc's heap to the operating system.

    Returns:
        Whether the C library could do it (glibc); ``False`` where there is no such call.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def resident_bytes() -> int | None:
    """The process's resident memory, or ``None`` where ``/proc`` does not tell it."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class HeapGuard:
    """Trims malloc's heap when resident memory has grown by ``slack_bytes`` since the last
    trim (or since the guard was made).

    Reading the resident size costs microseconds, so the engine checks after every batch.
    Growth that a trim cannot undo (memory still in use) moves the baseline up, so it does
    not cause a trim after every batch.
    """

    def __init__(self, slack_bytes: int = DEFAULT_SLACK_BYTES) -> None:
        if slack_bytes < 0:
            raise ValueError(f"slack_bytes must not be negative, got {slack_bytes}")
        self.slack_bytes = slack_bytes
        self.trims = 0
        # No baseline where the C library cannot trim: check() then does nothing.
        self._baseline = resident_bytes() if _malloc_trim() is not None else None

    def check(self) -> bool:
        """Trim if resident memory is over the baseline plus the slack; returns whether it did."""
        if self._baseline is None:
            return False
        now = resident_bytes()
        if now is None or now - self._baseline <= self.slack_bytes:
            return False
        release_freed_heap()
        self.trims += 1
        self._baseline = resident_bytes() or now
        return True
