"""theorylab._threads: small dense problems run with one BLAS thread; the user can override."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from theorylab import _threads, design, spectral
from theorylab._threads import SMALL_DENSE_MAX_N, blas_threads, small_dense


def _blas_threads() -> int:
    return max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")


pytestmark = pytest.mark.skipif(
    not any(p["user_api"] == "blas" for p in threadpool_info()), reason="no BLAS pool visible"
)


@pytest.fixture
def two_threads(monkeypatch):
    """A BLAS pool of 2 threads outside, so that a limit to 1 inside is observable."""
    monkeypatch.delenv("THEORYLAB_BLAS_THREADS", raising=False)
    with threadpool_limits(limits=2, user_api="blas"):
        if _blas_threads() != 2:
            pytest.skip("the BLAS pool cannot grow to 2 threads here")
        yield


def test_small_problem_runs_with_one_thread(two_threads):
    with blas_threads(100):
        assert _blas_threads() == 1
    assert _blas_threads() == 2  # restored


def test_large_problem_keeps_the_pool(two_threads):
    with blas_threads(SMALL_DENSE_MAX_N + 1):
        assert _blas_threads() == 2


def test_environment_overrides(two_threads, monkeypatch):
    monkeypatch.setenv("THEORYLAB_BLAS_THREADS", "off")
    with blas_threads(10):
        assert _blas_threads() == 2
    monkeypatch.setenv("THEORYLAB_BLAS_THREADS", "1")
    with blas_threads(SMALL_DENSE_MAX_N + 1):
        assert _blas_threads() == 1
    monkeypatch.setenv("THEORYLAB_BLAS_THREADS", "many")
    with pytest.raises(ValueError, match="THEORYLAB_BLAS_THREADS"):
        with blas_threads(10):
            pass


def test_nested_calls_keep_the_outer_setting(two_threads):
    @small_dense(size=lambda n: n)
    def inner(n):
        return _blas_threads()

    with blas_threads(threads=2):
        assert inner(10) == 2  # the caller asked for 2 explicitly
    assert inner(10) == 1


def test_library_entry_points_are_limited(two_threads, monkeypatch):
    seen = []
    real = np.linalg.eigh

    def spy(*a, **k):
        seen.append(_blas_threads())
        return real(*a, **k)

    monkeypatch.setattr(design.np.linalg, "eigh", spy)
    design.optimal_weights(nx.cycle_graph(8), progress=False)
    assert seen and set(seen) == {1}
    W = np.full((6, 6), 1 / 6)
    seen_eig = []
    real_eigvalsh = np.linalg.eigvalsh

    def spy2(*a, **k):
        seen_eig.append(_blas_threads())
        return real_eigvalsh(*a, **k)

    monkeypatch.setattr(spectral.np.linalg, "eigvalsh", spy2)
    spectral.eigenvalues(W)
    assert seen_eig == [1]
    assert _threads._state.depth == 0
