"""Shared fixtures.

``pool``: one :class:`verify.runtime.launch.WorkerPool` of world size 2 (gloo, CPU) for the whole
session, so the modules that run at world 2 spawn and initialise one process group instead of one
each. A call on a pool whose ranks died (a test that kills them on purpose) restarts it, so no
test depends on what ran before it. A module that needs another world size overrides ``pool``
with its own fixture (tests/test_distributed.py: world 4).
"""

from __future__ import annotations

import pytest

from verify.runtime.launch import WorkerPool


@pytest.fixture(scope="session")
def pool():
    with WorkerPool(2, timeout_s=30) as p:
        yield p
