"""A gradient oracle for any ``nn.Module``, a loss and a dataset split across ``n`` nodes.

:class:`ModelOracle` implements :class:`verify.comm.GradientOracle` on *flat* parameter vectors:
``grad(x, nodes, generators)`` takes ``x`` of shape ``(m, R, d)`` (``d`` = the model's number of
parameters, in ``named_parameters()`` order), and returns each local node's minibatch gradient at
each of its ``R`` replicas. All ``m R`` (node, replica) pairs are evaluated in one batched call
(``torch.func.functional_call`` under ``torch.func.vmap`` for the forward pass, one autograd
reverse pass of the sum of the pairs' losses for their gradients), so every
registered algorithm runs on it unchanged, on both executors and on any device.

Draw order (what makes the executors agree): at each call, for ``l = 0, ..., m-1`` in order,
node ``i = nodes[l]`` draws ``torch.randint(m_i, (R, B), generator=generators[l])``, the
indices of its ``B`` samples (uniform **with replacement**, so the minibatch gradient is unbiased
for ``grad f_i``) for each replica. With ``batch_size=None`` nothing is drawn and the full local
gradient is returned. The draws of node ``i`` are thus the same whether it is one row of the
simulator's stack or the only node of a rank (same seed, same batches).

The objectives: ``f_i(x) = (1/m_i) sum_{j in S_i} loss(model(a_j; x), y_j)`` over node ``i``'s
samples ``S_i`` and ``f = (1/n) sum_i f_i``. Measurements (full batch, float64 unless the oracle
is built in another dtype): :meth:`ModelOracle.local_objectives` (every ``f_i`` and
``grad f_i`` at a point, vectorised over replicas), :meth:`ModelOracle.objective` (``f`` and
``grad f``), :meth:`ModelOracle.measure` (on a stack of node iterates: ``f`` and
``||grad f||^2`` at the average and averaged over the nodes' iterates), :meth:`ModelOracle.hvp`
(Hessian-vector products of ``f`` or ``f_i``, exact, by forward-over-reverse differentiation).

A diverged run is not an error here: NaN or inf parameters give NaN gradients and losses, which
the caller detects (the oracle never raises on non-finite values).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.func import functional_call, vmap

from theorylab import estimate
from theorylab.data import Dataset, split
from theorylab.errors import TheorylabError, check_int
from verify.seeding import node_generators

__all__ = ["ModelOracle", "model_oracle", "mlp", "estimate_constants", "LOSSES"]


def _cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits ``output`` (B, k) against class ids ``target`` (B,)."""
    return torch.nn.functional.cross_entropy(output, target)


def _half_squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(1/B) sum_b (1/2) ||output_b - target_b||^2`` (``output``, ``target``: (B, k))."""
    return 0.5 * ((output - target) ** 2).reshape(output.shape[0], -1).sum(dim=1).mean()


#: Named losses (module-level functions, so an oracle using them pickles to the ranks).
LOSSES = {"cross_entropy": _cross_entropy, "half_mse": _half_squared_error}


def mlp(sizes: Sequence[int], *, seed: int = 0, activation: str = "tanh") -> torch.nn.Sequential:
    """A seeded multilayer perceptron ``Linear -> act -> ... -> Linear`` (float64).

    Weights and biases are drawn from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (PyTorch's default
    scale) with a ``torch.Generator`` seeded by ``seed``; the global RNG is not touched.

    Parameters
    ----------
    sizes : sequence of int >= 1, length >= 2
        Layer widths ``(d_in, h_1, ..., d_out)``.
    seed : int >= 0
    activation : {"tanh", "relu"}

    Examples
    --------
    >>> net = mlp([4, 8, 3], seed=0)
    >>> sum(p.numel() for p in net.parameters())
    67
    """
    sizes = [check_int("sizes[i]", s, minimum=1) for s in sizes]
    if len(sizes) < 2:
        raise TheorylabError(f"sizes needs at least (d_in, d_out), got {sizes}")
    acts = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}
    if activation not in acts:
        raise TheorylabError(f"activation must be one of {tuple(acts)}, got {activation!r}")
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    layers: list[torch.nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        # built on the meta device (no initialisation, no draw from torch's global generator),
        # then given its own weights drawn from `gen` (torch.nn.utils.skip_init would do the
        # same, but its to_empty imports sympy, ~60 MB, in every process that builds one)
        lin = torch.nn.Linear(a, b, device="meta", dtype=torch.float64)
        bound = 1.0 / math.sqrt(a)
        weight = (torch.rand((b, a), generator=gen, dtype=torch.float64) * 2 - 1) * bound
        bias = (torch.rand(b, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        lin.weight, lin.bias = torch.nn.Parameter(weight), torch.nn.Parameter(bias)
        layers.append(lin)
        if k < len(sizes) - 2:
            layers.append(acts[activation]())
    return torch.nn.Sequential(*layers)


def _values_and_grads(fn, x: torch.Tensor, *args) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn(x, *args)`` and its gradient with respect to each row of ``x``.

    ``fn`` maps ``x`` (leading dimensions: rows) to one value per row, the value of a row
    depending on that row of ``x`` alone (a ``vmap`` of a per-row loss); the gradient of the
    sum of the values is then every row's own gradient: one forward pass over all rows and one
    reverse pass (plain autograd; ``torch.func.grad`` under ``vmap`` gives the same numbers,
    slower per call, and imports ``torch._dynamo``, ~0.9 s and ~70 MB, in every process).
    """
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        values = fn(leaf, *args)
        (g,) = torch.autograd.grad(values.sum(), leaf)
    return values.detach(), g


class ModelOracle:
    r"""Minibatch gradients of a model's loss on each node's share of a dataset.

    The math: node ``i`` holds samples ``S_i`` (``m_i = |S_i| >= 1``) and
    ``f_i(x) = (1/m_i) sum_{j in S_i} loss(model(a_j; x), y_j)``; its stochastic gradient at
    ``x`` is ``(1/B) sum_{b<B} grad_x loss(model(a_{j_b}; x), y_{j_b})`` with ``j_b`` uniform on
    ``S_i`` with replacement (unbiased: ``E g_i(x) = grad f_i(x)``; the noise variance at ``x``
    is ``sigma2_i(x) = (1/B) (1/m_i) sum_j ||grad l_j(x) - grad f_i(x)||^2``). ``x`` is the flat
    vector of the model's parameters in ``named_parameters()`` order. Draw order: module notes.

    Parameters
    ----------
    model : torch.nn.Module
        Its parameters (all floating point) define ``d`` and the flat layout; a private copy
        is cast to ``dtype`` and moved to ``device``. Buffers are passed unchanged (a model
        that updates buffers in its forward, e.g. BatchNorm in training mode, is not
        supported: put it in ``eval()`` mode; likewise dropout, whose randomness would not
        come from the nodes' generators).
    loss : str or callable
        ``"cross_entropy"``, ``"half_mse"`` or ``loss(output, target) -> scalar``, which must
        be the **mean of per-sample losses** over the batch (the ``f_i`` above; full batches
        are evaluated as weighted sums of per-sample losses, minibatches by calling ``loss`` on
        the batch, and the two agree only for such a mean): a batch-coupled loss, e.g. a
        class-weighted cross-entropy (normalised by the batch's weights), is refused at
        construction. Module-level, so it pickles to the ranks.
    features : array_like, shape (N, ...)
    labels : array_like, shape (N,) int (classification) or (N, ...) float (regression)
    parts : sequence of n index arrays
        Node ``i``'s sample indices (e.g. from :func:`theorylab.data.split`); each non-empty.
    batch_size : int >= 1 or None, default None
        ``B``; ``None`` for full local gradients (deterministic).
    dtype : torch.dtype, default ``torch.float64``
    device : str or torch.device, default ``"cpu"``
        Where the tensors live; the generators passed to :meth:`grad` must be on it.

    Attributes
    ----------
    n, d : int
    x0 : torch.Tensor, shape (d,)
        The model's own parameters, flattened (a starting point).
    sizes : list of int
        ``m_i`` per node.
    x_star : None
        Unknown for a network.

    Raises
    ------
    TypeError
        ``model`` not an ``nn.Module``, a parameter that is not floating point (named), an
        unknown loss type, a non-floating ``dtype``.
    TheorylabError
        No parameters, an empty node, indices out of range, ``batch_size < 1``, a loss that
        is not the mean of its per-sample losses (checked on up to 8 samples at ``x0``).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from theorylab.data import teacher_student, split
    >>> data = teacher_student(40, 3, num_classes=2, seed=0)
    >>> oracle = ModelOracle(mlp([3, 4, 2]), "cross_entropy", data.features, data.labels,
    ...                      split(data, 2, seed=0), batch_size=5)
    >>> x = oracle.x0.expand(2, 3, oracle.d).contiguous()
    >>> gens = [torch.Generator().manual_seed(i) for i in range(2)]
    >>> oracle.grad(x, torch.arange(2), gens).shape
    torch.Size([2, 3, 26])
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss,
        features,
        labels,
        parts: Sequence,
        batch_size: int | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device="cpu",
    ):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        named = list(model.named_parameters())
        if not named:
            raise TheorylabError("model has no parameters; the oracle differentiates them")
        for name, p in named:
            if not p.dtype.is_floating_point:
                raise TypeError(
                    f"every model parameter must be floating point to be differentiated; "
                    f"parameter {name!r} has dtype {p.dtype}"
                )
        self.dtype = dtype
        self.device = torch.device(device)
        self.model = copy.deepcopy(model).to(device=self.device, dtype=dtype)
        named = list(self.model.named_parameters())
        self._names = [name for name, _ in named]
        self._shapes = [tuple(p.shape) for _, p in named]
        self._numels = [p.numel() for _, p in named]
        self.d = int(sum(self._numels))
        self.buffers = {k: v for k, v in self.model.named_buffers()}
        self.x0 = torch.cat([p.detach().reshape(-1) for _, p in named]).clone()
        if isinstance(loss, str):
            if loss not in LOSSES:
                raise TheorylabError(
                    f"loss must be one of {tuple(LOSSES)} or a callable, got {loss!r}"
                )
            self.loss_name, self.loss = loss, LOSSES[loss]
        elif callable(loss):
            self.loss_name, self.loss = getattr(loss, "__name__", "custom"), loss
        else:
            raise TypeError(f"loss must be a name in {tuple(LOSSES)} or a callable, got {loss!r}")
        self.batch_size = None if batch_size is None else check_int("batch_size", batch_size, 1)
        X = torch.as_tensor(np.asarray(features), dtype=dtype)
        y_np = np.asarray(labels)
        if np.issubdtype(y_np.dtype, np.integer):
            y = torch.as_tensor(y_np, dtype=torch.int64)
        else:
            y = torch.as_tensor(y_np, dtype=dtype)
        N = X.shape[0]
        if y.shape[0] != N:
            raise TheorylabError(f"features has {N} samples but labels has {y.shape[0]}")
        self.n = len(parts)
        if self.n < 1:
            raise TheorylabError("parts must list at least one node's sample indices")
        idx = []
        for i, part in enumerate(parts):
            p = np.asarray(part, dtype=np.int64).reshape(-1)
            if p.size == 0:
                raise TheorylabError(f"node {i} has no samples; every node needs at least one")
            if p.min() < 0 or p.max() >= N:
                raise TheorylabError(f"parts[{i}] has indices outside [0, {N})")
            idx.append(p)
        self.sizes = [int(p.size) for p in idx]
        order = torch.as_tensor(np.concatenate(idx))
        # node i's samples are rows offsets[i] .. offsets[i] + sizes[i] - 1 of X, y
        self.X = X[order].to(self.device)
        self.y = y[order].to(self.device)
        self.offsets = torch.as_tensor(
            np.concatenate([[0], np.cumsum(self.sizes)[:-1]]), dtype=torch.int64, device=self.device
        )
        self.x_star = None
        self._check_loss_is_a_mean()

    def _check_loss_is_a_mean(self, k: int = 8) -> None:
        """Refuse a loss whose value on a batch is not the mean of its per-sample values (the
        full-batch and minibatch paths would then compute different ``f_i``)."""
        a, y = self.X[:k], self.y[:k]
        with torch.no_grad():
            out = functional_call(self.model, (self.unflatten(self.x0), self.buffers), (a,))
            whole = self.loss(out, y)
            per = torch.stack([self.loss(out[j : j + 1], y[j : j + 1]) for j in range(len(a))])
        mean = per.mean()
        scale = max(float(mean.abs()), float(per.abs().max()), 1e-300)
        if not torch.isfinite(whole) or abs(float(whole - mean)) > 1e-9 * scale:
            raise TheorylabError(
                f"loss {self.loss_name!r} on a batch of {len(a)} samples is {float(whole):.6g}, "
                f"but the mean of its per-sample values is {float(mean):.6g}: the oracle needs "
                "loss(batch) = mean of per-sample losses (f_i is an average over node i's "
                "samples); a class-weighted or otherwise batch-coupled loss is not supported"
            )

    # ---- the functional model ----------------------------------------------------------------
    def unflatten(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The parameter dict (views of ``x``) of a flat vector ``x`` of shape ``(d,)``."""
        chunks = torch.split(x, self._numels)
        return {k: c.view(s) for k, c, s in zip(self._names, chunks, self._shapes)}

    def _loss(self, x: torch.Tensor, a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(self.model, (self.unflatten(x), self.buffers), (a,))
        return self.loss(out, y)

    def _node_data(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = int(self.offsets[i])
        return self.X[start : start + self.sizes[i]], self.y[start : start + self.sizes[i]]

    def _check_x(self, x) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype != self.dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but the oracle was built for {self.dtype}; "
                "build the oracle with dtype=x.dtype"
            )

    # ---- GradientOracle -----------------------------------------------------------------------
    def grad(
        self, x: torch.Tensor, nodes: torch.Tensor, generators: Sequence[torch.Generator]
    ) -> torch.Tensor:
        """Minibatch (or full) gradient of each local ``f_i`` at its rows, shape of ``x``."""
        self._check_x(x)
        if x.dim() != 3 or x.shape[2] != self.d:
            raise TheorylabError(
                f"x must have shape (m, R, d) with d = {self.d}, got {tuple(x.shape)}"
            )
        ids = torch.as_tensor(nodes).reshape(-1).tolist()
        m, R = x.shape[0], x.shape[1]
        if len(ids) != m:
            raise TheorylabError(f"x has {m} node rows but nodes lists {len(ids)} ids")
        if any(i < 0 or i >= self.n for i in ids):
            raise TheorylabError(f"node ids must lie in [0, {self.n}), got {ids}")
        if self.batch_size is None:
            return self._full_grads(x, ids)
        if len(generators) != m:
            raise TheorylabError(f"need one generator per local node ({m}), got {len(generators)}")
        B = self.batch_size
        # 1. each node draws its replicas' sample indices from its own generator, in node order
        idx = torch.empty((m, R, B), dtype=torch.int64, device=self.device)
        for l, i in enumerate(ids):
            torch.randint(self.sizes[i], (R, B), generator=generators[l], out=idx[l])
        idx += self.offsets[ids][:, None, None]
        # 2. one batched gradient over all (node, replica) pairs
        flat = idx.reshape(-1)
        a = self.X[flat].reshape(m * R, B, *self.X.shape[1:])
        y = self.y[flat].reshape(m * R, B, *self.y.shape[1:])
        _, g = _values_and_grads(vmap(self._loss), x.reshape(m * R, self.d), a, y)
        return g.reshape(m, R, self.d)

    # ---- full local batches, all listed nodes in one pass ---------------------------------------
    def _padded(self, ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The listed nodes' samples padded to a common length ``S = max m_i``: features
        ``(m, S, ...)``, labels ``(m, S, ...)`` and weights ``(m, S)`` (``1/m_i`` on node ``i``'s
        own samples, 0 on the padding, which repeats its first sample so every value is finite).
        Cached per node list (the data never change)."""
        key = tuple(ids)
        cache = self.__dict__.setdefault("_padded_cache", {})
        if key not in cache:
            S = max(self.sizes[i] for i in ids)
            j = torch.arange(S, device=self.device)
            sizes = torch.as_tensor([self.sizes[i] for i in ids], device=self.device)
            real = j[None, :] < sizes[:, None]  # (m, S)
            rows = self.offsets[list(ids)][:, None] + torch.where(real, j[None, :], 0)
            w = real.to(self.dtype) / sizes[:, None].to(self.dtype)
            if len(cache) > 64:  # a bounded cache: node lists are few (one per executor layout)
                cache.clear()
            cache[key] = (self.X[rows], self.y[rows], w)
        return cache[key]

    def _weighted_loss(self, x, a, y, w) -> torch.Tensor:
        """``sum_j w_j loss(model(a_j; x), y_j)``: per-sample losses (the loss of a batch of
        one) weighted; with ``w = 1/m_i`` on node ``i``'s samples this is ``f_i(x)``."""
        out = functional_call(self.model, (self.unflatten(x), self.buffers), (a,))
        per = vmap(self.loss)(out.unsqueeze(1), y.unsqueeze(1))
        return (per * w).sum()

    def _full_grads(self, x: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
        """``grad f_i`` (full local batch) of node ``ids[l]`` at each row ``x[l, r]``: one
        batched call over all (node, replica) pairs (shape of ``x``, ``(m, R, d)``)."""
        return self._node_values_and_grads(x, ids)[1]

    def _node_values_and_grads(self, x: torch.Tensor, ids: Sequence[int]):
        """``f_i`` and ``grad f_i`` (full local batch) of node ``ids[l]`` at each row
        ``x[l, r]``: shapes ``(m, R)`` and ``(m, R, d)``."""
        a, y, w = self._padded(ids)
        per_node = vmap(self._weighted_loss, in_dims=(0, None, None, None))  # over rows
        return _values_and_grads(vmap(per_node), x, a, y, w)  # over nodes

    def node_objectives(self, x: torch.Tensor, nodes: Sequence[int]):
        """The listed nodes' ``f_i`` and ``grad f_i`` (full local batches) at each row of ``x``.

        ``x`` has shape ``(R, d)`` (points shared by the nodes); returns shapes ``(m, R)`` and
        ``(m, R, d)``, ``m = len(nodes)``, all in one batched reverse pass.
        """
        self._check_x(x)
        ids = [check_int("nodes[l]", int(i), 0, self.n - 1) for i in nodes]
        if x.dim() != 2 or x.shape[1] != self.d:
            raise TheorylabError(
                f"x must have shape (R, d) with d = {self.d}, got {tuple(x.shape)}"
            )
        # each node differentiates its own copy of the points
        copies = x.unsqueeze(0).expand(len(ids), *x.shape).contiguous()
        return self._node_values_and_grads(copies, ids)

    # ---- full-batch measurements ---------------------------------------------------------------
    def _points(self, x) -> tuple[torch.Tensor, tuple]:
        x = torch.as_tensor(x, device=self.device)
        self._check_x(x)
        if x.shape[-1] != self.d:
            raise TheorylabError(f"x must end with d = {self.d}, got shape {tuple(x.shape)}")
        return x.reshape(-1, self.d), tuple(x.shape[:-1])

    def local_objectives(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """Every node's ``f_i`` and ``grad f_i`` at each point of ``x``.

        Parameters
        ----------
        x : torch.Tensor, shape (..., d)
            Points (e.g. ``(d,)`` or ``(R, d)``), shared by all nodes.

        Returns
        -------
        (values, grads): shapes ``(n, ...)`` and ``(n, ..., d)``.
        """
        P, lead = self._points(x)
        # one forward pass over every node's samples per point (each node with its own copy of
        # the point), the n node gradients by one reverse pass (node_objectives)
        values, grads = self.node_objectives(P, range(self.n))  # (n, P), (n, P, d)
        return values.reshape(self.n, *lead), grads.reshape(self.n, *lead, self.d)

    def objective(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """``f(x) = (1/n) sum_i f_i(x)`` and ``grad f(x)``: shapes ``(...)`` and ``(..., d)``."""
        values, grads = self.local_objectives(x)
        return values.mean(dim=0), grads.mean(dim=0)

    def measure(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Full-batch measurements on a stack of node iterates ``x`` of shape ``(n, R, d)``.

        Returns a dict of ``(R,)`` tensors: ``f_avg = f(xbar)``, ``grad_norm2_avg =
        ||grad f(xbar)||^2`` (``xbar = (1/n) sum_i x_i``; the quantity of the non-convex DSGD
        bound), ``f_nodes = (1/n) sum_i f(x_i)`` and ``grad_norm2_nodes =
        (1/n) sum_i ||grad f(x_i)||^2`` (``grad f`` of the whole objective at each node's
        iterate), and ``zeta2_avg = (1/n) sum_i ||grad f_i(xbar) - grad f(xbar)||^2``. NaN
        where the iterates are not finite.
        """
        self._check_x(x)
        if x.dim() != 3 or x.shape[0] != self.n or x.shape[2] != self.d:
            raise TheorylabError(
                f"x must have shape (n, R, d) = ({self.n}, R, {self.d}), got {tuple(x.shape)}"
            )
        xbar = x.mean(dim=0)
        v_bar, g_bar_local = self.local_objectives(xbar)  # (n, R), (n, R, d)
        g_bar = g_bar_local.mean(dim=0)
        v_nodes, g_nodes = self.objective(x)  # (n, R), (n, R, d)
        return {
            "f_avg": v_bar.mean(dim=0),
            "grad_norm2_avg": (g_bar**2).sum(dim=-1),
            "f_nodes": v_nodes.mean(dim=0),
            "grad_norm2_nodes": (g_nodes**2).sum(dim=-1).mean(dim=0),
            "zeta2_avg": ((g_bar_local - g_bar) ** 2).sum(dim=-1).mean(dim=0),
        }

    def hvp(self, x: torch.Tensor, v: torch.Tensor, node: int | None = None) -> torch.Tensor:
        """Hessian-vector product ``nabla^2 f(x) v`` (or ``nabla^2 f_i(x) v`` for ``node=i``).

        Exact (reverse-over-reverse: the gradient of ``<grad f(x), v>``); ``x``, ``v`` of shape
        ``(d,)``.
        """
        self._check_x(x)
        nodes = range(self.n) if node is None else [check_int("node", node, 0, self.n - 1)]
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            f = sum(self._loss(z, *self._node_data(i)) for i in nodes) / len(nodes)
            (g,) = torch.autograd.grad(f, z, create_graph=True)
            (hv,) = torch.autograd.grad(g, z, grad_outputs=v.to(dtype=x.dtype))
        return hv

    def sample_grads(self, x: torch.Tensor, node: int, k: int, generator) -> torch.Tensor:
        """``k`` independent stochastic gradients of node ``node`` at ``x`` (d,): shape (k, d).

        The same draws as :meth:`grad` with ``k`` replicas of ``x`` (for estimating ``sigma2``).
        """
        self._check_x(x)
        k = check_int("k", k, minimum=1)
        node = check_int("node", node, 0, self.n - 1)
        xs = x.reshape(1, 1, self.d).expand(1, k, self.d).contiguous()
        return self.grad(xs, torch.tensor([node]), [generator])[0]

    def to(self, device):
        """A copy of this oracle with its model and data on ``device`` (``self`` if already)."""
        device = torch.device(device)
        if device == self.device:
            return self
        other = copy.copy(self)
        other.model = copy.deepcopy(self.model).to(device)
        other.buffers = {k: v for k, v in other.model.named_buffers()}
        for key in ("X", "y", "offsets", "x0"):
            setattr(other, key, getattr(self, key).to(device))
        other.__dict__.pop("_padded_cache", None)  # the copy's own, on its device
        other.device = device
        return other


def model_oracle(
    model: torch.nn.Module,
    dataset: Dataset,
    n: int,
    *,
    alpha: float | None = None,
    seed: int = 0,
    batch_size: int | None = 16,
    loss=None,
    dtype: torch.dtype = torch.float64,
    device="cpu",
) -> ModelOracle:
    """A :class:`ModelOracle` on ``dataset`` split over ``n`` nodes (:func:`theorylab.data.split`).

    ``alpha=None`` splits iid; ``alpha > 0`` by Dirichlet(alpha) over the labels. ``loss``
    defaults to ``"cross_entropy"`` for classification and ``"half_mse"`` for regression.

    Raises
    ------
    TheorylabError
        The dataset has fewer than ``n`` samples, ``alpha <= 0`` (from the split), or the
        :class:`ModelOracle` checks.

    Examples
    --------
    >>> from theorylab.data import teacher_student
    >>> oracle = model_oracle(mlp([5, 8, 3]), teacher_student(60, 5, num_classes=3), 4, alpha=0.5)
    >>> oracle.n, oracle.d, sum(oracle.sizes)
    (4, 75, 60)
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a theorylab.data.Dataset, got {type(dataset).__name__}")
    parts = split(dataset, n, alpha=alpha, seed=seed)
    if loss is None:
        loss = "cross_entropy" if dataset.task == "classification" else "half_mse"
    return ModelOracle(
        model, loss, dataset.features, dataset.labels, parts, batch_size, dtype=dtype, device=device
    )


def estimate_constants(
    oracle: ModelOracle,
    points,
    x0=None,
    *,
    confidence: float = 0.99,
    num_samples: int = 1000,
    groups: int = 20,
    delta_steps: int = 200,
    L_min_iter: int = 100,
    L_max_iter: int = 500,
    seed: int = 0,
) -> dict[str, estimate.Estimate]:
    """``L``, ``sigma2``, ``zeta2`` and ``delta = f(x0) - f*`` of a :class:`ModelOracle`.

    Through :mod:`theorylab.estimate` on the oracle's exact Hessian-vector products (per node),
    full local gradients and minibatch gradients (the noise the algorithms see):

    * ``L``: :func:`theorylab.estimate.estimate_L` over the nodes and ``points``;
    * ``sigma2``: :func:`theorylab.estimate.estimate_sigma2` (node average, max over points),
      drawn from the ``"data"`` stream of ``seed`` (not the runs' ``"noise"`` stream);
    * ``zeta2``: :func:`theorylab.estimate.estimate_zeta2` (max over points);
    * ``delta`` (only with ``x0``): :func:`theorylab.estimate.estimate_delta` by full-batch
      gradient descent with step ``1 / L.upper`` and the lower bound ``f >= 0`` (both named
      losses are non-negative; a custom loss must be too).

    The confidence is split equally between ``L`` and ``sigma2`` (a union bound), so all
    intervals hold together with probability ``>= confidence``. The sup-over-x constants of
    the theorems are estimated on the given points only (a lower estimate of a sup).

    Parameters
    ----------
    oracle : ModelOracle
    points : torch.Tensor or array, shape (d,) or (P, d)
    x0 : torch.Tensor or array (d,), optional
    confidence : float in (0, 1)
    num_samples, groups : see :func:`theorylab.estimate.estimate_sigma2`
    delta_steps : int, gradient steps of the ``f*`` run
    L_min_iter, L_max_iter : power iterations (see :func:`theorylab.estimate.hessian_norm`)
    seed : int

    Returns
    -------
    dict name -> :class:`theorylab.estimate.Estimate`
    """
    if not isinstance(oracle, ModelOracle):
        raise TypeError(f"oracle must be a ModelOracle, got {type(oracle).__name__}")
    dt, dev = oracle.dtype, oracle.device
    pts = np.atleast_2d(torch.as_tensor(points).detach().cpu().numpy().astype(np.float64))

    def t(z):
        return torch.as_tensor(np.asarray(z), dtype=dt, device=dev)

    def np_(z):
        return z.detach().cpu().double().numpy()

    half = 1.0 - (1.0 - confidence) / 2.0
    hvps = [(lambda z, v, i=i: np_(oracle.hvp(t(z), t(v), node=i))) for i in range(oracle.n)]
    out = {
        "L": estimate.estimate_L(
            hvps, pts, confidence=half, min_iter=L_min_iter, max_iter=L_max_iter, seed=seed
        )
    }
    gens = node_generators(seed, "data", range(oracle.n), dev)

    def sample(z, k):
        return np.stack([np_(oracle.sample_grads(t(z), i, k, gens[i])) for i in range(oracle.n)])

    out["sigma2"] = estimate.estimate_sigma2(
        sample, pts, num_samples=num_samples, groups=groups, confidence=half
    )
    out["zeta2"] = estimate.estimate_zeta2(lambda z: np_(oracle.local_objectives(t(z))[1]), pts)
    if x0 is not None:
        out["delta"] = estimate.estimate_delta(
            lambda z: float(oracle.objective(t(z))[0]),
            torch.as_tensor(x0).detach().cpu().numpy(),
            grad=lambda z: np_(oracle.objective(t(z))[1]),
            L=out["L"].upper,
            steps=delta_steps,
            f_lower=0.0,
        )
    return out
