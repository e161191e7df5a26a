"""BLAS thread count for small dense linear algebra (one place, used by the whole package).

Multi-threaded BLAS/LAPACK (OpenBLAS, MKL) speeds up large matrix products but slows down the
many small ones of an SDP or a dense eigendecomposition: the threads synchronise on every call,
and on a loaded 2-core machine they spin against each other. Measured on the shared 2-core VM
(issue 7 item 4, issue 13 section 2): ``theorylab weights erdos-renyi --n 50`` took 28 s with
the default threads and 1.0 s with one; FDLA at n = 200 68 s against 2.8 s.
``benchmarks/threads.py`` times the default path against explicit thread settings in one run.

:func:`small_dense` is a decorator (and :func:`blas_threads` a context manager) that runs its
body with one BLAS thread when the problem dimension is at most :data:`SMALL_DENSE_MAX_N`, via
``threadpoolctl`` (the ecosystem's tool for this). The user keeps control:

* ``THEORYLAB_BLAS_THREADS=k`` (an integer >= 1) makes every decorated call use ``k`` threads
  (whatever the size); ``THEORYLAB_BLAS_THREADS=off`` leaves the thread count alone;
* an enclosing ``threadpoolctl.threadpool_limits(...)`` or an explicit call of
  :func:`blas_threads` is respected: nested decorated calls do not change the count again.

Example
-------
>>> import numpy as np
>>> from theorylab._threads import blas_threads
>>> with blas_threads(50):  # one BLAS thread inside (50 <= SMALL_DENSE_MAX_N)
...     _ = np.linalg.eigvalsh(np.eye(50))
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading

__all__ = ["SMALL_DENSE_MAX_N", "blas_threads", "small_dense"]

#: Largest matrix dimension run with one BLAS thread. Measured (``benchmarks/threads.py``, the
#: shared 2-core VM under heavy load): FDLA by the barrier at n = 100 took 9.2 s with one thread
#: and 296 s with two; ``numpy.linalg.eigh`` of a dense symmetric n x n matrix, medians of 3
#: interleaved runs, 1 vs 2 threads: n = 200 0.048 vs 1.19 s, n = 500 0.56 vs 6.9 s, n = 1000
#: 2.7 vs 27.6 s.
#: The barrier's Newton matrix is m x m (m ~ 4 n on the benchmark graphs), so every dense
#: factorisation of a design problem up to n ~ 500 is below this bound. Chosen, not measured,
#: above n = 1000: one thread is the safe default on small shared machines; set
#: ``THEORYLAB_BLAS_THREADS`` to use more.
SMALL_DENSE_MAX_N = 2000

_state = threading.local()
_controller = None
_controller_lock = threading.Lock()


def _get_controller():
    """A cached ``threadpoolctl.ThreadpoolController`` (inspecting the libraries costs ms)."""
    global _controller
    if _controller is None:
        with _controller_lock:
            if _controller is None:
                from threadpoolctl import ThreadpoolController

                _controller = ThreadpoolController()
    return _controller


def _requested() -> int | None:
    """Threads forced by ``THEORYLAB_BLAS_THREADS`` (None: automatic; 0: leave alone)."""
    raw = os.environ.get("THEORYLAB_BLAS_THREADS", "").strip().lower()
    if raw in ("", "auto"):
        return None
    if raw in ("off", "none", "0"):
        return 0
    try:
        k = int(raw)
    except ValueError:
        raise ValueError(
            f"THEORYLAB_BLAS_THREADS must be 'auto', 'off' or an integer >= 1, got {raw!r}"
        ) from None
    if k < 1:
        raise ValueError(f"THEORYLAB_BLAS_THREADS must be >= 1 (or 'off'), got {k}")
    return k


@contextlib.contextmanager
def blas_threads(n: int | None = None, *, threads: int | None = None):
    """Run the body with one BLAS thread if ``n <= SMALL_DENSE_MAX_N`` (or ``threads`` threads).

    Parameters
    ----------
    n : int, optional
        The dimension of the dense problem (matrix order). None means "small".
    threads : int >= 1, optional
        An explicit thread count, overriding the size rule (``THEORYLAB_BLAS_THREADS`` still wins).

    Nested uses (and decorated calls inside) keep the outermost setting.
    """
    if getattr(_state, "depth", 0) > 0:
        yield
        return
    forced = _requested()
    if forced == 0:
        limit = None
    elif forced is not None:
        limit = forced
    elif threads is not None:
        limit = int(threads)
    elif n is None or n <= SMALL_DENSE_MAX_N:
        limit = 1
    else:
        limit = None
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        if limit is None:
            yield
        else:
            with _get_controller().limit(limits=limit, user_api="blas"):
                yield
    finally:
        _state.depth -= 1


def small_dense(fn=None, *, size=None):
    """Decorator: run the function under :func:`blas_threads`.

    ``size`` maps the call's ``(*args, **kwargs)`` to the problem dimension n (None: always
    treated as small, for functions that only ever see small dense matrices). Usable bare
    (``@small_dense``) or with a size (``@small_dense(size=lambda W, *a, **k: len(W))``).
    """
    if fn is not None:
        return small_dense(size=size)(fn)

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            n = None
            if size is not None:
                try:
                    n = size(*args, **kwargs)
                except Exception:  # the function's own validation reports bad input
                    n = None
            with blas_threads(n):
                return fn(*args, **kwargs)

        return wrapper

    return decorate
