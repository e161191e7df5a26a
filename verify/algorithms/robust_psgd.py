"""Byzantine-robust parallel SGD with worker momentum: all-gather, attack, robust aggregation."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import NamedTuple

import torch

from theorylab.aggregators import Aggregator, get_aggregator
from theorylab.attacks import flip_labels, get_attack
from theorylab.errors import TheorylabError, check_int, check_positive, check_probability
from verify.algorithms.base import Algorithm, Context, register
from verify.seeding import node_generator

__all__ = ["RobustPSGD", "RobustPSGDState", "label_flipping_oracle", "LABEL_FLIPPING"]

#: the attack name under which Byzantine nodes send their own momentum on flipped labels
LABEL_FLIPPING = "label-flipping"
#: Byzantine nodes that behave honestly (a baseline: the aggregator's cost without an attack)
_NO_ATTACK = "none"


class RobustPSGDState(NamedTuple):
    """``x``: the iterates ``(m, R, d)`` (equal on all nodes); ``m``: each node's momentum
    ``(m, R, d)``; ``generator``: the aggregator's shared generator (the same seed on every
    node, so a randomised rule such as bucketing draws the same permutation everywhere)."""

    x: torch.Tensor
    m: torch.Tensor
    generator: torch.Generator


@register
class RobustPSGD(Algorithm):
    r"""Robust PSGD (robust D-SHB): worker momentum, all-gather, omniscient attack, robust rule.

    The math (``H`` honest nodes, ``B`` Byzantine nodes, ``|B| = f``; ``g_i`` node ``i``'s
    stochastic gradient at the common iterate; ``F`` an (f, kappa)-robust rule)::

        m_i^{k+1} = beta m_i^k + (1 - beta) g_i(x^k)                i in H     (1)
        all-gather: every node receives (m_j^{k+1})_{j in H}                   (2)
        a_b^{k+1} = A((m_j^{k+1})_{j in H}, f)_b                     b in B     (3)
        x^{k+1}   = x^k - gamma F(m_1^{k+1}, ..., a_b^{k+1}, ..., m_n^{k+1}; f) (4)

    with ``m^0 = 0``; ``beta = 0`` is robust D-SGD (``m_i = g_i``). Steps in the code:

    1. every node computes its stochastic gradient and its momentum (1) (Byzantine nodes too:
       the label-flipping attack sends it, computed on flipped labels);
    2. all-gather of the momenta (:meth:`~verify.comm.Communicator.gather`);
    3. each Byzantine node runs the attack ``A`` on the honest rows it just received (an
       omniscient, "rushing" attacker, as in Karimireddy et al. 2021/2022 and ByzFL) and keeps
       its own row of the ``f`` attack vectors; the Byzantine rows are then broadcast to all
       (:meth:`~verify.comm.Communicator.gather_from`; the Byzantine rows of step 2 are
       discarded). Non-finite messages (the NaN/inf attacks) are outliers for ``F``;
    4. every node aggregates the same stack with ``F`` and steps (4). Byzantine nodes apply the
       same update to their copy of ``x`` (they need the honest model to attack it), so every
       row of ``x`` is the honest iterate and the run's ``error`` metric is the honest error
       (start all nodes at one ``x^0``, as a server would; different starting rows keep their
       differences, since no step averages ``x``).

    **Server variant.** With a parameter server that receives the ``n`` messages, aggregates
    with ``F`` and broadcasts ``x^{k+1}``, the iterates are identical: every node here
    aggregates the same stack with the same rule (a randomised rule draws from one generator
    seeded identically on all nodes), so each computes the server's ``F`` output. Only the bytes
    differ: ``n (n - 1) s`` per round for the all-gather plus ``f (n - 1) s`` for the Byzantine
    broadcast here, against ``2 (n - 1) s`` through a server.

    Guarantee (upper, big-O; Allouah et al. 2023, Thm. on robust D-SHB;
    :func:`theorylab.rates.byzantine.robust_dshb`): with (G, B)-dissimilarity on the honest set
    (``zeta2 = G^2``) and an (f, kappa)-robust ``F``,
    ``E||grad f_H(x_hat)||^2 = O(kappa zeta2 / (1 - kappa B^2) + sqrt((1/(n-f) + kappa) L delta
    sigma2 / T) + L delta / T)``; no rule does better than ``Omega(f/(n-2f) zeta2)``
    (:func:`theorylab.rates.byzantine.byzantine_lower_bound`). Worker momentum (``beta`` close
    to 1) shrinks the noise the attacker can hide in (Karimireddy et al. 2021).

    Parameters
    ----------
    gamma : float >= 0
        Step size.
    beta : float in [0, 1), default 0
        Worker momentum.
    aggregator : str or Aggregator, default ``"trimmed-mean"``
        Spec for :func:`theorylab.aggregators.get_aggregator` (e.g. ``"nnm+trimmed-mean"``).
    byzantine : sequence of int, default ``()``
        The Byzantine node ids (distinct, checked against ``n`` at :meth:`init`).
    f : int >= 0 or None
        The count the rule is told (default ``len(byzantine)``); ``2f < n`` and the rule's own
        limit are checked at :meth:`init`.
    attack : str, default ``"sign-flipping"``
        A message attack spec for :func:`theorylab.attacks.get_attack` (``"alie"``,
        ``"ipm:eps=0.1"``, ``"nan"``, ...), ``"label-flipping"`` (Byzantine nodes send their own
        momentum; build the oracle with :func:`label_flipping_oracle`) or ``"none"`` (Byzantine
        nodes behave honestly).

    Raises
    ------
    TheorylabError
        ``gamma < 0``, ``beta`` outside [0, 1), ``f < 0``, ``f < len(byzantine)``, a repeated
        Byzantine id; at :meth:`init`: ``2f >= n`` (or the rule's own limit), an id outside
        [0, n), a label-flipping run whose oracle does not flip the Byzantine nodes' labels.

    Examples
    --------
    >>> RobustPSGD(0.1, beta=0.9, aggregator="nnm+trimmed-mean", byzantine=[3], attack="alie"
    ...            ).config()["aggregator"]
    'nnm+trimmed-mean'

    References
    ----------
    Y. Allouah, S. Farhadkhani, R. Guerraoui, N. Gupta, R. Pinot, J. Stephan, "Fixing by mixing:
    a recipe for optimal Byzantine ML under heterogeneity", AISTATS 2023, arXiv:2302.01772.
    S. P. Karimireddy, L. He, M. Jaggi, "Learning from history for Byzantine robust
    optimization", ICML 2021, arXiv:2012.10333.
    S. P. Karimireddy, L. He, M. Jaggi, "Byzantine-robust learning on heterogeneous datasets via
    bucketing", ICLR 2022, arXiv:2006.09365.
    """

    name = "robust_psgd"

    def __init__(
        self,
        gamma: float,
        *,
        beta: float = 0.0,
        aggregator: str | Aggregator = "trimmed-mean",
        byzantine: Sequence[int] = (),
        f: int | None = None,
        attack: str = "sign-flipping",
    ):
        self.gamma = check_positive("gamma", gamma, allow_zero=True)
        self.beta = check_probability("beta", beta, open_left=False)
        if self.beta >= 1.0:
            raise TheorylabError(f"beta (momentum) must lie in [0, 1), got {beta}")
        # the spec is kept (an Aggregator holds lambdas and does not pickle to the ranks)
        self.aggregator_spec = get_aggregator(aggregator).spec
        ids = [check_int("byzantine node id", b, minimum=0) for b in byzantine]
        if len(set(ids)) != len(ids):
            raise TheorylabError(f"byzantine lists a node twice: {ids}")
        self.byzantine = tuple(sorted(ids))
        self.f = len(self.byzantine) if f is None else f
        if isinstance(self.f, bool) or not isinstance(self.f, int):
            raise TypeError(f"f (Byzantine count) must be an integer, got {f!r}")
        if self.f < 0:
            raise TheorylabError(f"f (Byzantine count) must be >= 0, got f={self.f}")
        if self.f < len(self.byzantine):
            raise TheorylabError(
                f"f={self.f} but {len(self.byzantine)} nodes are Byzantine; the rule must be "
                "told at least as many as there are"
            )
        if not isinstance(attack, str):
            raise TypeError(f"attack must be a spec string, got {type(attack).__name__}")
        self.attack = attack
        self.message_attack = attack not in (LABEL_FLIPPING, _NO_ATTACK)
        if self.message_attack:
            get_attack(attack)  # validate now; the callable is rebuilt per step (picklable)

    @property
    def aggregator(self) -> Aggregator:
        """The rule ``F`` (rebuilt from its spec once per process)."""
        agg = self.__dict__.get("_aggregator")
        if agg is None:
            agg = self.__dict__["_aggregator"] = get_aggregator(self.aggregator_spec)
        return agg

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_aggregator", None)
        return state

    def config(self):
        return {
            "gamma": self.gamma,
            "beta": self.beta,
            "aggregator": self.aggregator_spec,
            "byzantine": list(self.byzantine),
            "f": self.f,
            "attack": self.attack,
        }  # message_attack follows from attack

    def _check_n(self, n: int, ctx: Context) -> None:
        for b in self.byzantine:
            if b >= n:
                raise TheorylabError(f"byzantine node {b} does not exist: the run has n = {n}")
        if 2 * self.f >= n:
            raise TheorylabError(
                f"robust PSGD needs f < n/2 Byzantine nodes, got f={self.f} with n={n}"
            )
        self.aggregator._check(n, self.f)  # the rule's own limit (Krum, bucketing), named
        if self.attack == LABEL_FLIPPING:
            flipped = tuple(getattr(ctx.oracle, "flipped_nodes", ()) or ())
            if tuple(sorted(flipped)) != self.byzantine:
                raise TheorylabError(
                    "attack='label-flipping' needs an oracle whose Byzantine nodes see flipped "
                    f"labels (label_flipping_oracle(..., byzantine={list(self.byzantine)})); "
                    f"this oracle flips {list(flipped)}. The quadratic oracle has no labels"
                )

    def init(self, x0: torch.Tensor, ctx: Context) -> RobustPSGDState:
        n = ctx.comm.n
        self._check_n(n, ctx)
        seed = int(ctx.extra.get("seed", 0))
        # one generator, seeded alike on every node (stream "attack", id n: no node has it)
        g = node_generator(seed, "attack", n, x0.device)
        return RobustPSGDState(x=x0.clone(), m=torch.zeros_like(x0), generator=g)

    def _attack_rows(self, stack: torch.Tensor, honest: list[int], local: list[int], ctx):
        """Byzantine messages of the local nodes ``local`` (positions in ``ctx.nodes``)."""
        H = stack[honest].transpose(0, 1)  # (R, h, d)
        attack = get_attack(self.attack)
        out = []
        for l in local:
            node = int(ctx.comm.nodes[l])
            row = self.byzantine.index(node)
            kw = {}
            if "gaussian" in self.attack:
                kw["generator"] = ctx.algorithm_generators[l]
            a = attack(H, len(self.byzantine), **kw)  # (R, f, d)
            out.append(a[:, row].to(stack.dtype))
        return out

    def step(self, state: RobustPSGDState, ctx: Context, k: int) -> RobustPSGDState:
        comm = ctx.comm
        n = comm.n
        # 1. local stochastic gradients and momenta (every local node)
        g = ctx.grad(state.x)
        m = g if self.beta == 0.0 else state.m * self.beta + g * (1.0 - self.beta)
        # 2. all-gather of the momenta: every node holds the stack (n, R, d)
        stack = comm.gather(m)
        if self.byzantine:
            # 3. Byzantine nodes read the honest rows, attack, and broadcast their messages
            honest = [i for i in range(n) if i not in self.byzantine]
            msg = m.clone()
            local_ids = comm.nodes.tolist()
            local = [l for l, i in enumerate(local_ids) if i in self.byzantine]
            if self.message_attack:
                for l, a in zip(local, self._attack_rows(stack, honest, local, ctx)):
                    msg[l] = a
            byz = comm.gather_from(msg, self.byzantine)  # (f, R, d)
            stack = stack.clone()
            stack[list(self.byzantine)] = byz
        # 4. every node aggregates the same stack and steps
        y = self.aggregator(stack.transpose(0, 1), self.f, generator=state.generator)  # (R, d)
        x = state.x - self.gamma * y.unsqueeze(0)
        return RobustPSGDState(x=x, m=m, generator=state.generator)


# ---- label flipping on the model oracle -----------------------------------------------------
def label_flipping_oracle(oracle, byzantine: Sequence[int], num_classes: int | None = None):
    """A copy of a :class:`verify.model_oracle.ModelOracle` (or a zero-argument factory of one)
    whose Byzantine nodes see labels ``y -> C - 1 - y`` (:func:`theorylab.attacks.flip_labels`).

    Their gradients are then honest gradients of the wrong objective; run
    :class:`RobustPSGD` with ``attack="label-flipping"`` so they send them. The honest nodes'
    data are untouched. The copy carries ``flipped_nodes`` (checked by :class:`RobustPSGD`).

    Raises
    ------
    TheorylabError
        An oracle without integer class labels (the quadratic oracle: label flipping is not
        defined there), or a node id outside ``[0, n)``.
    """
    if callable(oracle) and not hasattr(oracle, "grad"):
        oracle = oracle()
    y = getattr(oracle, "y", None)
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or not hasattr(oracle, "offsets"):
        raise TheorylabError(
            f"label flipping needs a ModelOracle on class labels; {type(oracle).__name__} has "
            "none (the quadratic oracle is not supported: use a message attack instead)"
        )
    C = int(y.max()) + 1 if num_classes is None else check_int("num_classes", num_classes, 2)
    out = copy.copy(oracle)
    out.y = y.clone()
    ids = sorted({check_int("byzantine node id", b, minimum=0) for b in byzantine})
    for b in ids:
        if b >= oracle.n:
            raise TheorylabError(f"byzantine node {b} does not exist: the oracle has n={oracle.n}")
        lo = int(oracle.offsets[b])
        out.y[lo : lo + oracle.sizes[b]] = flip_labels(y[lo : lo + oracle.sizes[b]], C)
    out.flipped_nodes = tuple(ids)
    return out
