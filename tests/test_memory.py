"""verify.memory: freed heap memory goes back to the OS (glibc), a no-op elsewhere."""

from __future__ import annotations

import os
import sys

import pytest

from verify.memory import release_free_memory


def _rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as fh:
        return int(next(line for line in fh if line.startswith("VmRSS:")).split()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_freed_small_objects_leave_the_process():
    release_free_memory()
    base = _rss_kib()
    # ~200 MiB of small allocations (each below the mmap threshold, so they live in the
    # heap arenas that malloc keeps after free)
    junk = [bytearray(1000) for _ in range(200_000)]
    pin = [bytearray(1000) for _ in range(100)]  # allocated last: malloc's own trim of the
    grown = _rss_kib()  # heap top cannot return what lies below it (gc.collect alone keeps it)
    del junk
    release_free_memory()
    after = _rss_kib()
    assert grown - base > 150_000
    assert after - base < 0.25 * (grown - base)  # at least 3/4 of it returned
    assert len(pin) == 100


def test_returns_a_bool_and_is_safe_to_repeat():
    assert isinstance(release_free_memory(), bool)
    assert isinstance(release_free_memory(), bool)
