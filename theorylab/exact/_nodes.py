"""Node-space blocks: how a family's per-node update is lifted to the engine's blocks.

A family writes its update with node-space operators: ``D`` (the stacked Hessians, acting on the
stacked iterates of the n nodes), ``lift(W)`` (a mixing/averaging matrix acting across nodes),
``c`` (the stacked ``grad f_i(x*)``), ``I`` and the per-entry noise variance ``sigma2/d``.
With a shared Hessian eigenbasis each coordinate is a block of size ``m = n``
(``D = diag(h_1k, ..., h_nk)``, ``lift(W) = W``); otherwise one block of size ``m = n d``
(``D = blockdiag(A_i)``, ``lift(W) = W kron I_d``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorylab.exact._common import _separable_form


@dataclass
class NodeBlock:
    """One block: ``D (m, m)``, ``c (m,)``, ``z0 (m,)`` and the lifting of n x n matrices."""

    D: np.ndarray
    c: np.ndarray
    z0: np.ndarray
    width: int  # 1 per coordinate block, d for the dense block

    def lift(self, X: np.ndarray) -> np.ndarray:
        """An n x n (or n x k) node matrix acting on this block's stacked state."""
        return X if self.width == 1 else np.kron(X, np.eye(self.width))

    @property
    def m(self) -> int:
        return self.D.shape[0]


def node_blocks(problem, Z0: np.ndarray, separable: bool | None = None) -> list[NodeBlock]:
    """Blocks for a problem and initial errors ``Z0 = x0 - x*`` (n, d); per coordinate when the
    Hessians share an eigenbasis (``separable`` None: detect; False: force one dense block)."""
    n, d = problem.n, problem.d
    sep = _separable_form(problem) if separable is not False else None
    if sep is not None:
        H, U = sep
        G = problem.grad_star
        if U is not None:
            Z0, G = Z0 @ U, G @ U
        return [NodeBlock(np.diag(H[:, k]), G[:, k].copy(), Z0[:, k].copy(), 1) for k in range(d)]
    D = np.zeros((n * d, n * d))
    for i in range(n):
        D[i * d : (i + 1) * d, i * d : (i + 1) * d] = problem.A[i]
    return [NodeBlock(D, problem.grad_star.ravel(), Z0.ravel(), d)]


def stack(per_block):
    """Stack a list over blocks (arrays) into (B, ...)."""
    return np.stack([np.asarray(x, dtype=np.float64) for x in per_block])


def declare_nodes(blocks, build, n: int, parts: int, **kw):
    """Declare a family from its per-block builder.

    ``build(blk) -> (phases, m0, S0)`` with ``phases`` a list of ``(M, c, G)`` (noise
    ``G xi``, ``xi`` iid standard normal, so ``Q = G G^T``) is called per block; ``parts`` is
    the number of m-sized pieces of the state, whose first piece is the node iterates (outputs
    ``error`` and ``avg_error`` select it). Returns the declared :class:`LinearSystem`
    (extra keywords, e.g. ``mult``, pass through to :meth:`LinearSystem.declare`).
    """
    from theorylab.exact.engine import LinearSystem

    per = [build(blk) for blk in blocks]
    p = len(per[0][0])
    Ms = [stack([pb[0][t][0] for pb in per]) for t in range(p)]
    cs = [stack([pb[0][t][1] for pb in per]) for t in range(p)]
    Qs = [stack([pb[0][t][2] @ pb[0][t][2].T for pb in per]) for t in range(p)]
    m0 = stack([pb[1] for pb in per])
    S0 = None if per[0][2] is None else stack([pb[2] for pb in per])
    m = blocks[0].m
    sel_err = np.zeros((m, parts * m))
    sel_err[:, :m] = np.eye(m) / np.sqrt(n)
    sel_avg = np.zeros((m // n, parts * m))
    sel_avg[:, :m] = blocks[0].lift(np.full((1, n), 1.0 / n))
    outputs = {"error": sel_err, "avg_error": sel_avg}
    outputs.update(kw.pop("outputs", {}))
    return LinearSystem.declare(Ms, cs, Qs, m0, outputs, S0=S0, **kw)


def prediction(res, rec, algorithm, form, method):
    """An :class:`ExactPrediction` from an engine result with 'error' and 'avg_error'."""
    from theorylab.exact._common import _Acc, _finish

    acc = _Acc(rec.size)
    acc.err, acc.avg = res.curves["error"], res.curves["avg_error"]
    acc.ss_err, acc.ss_avg = res.steady["error"], res.steady["avg_error"]
    return _finish(acc, rec, algorithm, form, method)
