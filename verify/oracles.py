"""Stochastic gradient oracles of the local objectives ``f_i``, in torch, for both executors.

An oracle implements :class:`verify.comm.GradientOracle`: ``grad(x, nodes, generators)`` takes
``x`` of shape ``(m, R, d)`` for the local node ids ``nodes`` and returns the ``m`` nodes'
stochastic gradients at their own rows, node ``nodes[l]`` drawing its randomness from
``generators[l]`` only.
The draws of node ``i`` are therefore the same whether it is one row of the simulator's stack or
the only node of a rank, which is what makes the two executors agree.

Two noise modes (``noise=``): ``"generator"`` (default) draws node by node from each node's
generator (a Python loop over local nodes: one small kernel each); ``"counter"`` computes every
local node's draws at once as a pure function of ``(key_i, t, index)``
(:mod:`verify.counter_rng`), where ``key_i = generators[l].initial_seed()`` (nothing is drawn
from the generator) and ``t`` counts the :meth:`grad` calls served since the generators last
changed. Both executors call ``grad`` once per step with one fixed list of generators for their
local nodes, so ``t`` is the step on every rank and in the simulator; a new list of generator
objects (a new run) restarts ``t`` at 0, as do :meth:`reset`, :meth:`to` and pickling.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch

from theorylab.errors import TheorylabError, check_int
from verify.counter_rng import counter_normal, counter_randint, index_words, node_keys

__all__ = ["NOISE_MODES", "QuadraticOracle", "RecordingQuadraticOracle", "LogisticOracle"]


NOISE_MODES = ("generator", "counter")


def _check_noise(noise) -> str:
    if noise not in NOISE_MODES:
        raise TheorylabError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
    return noise


def _check_float_dtype(dtype) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    return dtype


class _OracleBase:
    """Shared input checks; consecutive node ids (``arange(n)`` in the simulator, ``[rank]`` on a
    rank) index the problem's tables by views, without copies. The check of a ``nodes`` tensor
    is cached by identity (the communicator passes the same tensor every call)."""

    n: int
    d: int
    dtype: torch.dtype
    device: torch.device

    def _prepare(self, x, nodes, generators) -> tuple[torch.Tensor, slice | None]:
        """Validate; return the node ids and, when they are consecutive, the matching slice."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[2] != self.d:
            raise TheorylabError(
                f"x must have shape (m, R, d) with d = {self.d}, got {tuple(x.shape)}"
            )
        if x.dtype != self.dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but the oracle was built for {self.dtype}; "
                "build the oracle with dtype=x.dtype"
            )
        m = x.shape[0]
        if len(generators) != m:
            raise TheorylabError(f"need one generator per local node ({m}), got {len(generators)}")
        cached = getattr(self, "_nodes_cache", None)
        if cached is not None and cached[0] is nodes:  # the communicator passes one tensor
            ids, rows = cached[1], cached[2]
        else:
            ids = torch.as_tensor(nodes, device=self.device).reshape(-1)
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.n):
                raise TheorylabError(f"node ids must lie in [0, {self.n}), got {ids.tolist()}")
            rows = None
            if ids.numel():
                first = int(ids[0])
                run = torch.arange(first, first + ids.numel(), device=self.device)
                if bool(torch.equal(ids, run)):
                    rows = slice(first, first + ids.numel())
            if isinstance(nodes, torch.Tensor):
                self._nodes_cache = (nodes, ids, rows)
        if ids.numel() != m:
            raise TheorylabError(f"x has {m} node rows but nodes lists {ids.numel()} ids")
        return ids, rows

    @staticmethod
    def _rows(table: torch.Tensor, ids: torch.Tensor, rows: slice | None) -> torch.Tensor:
        """``table[ids]``, as a view (no copy) when the ids are consecutive."""
        return table[rows] if rows is not None else table[ids]

    def reset(self) -> None:
        """Restart the ``noise="counter"`` call count ``t`` at 0 (the next call draws as a run's
        first step); a no-op for ``noise="generator"``."""
        self._scratch.pop("counter", None)

    def _counter_call(self, generators) -> tuple[torch.Tensor, int]:
        """``(keys, t)`` for this call, then ``t += 1``. The keys are cached with the generators;
        the same list object (the executors pass one per run) is taken as unchanged, any other
        list is compared generator by generator, and new generators restart ``t`` at 0."""
        state = self._scratch.get("counter")
        if state is not None and not (
            state[0] is generators
            or (
                len(state[1]) == len(generators)
                and all(a is b for a, b in zip(state[1], generators))
            )
        ):
            state = None
        if state is None:
            gens = tuple(generators)
            state = (generators, gens, node_keys(gens, self.device), 0)
        self._scratch["counter"] = (generators, state[1], state[2], state[3] + 1)
        return state[2], state[3]

    def _index_words(self, count: int) -> torch.Tensor:
        cached = self._scratch.get("index_words")
        if cached is None or cached.shape[0] != count:
            cached = index_words(count, self.device)
            self._scratch["index_words"] = cached
        return cached

    def __getstate__(self):
        # caches only (views, buffers, generators, the counter-noise call count): a copy sent to
        # a rank starts fresh
        state = dict(vars(self))
        state["_scratch"] = {}
        state["_nodes_cache"] = None
        return state

    def to(self, device):
        """A copy of this oracle with its tensors on ``device`` (``self`` if already there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        other = copy.copy(self)
        other._nodes_cache = None
        other._scratch = {}  # per-node views and buffers of the old device
        for key, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(other, key, value.to(device))
        other.device = device
        return other


class QuadraticOracle(_OracleBase):
    r"""Gradients of heterogeneous quadratics with additive Gaussian noise.

    The math: ``f_i(x) = 1/2 (x - b_i)^T A_i (x - b_i)``; node ``i``'s stochastic gradient is
    ``g_i(x) = A_i (x - b_i) + xi_i`` with ``xi_i ~ N(0, (sigma2/d) I_d)``, so
    ``E xi_i = 0`` and ``E||xi_i||^2 = sigma2`` per node, independent across nodes, steps and
    replicas (the convention of :class:`theorylab.problems.QuadraticProblem`).

    Draw order (both executors and the exact predictions rely on it): at each call, for
    ``l = 0, ..., m-1`` in order, node ``nodes[l]`` fills an ``(R, d)`` tensor of standard normals
    from ``generators[l]`` (``torch.randn((R, d), generator=generators[l], dtype=dtype)``, done in
    place with ``normal_``, which draws the same numbers) and scales it by ``sqrt(sigma2/d)``.
    With ``sigma2 == 0`` nothing is drawn.

    With ``noise="counter"`` the standard normal of node ``i``, call ``t``, replica ``r``,
    coordinate ``j`` is instead :func:`verify.counter_rng.counter_normal` at flat index
    ``c = r d + j`` with key ``generators[l].initial_seed()``: the same law (``N(0, 1)`` up to
    a tail truncation at ``|z| <= 8.2``), one vectorised computation for all local nodes, and the
    same numbers on CPU and CUDA up to float64 rounding of ``ndtri`` (see the module notes above
    for ``t``).

    Parameters
    ----------
    problem : QuadraticProblem or duck-typed object
        Needs ``b`` (n, d), ``sigma2`` (>= 0), ``n``, ``d``; ``hessian_diagonal`` (n, d) when every
        ``A_i`` is diagonal (fast path: ``A`` is then not read), else ``A`` (n, d, d) symmetric;
        ``x_star`` (d,) or ``None`` (computed for diagonal Hessians).
    dtype : torch.dtype, default ``torch.float64``
    device : str or torch.device, default ``"cpu"``
        Where the tensors live; the generators passed to :meth:`grad` must be on it.
    noise : {"generator", "counter"}, default ``"generator"``
        How the Gaussian noise is drawn (above); ``"counter"`` needs a ``torch.Generator`` per
        node (only its ``initial_seed()`` is read).

    Raises
    ------
    TheorylabError
        If shapes disagree, ``sigma2 < 0`` or ``noise`` is unknown.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from types import SimpleNamespace
    >>> p = SimpleNamespace(n=2, d=1, b=np.array([[0.0], [2.0]]), sigma2=0.0,
    ...                     hessian_diagonal=np.array([[1.0], [3.0]]), x_star=None)
    >>> oracle = QuadraticOracle(p)
    >>> float(oracle.x_star[0])
    1.5
    >>> x = torch.full((2, 1, 1), 1.5, dtype=torch.float64)
    >>> oracle.grad(x, torch.arange(2), [None, None]).flatten().tolist()
    [1.5, -1.5]
    """

    def __init__(
        self, problem, *, dtype: torch.dtype = torch.float64, device="cpu", noise="generator"
    ):
        self.noise = _check_noise(noise)
        self.dtype = _check_float_dtype(dtype)
        self.device = torch.device(device)
        self.n = check_int("problem.n", problem.n, minimum=1)
        self.d = check_int("problem.d", problem.d, minimum=1)
        self.sigma2 = float(problem.sigma2)
        if not math.isfinite(self.sigma2) or self.sigma2 < 0:
            raise TheorylabError(f"problem.sigma2 must be finite and >= 0, got {self.sigma2}")
        b = np.asarray(problem.b, dtype=np.float64)
        if b.shape != (self.n, self.d):
            raise TheorylabError(f"problem.b must have shape {(self.n, self.d)}, got {b.shape}")
        diag = getattr(problem, "hessian_diagonal", None)
        if diag is not None:
            diag = np.asarray(diag, dtype=np.float64)
            if diag.shape != (self.n, self.d):
                raise TheorylabError(
                    f"problem.hessian_diagonal must have shape {(self.n, self.d)}, got {diag.shape}"
                )
            self.h = torch.as_tensor(diag, dtype=dtype, device=self.device)
            self.A = None
        else:
            A = np.asarray(problem.A, dtype=np.float64)
            if A.shape != (self.n, self.d, self.d):
                raise TheorylabError(
                    f"problem.A must have shape {(self.n, self.d, self.d)}, got {A.shape}"
                )
            self.h = None
            self.A = torch.as_tensor(A, dtype=dtype, device=self.device)
        self.b = torch.as_tensor(b, dtype=dtype, device=self.device)
        x_star = getattr(problem, "x_star", None)
        if x_star is None and diag is not None:
            # x* = (sum_i A_i)^{-1} sum_i A_i b_i, coordinatewise for diagonal Hessians
            x_star = (diag * b).sum(axis=0) / diag.sum(axis=0)
        self.x_star = (
            None if x_star is None else torch.as_tensor(x_star, dtype=dtype, device=self.device)
        )
        self._noise_scale = math.sqrt(self.sigma2 / self.d)
        self._scratch: dict = {}

    def grad(
        self, x: torch.Tensor, nodes: torch.Tensor, generators: Sequence[torch.Generator]
    ) -> torch.Tensor:
        """``A_i (x_i - b_i) + xi_i`` for each local node ``i = nodes[l]``, shape of ``x``."""
        nodes, rows = self._prepare(x, nodes, generators)
        b, h, At = self._node_tables(nodes, rows)
        diff = x - b
        if h is not None:
            g = diff.mul_(h)
        else:
            g = torch.bmm(diff, At)  # row r: A_i diff_r
        if self.sigma2 > 0 and self.noise == "counter":
            keys, t = self._counter_call(generators)
            m, R, d = g.shape
            z = counter_normal(keys, t, self._index_words(R * d), *self._counter_buffers(m, R * d))
            g.add_(z.view(m, R, d), alpha=self._noise_scale)
        elif self.sigma2 > 0:
            noise = self._noise_buffer(g)
            for l in range(x.shape[0]):
                noise[l].normal_(generator=generators[l])
            g.add_(noise, alpha=self._noise_scale)
        return g

    def _node_tables(self, nodes: torch.Tensor, rows: slice | None) -> tuple:
        """``b``, ``h`` as ``(m, 1, d)`` and ``A^T`` as ``(m, d, d)`` for these nodes, cached by the
        identity of ``nodes`` (``_prepare`` returns one tensor while the caller passes one)."""
        cached = self._scratch.get("tables")
        if cached is not None and cached[0] is nodes:
            return cached[1]
        b = self._rows(self.b, nodes, rows)[:, None, :]
        h = None if self.h is None else self._rows(self.h, nodes, rows)[:, None, :]
        At = None if self.A is None else self._rows(self.A, nodes, rows).transpose(1, 2)
        self._scratch["tables"] = (nodes, (b, h, At))
        return b, h, At

    def _counter_buffers(self, m: int, count: int) -> tuple:
        """Reusable float64 output and two int64 work buffers of shape ``(m, count)``."""
        bufs = self._scratch.get("counter_buffers")
        if bufs is None or bufs[0].shape != (m, count):
            kw = {"device": self.device}
            bufs = (
                torch.empty((m, count), dtype=torch.float64, **kw),
                (
                    torch.empty((m, count), dtype=torch.int64, **kw),
                    torch.empty((m, count), dtype=torch.int64, **kw),
                ),
            )
            self._scratch["counter_buffers"] = bufs
        return bufs

    def _noise_buffer(self, g: torch.Tensor) -> torch.Tensor:
        """A reusable buffer of ``g``'s shape for the standard normals (only read by ``add_``)."""
        buf = self._scratch.get("noise")
        if buf is None or buf.shape != g.shape:
            buf = torch.empty_like(g)
            self._scratch["noise"] = buf
        return buf


class RecordingQuadraticOracle(QuadraticOracle):
    """A :class:`QuadraticOracle` that keeps a copy of the gradients of its last call.

    ``last_grad`` (shape ``(m, R, d)``, or ``None`` before the first call) lets a claim check an
    identity that involves the stochastic gradients a step used (e.g. EF-SGD's virtual iterate
    ``x~+ = x~ - gamma mean_j g_j``) from an ``observe`` hook, without a loop of its own. Same
    arguments, draws and results as :class:`QuadraticOracle`.
    """

    last_grad: torch.Tensor | None = None

    def grad(
        self, x: torch.Tensor, nodes: torch.Tensor, generators: Sequence[torch.Generator]
    ) -> torch.Tensor:
        g = super().grad(x, nodes, generators)
        self.last_grad = g.detach().clone()
        return g


class LogisticOracle(_OracleBase):
    r"""Minibatch gradients of l2-regularised logistic regression split over ``n`` nodes.

    The math (labels ``y_ij in {0, 1}``, as in :class:`theorylab.problems.LogisticProblem`):
    ``f_i(x) = (1/m) sum_j [log(1 + exp(a_ij^T x)) - y_ij a_ij^T x] + (reg/2)||x||^2``; the
    stochastic gradient of node ``i`` is
    ``(1/B) sum_{j in S} a_ij (sigmoid(a_ij^T x) - y_ij) + reg x`` over a minibatch ``S`` of ``B``
    indices drawn uniformly **with replacement** (unbiased), independently per replica.

    Draw order: for ``l = 0, ..., m-1``, node ``nodes[l]`` draws
    ``torch.randint(m_i, (R, B), generator=generators[l])``. With ``batch_size=None`` the full
    local gradient is returned and nothing is drawn. With ``noise="counter"`` the index of node
    ``i``, call ``t``, replica ``r``, draw ``b`` is instead
    :func:`verify.counter_rng.counter_randint` at flat index ``c = r B + b`` (a 63-bit word
    modulo ``m_i``: relative bias ``< 2^-40``; needs ``m_i < 2^23``), for all nodes at once.

    Parameters
    ----------
    problem : LogisticProblem or duck-typed object
        Needs ``features`` (n, m, d), ``labels`` (n, m) in {0, 1}, ``reg`` (>= 0) and
        optionally ``x_star`` (d,) or ``None``.
    batch_size : int >= 1 or None
        Minibatch size ``B``; ``None`` for full local gradients.
    dtype : torch.dtype, default ``torch.float64``
    device : str or torch.device, default ``"cpu"``
    noise : {"generator", "counter"}, default ``"generator"``
        How minibatch indices are drawn (above).

    Raises
    ------
    TheorylabError
        If shapes disagree, labels are not 0/1, ``reg < 0``, ``batch_size < 1``, ``noise`` is
        unknown or (counter mode) ``m_i >= 2^23``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from types import SimpleNamespace
    >>> p = SimpleNamespace(features=np.ones((1, 2, 1)), labels=np.array([[0.0, 1.0]]),
    ...                     reg=0.5, x_star=None)
    >>> LogisticOracle(p).grad(torch.zeros(1, 1, 1, dtype=torch.float64), [0], [None]).item()
    0.0
    """

    def __init__(
        self,
        problem,
        batch_size: int | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device="cpu",
        noise="generator",
    ):
        self.noise = _check_noise(noise)
        self.dtype = _check_float_dtype(dtype)
        self.device = torch.device(device)
        features = np.asarray(problem.features, dtype=np.float64)
        labels = np.asarray(problem.labels, dtype=np.float64)
        if features.ndim != 3:
            raise TheorylabError(
                f"problem.features must have shape (n, m, d), got {features.shape}"
            )
        self.n, self.m, self.d = features.shape
        if labels.shape != (self.n, self.m):
            raise TheorylabError(
                f"problem.labels must have shape {(self.n, self.m)}, got {labels.shape}"
            )
        if not np.all((labels == 0) | (labels == 1)):
            raise TheorylabError("problem.labels must be 0 or 1 (map -1/+1 labels by (y + 1)/2)")
        self.reg = float(problem.reg)
        if not math.isfinite(self.reg) or self.reg < 0:
            raise TheorylabError(f"problem.reg must be finite and >= 0, got {self.reg}")
        self.batch_size = None if batch_size is None else check_int("batch_size", batch_size, 1)
        if self.noise == "counter" and self.m >= 1 << 23:
            raise TheorylabError(
                f"noise='counter' draws minibatch indices modulo m and needs m < 2^23 samples per "
                f"node (bias < 2^-40), got m = {self.m}; use noise='generator'"
            )
        self._scratch: dict = {}
        self.features = torch.as_tensor(features, dtype=dtype, device=self.device)
        self.labels = torch.as_tensor(labels, dtype=dtype, device=self.device)
        x_star = getattr(problem, "x_star", None)
        self.x_star = (
            None if x_star is None else torch.as_tensor(x_star, dtype=dtype, device=self.device)
        )

    def grad(
        self, x: torch.Tensor, nodes: torch.Tensor, generators: Sequence[torch.Generator]
    ) -> torch.Tensor:
        """Minibatch (or full) gradient of each local ``f_i`` at its rows, shape of ``x``."""
        nodes, rows = self._prepare(x, nodes, generators)
        F = self._rows(self.features, nodes, rows)  # (m, M, d)
        y = self._rows(self.labels, nodes, rows)  # (m, M)
        if self.batch_size is None:
            z = torch.einsum("lmd,lrd->lrm", F, x)
            r = torch.sigmoid(z) - y[:, None, :]
            g = torch.einsum("lmd,lrm->lrd", F, r) / self.m
        else:
            m_local, R = x.shape[0], x.shape[1]
            if self.noise == "counter":
                keys, t = self._counter_call(generators)
                index = self._index_words(R * self.batch_size)
                idx = counter_randint(keys, t, self.m, index).view(m_local, R, self.batch_size)
            else:
                shape = (m_local, R, self.batch_size)
                idx = torch.empty(shape, dtype=torch.int64, device=self.device)
                for l in range(m_local):
                    torch.randint(self.m, (R, self.batch_size), generator=generators[l], out=idx[l])
            rows = torch.arange(m_local, device=self.device)[:, None, None]
            Fb = F[rows, idx]  # (m, R, B, d)
            yb = y[rows, idx]  # (m, R, B)
            z = torch.einsum("lrbd,lrd->lrb", Fb, x)
            g = torch.einsum("lrbd,lrb->lrd", Fb, torch.sigmoid(z) - yb) / self.batch_size
        return g.add_(x, alpha=self.reg)
