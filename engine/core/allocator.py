"""Keep freed memory inside the process during a batch of large NumPy work.

Why: batch scoring and training allocate and free arrays of tens of megabytes again and again.
glibc's malloc serves every block above its mmap threshold (32 MB at most, usually far less)
with a fresh mapping and unmaps it when freed, so the next array of that size faults in new
pages from the kernel. On this project's machines a fresh page costs microseconds: the scoring
benchmark spent about a fifth of its time faulting in pages it had just given back.

Inside ``reusing_freed_memory()`` malloc takes large blocks from its heap and keeps freed ones
for the next allocation. On leaving, glibc's defaults come back and the free memory is handed
back to the kernel (``malloc_trim``), so an idle scheduler does not sit on the batch's peak.
The settings are process-wide: nested and concurrent uses are counted, and the last one out
restores. Where the C library is not glibc this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
from contextlib import contextmanager

# mallopt(3) parameters and glibc's defaults
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_NEVER_TRIM = 2**31 - 1

_lock = threading.Lock()
_depth = 0


def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _glibc()


def active() -> bool:
    """True while some caller is inside ``reusing_freed_memory``."""
    return _depth > 0


@contextmanager
def reusing_freed_memory():
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1 and _LIBC is not None:
            _LIBC.mallopt(_M_MMAP_MAX, 0)                # large blocks from the heap, not fresh mappings
            _LIBC.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM)  # keep freed memory for the next block
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _LIBC is not None:
                _LIBC.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                _LIBC.malloc_trim(0)
