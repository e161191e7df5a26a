"""Datasets without downloads, and their split across ``n`` nodes (iid or Dirichlet over labels).

Two sources, both built in memory:

* :func:`teacher_student` (the default): a seeded random two-layer ``tanh`` network (the
  teacher) labels standard Gaussian inputs, for classification (``argmax`` of its outputs) or
  regression (its outputs plus Gaussian label noise); any size.
* :func:`digits`: scikit-learn's bundled 8x8 handwritten digits (1797 samples, 10 classes),
  shipped inside the scikit-learn wheel, so nothing is downloaded (optional extra
  ``theorylab[data]``).

:func:`split` assigns the samples to nodes: ``alpha=None`` shuffles and cuts into near-equal
parts (iid); ``alpha > 0`` draws, for each label (stratum) ``c``, node proportions
``p_c ~ Dirichlet(alpha 1_n)`` and deals the samples of ``c`` to nodes by those proportions
(Hsu, Qi, Brown 2019): small ``alpha`` gives nodes dominated by few labels (high heterogeneity
``zeta2``), large ``alpha`` approaches the iid split. Every node receives at least one sample.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from theorylab.errors import TheorylabError, check_int, check_positive

__all__ = ["Dataset", "teacher_student", "digits", "split"]

_TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Dataset:
    """Features and labels in memory.

    Attributes
    ----------
    features : numpy.ndarray, shape (N, d_in), float64
    labels : numpy.ndarray
        ``(N,)`` int64 class ids in ``[0, num_classes)`` (classification) or ``(N, d_out)``
        float64 targets (regression).
    task : {"classification", "regression"}
    num_classes : int
        Number of classes (classification) or output dimension ``d_out`` (regression).
    strata : numpy.ndarray, shape (N,), int64
        The discrete label each sample is split by (:func:`split`): the class id, or for
        regression the decile of the first target coordinate.
    name : str
    """

    features: np.ndarray
    labels: np.ndarray
    task: str
    num_classes: int
    strata: np.ndarray
    name: str = ""

    def __len__(self) -> int:
        return int(self.features.shape[0])


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _deciles(values: np.ndarray, bins: int = 10) -> np.ndarray:
    """Quantile bin (0..bins-1) of each value."""
    edges = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right").astype(np.int64)


def teacher_student(
    num_samples: int,
    d_in: int = 10,
    *,
    task: str = "classification",
    num_classes: int = 4,
    hidden: int = 32,
    label_noise: float = 0.1,
    seed: int = 0,
) -> Dataset:
    r"""A random network labels Gaussian inputs (teacher-student task), seeded.

    The math: inputs ``a_j ~ N(0, I_{d_in})``; teacher
    ``t(a) = W_2 tanh(W_1 a + b_1)`` with ``W_1 ~ N(0, 1/d_in)`` (hidden x d_in),
    ``b_1 ~ N(0, 0.1^2)``, ``W_2 ~ N(0, 1/hidden)`` (k x hidden). Classification:
    ``y_j = argmax_c t(a_j)_c`` (``k = num_classes``); regression:
    ``y_j = t(a_j) + label_noise * N(0, I_k)`` (``k = num_classes`` output coordinates).

    Parameters
    ----------
    num_samples : int >= 1
    d_in : int >= 1
    task : {"classification", "regression"}
    num_classes : int >= 2 (classification) or >= 1 (regression: the output dimension)
    hidden : int >= 1
    label_noise : float >= 0 (regression only)
    seed : int >= 0
        Seeds a numpy Generator; the same seed gives the same dataset.

    Returns
    -------
    Dataset

    Raises
    ------
    TheorylabError, TypeError
        Sizes out of range, unknown ``task``, negative ``label_noise``.

    Examples
    --------
    >>> data = teacher_student(100, 5, num_classes=3, seed=1)
    >>> data.features.shape, data.labels.shape, data.num_classes
    ((100, 5), (100,), 3)
    """
    N = check_int("num_samples", num_samples, minimum=1)
    d_in = check_int("d_in", d_in, minimum=1)
    hidden = check_int("hidden", hidden, minimum=1)
    if task not in _TASKS:
        raise TheorylabError(f"task must be one of {_TASKS}, got {task!r}")
    k = check_int("num_classes", num_classes, minimum=2 if task == "classification" else 1)
    label_noise = check_positive("label_noise", label_noise, allow_zero=True)
    rng = np.random.default_rng(_seed(seed))
    W1 = rng.standard_normal((hidden, d_in)) / np.sqrt(d_in)
    b1 = 0.1 * rng.standard_normal(hidden)
    W2 = rng.standard_normal((k, hidden)) / np.sqrt(hidden)
    a = rng.standard_normal((N, d_in))
    out = np.tanh(a @ W1.T + b1) @ W2.T
    if task == "classification":
        labels = np.argmax(out, axis=1).astype(np.int64)
        strata = labels
    else:
        labels = out + label_noise * rng.standard_normal(out.shape)
        strata = _deciles(labels[:, 0])
    return Dataset(a, labels, task, k, strata, name=f"teacher_student/{task}")


def digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 samples, 64 features scaled to [0, 1], 10 classes).

    The data ship inside the scikit-learn wheel (``sklearn.datasets.load_digits``): nothing is
    downloaded. Needs the optional extra ``pip install theorylab[data]``.

    Returns
    -------
    Dataset
        Classification, ``num_classes = 10``.

    Raises
    ------
    ImportError
        If scikit-learn is not installed (the message says how to install it).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "theorylab.data.digits needs scikit-learn (it ships the digits inside its wheel); "
            "install it with `pip install theorylab[data]` or `pip install scikit-learn`"
        ) from exc
    raw = load_digits()
    features = np.asarray(raw.data, dtype=np.float64) / 16.0
    labels = np.asarray(raw.target, dtype=np.int64)
    return Dataset(features, labels, "classification", 10, labels, name="sklearn/digits")


def split(dataset_or_strata, n: int, *, alpha: float | None = None, seed: int = 0) -> list:
    r"""Indices of each node's samples: iid (``alpha=None``) or Dirichlet(``alpha``) over labels.

    The math (``alpha > 0``): for each stratum (label) ``c`` with samples ``S_c`` (shuffled),
    draw ``p_c ~ Dirichlet(alpha, ..., alpha)`` over the ``n`` nodes and give node ``i`` the
    next ``round(cumsum(p_c))`` slice of ``S_c``. Nodes left empty then receive one sample
    each from the currently largest node (so every node is non-empty). ``alpha -> infinity``
    tends to proportional (iid-like) splits; ``alpha -> 0`` to one label per node.
    ``alpha=None``: a random permutation cut into ``n`` parts of sizes ``floor(N/n)`` or
    ``ceil(N/n)``.

    Parameters
    ----------
    dataset_or_strata : Dataset or array of int, shape (N,)
        A :class:`Dataset` (its ``strata`` are used) or the discrete labels themselves.
    n : int >= 1
        Number of nodes; needs ``N >= n``.
    alpha : float > 0 or None
        Dirichlet concentration; ``None`` for the iid split.
    seed : int >= 0

    Returns
    -------
    list of n numpy int64 arrays
        Disjoint, sorted, non-empty, together ``0..N-1``.

    Raises
    ------
    TheorylabError
        If the dataset has fewer than ``n`` samples, or ``alpha <= 0``.

    Examples
    --------
    >>> parts = split(np.array([0, 0, 1, 1, 1]), 2, alpha=0.5, seed=0)
    >>> sorted(np.concatenate(parts).tolist())
    [0, 1, 2, 3, 4]
    >>> min(len(p) for p in parts) >= 1
    True
    """
    strata = (
        dataset_or_strata.strata if isinstance(dataset_or_strata, Dataset) else dataset_or_strata
    )
    strata = np.asarray(strata)
    if strata.ndim != 1 or not np.issubdtype(strata.dtype, np.integer):
        raise TheorylabError(
            f"split needs a Dataset or a 1-d integer label array, got shape {strata.shape} and "
            f"dtype {strata.dtype}"
        )
    n = check_int("n", n, minimum=1)
    N = strata.shape[0]
    if N < n:
        raise TheorylabError(
            f"the dataset has {N} samples, fewer than n = {n} nodes; every node needs at least "
            "one sample: use a larger dataset or fewer nodes"
        )
    if alpha is not None:
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
            raise TheorylabError(
                f"alpha (the Dirichlet concentration) must be a real number > 0, got {alpha!r}; "
                "use alpha=None for the iid split"
            )
        alpha = check_positive("alpha", alpha)
    rng = np.random.default_rng(_seed(seed))
    if alpha is None:
        perm = rng.permutation(N)
        return [np.sort(part).astype(np.int64) for part in np.array_split(perm, n)]
    parts: list[list[np.ndarray]] = [[] for _ in range(n)]
    for c in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == c))
        p = rng.dirichlet(np.full(n, alpha))
        cuts = np.round(np.cumsum(p)[:-1] * members.size).astype(np.int64)
        for i, chunk in enumerate(np.split(members, cuts)):
            parts[i].append(chunk)
    out = [np.concatenate(chunks).astype(np.int64) for chunks in parts]
    for i in range(n):
        if out[i].size == 0:
            donor = int(np.argmax([len(p) for p in out]))
            take = rng.integers(out[donor].size)
            out[i] = out[donor][take : take + 1]
            out[donor] = np.delete(out[donor], take)
    return [np.sort(p) for p in out]
