"""Hand freed heap memory back to the operating system between claims and between runs.

glibc's ``malloc`` keeps memory that Python and torch freed in its arenas, so a process's
resident size stays at its peak: after one memory-hungry claim, the worker ranks and the lanes
of the main job would each hold hundreds of MiB they no longer use (issue 13: the whole main job
within 2 GiB). :func:`release_free_memory` calls ``malloc_trim(0)``, which returns the free
pages at the top of every arena; elsewhere (another C library, another OS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import sys

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to trim
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory(collect: bool = True) -> bool:
    """Collect garbage (unless ``collect`` is false: a full collection costs tens of ms in a
    process holding torch), then return free heap pages to the OS; ``True`` if any was."""
    if collect:
        gc.collect()
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
