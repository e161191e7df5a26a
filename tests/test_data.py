"""theorylab.data: seeded datasets without downloads and the iid / Dirichlet split."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theorylab.data import Dataset, digits, split, teacher_student
from theorylab.errors import TheorylabError


def test_teacher_student_classification_seeded():
    a = teacher_student(200, 6, num_classes=4, hidden=16, seed=5)
    b = teacher_student(200, 6, num_classes=4, hidden=16, seed=5)
    c = teacher_student(200, 6, num_classes=4, hidden=16, seed=6)
    assert a.features.shape == (200, 6) and a.labels.shape == (200,)
    assert a.labels.dtype == np.int64 and set(np.unique(a.labels)) <= set(range(4))
    assert len(np.unique(a.labels)) >= 2
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.features, c.features)
    assert np.array_equal(a.strata, a.labels) and len(a) == 200


def test_teacher_student_labels_are_the_teachers_argmax():
    # an independent re-computation of the teacher from the documented draw order
    data = teacher_student(50, 3, num_classes=3, hidden=5, seed=2)
    rng = np.random.default_rng(2)
    W1 = rng.standard_normal((5, 3)) / np.sqrt(3)
    b1 = 0.1 * rng.standard_normal(5)
    W2 = rng.standard_normal((3, 5)) / np.sqrt(5)
    a = rng.standard_normal((50, 3))
    np.testing.assert_array_equal(data.features, a)
    np.testing.assert_array_equal(data.labels, np.argmax(np.tanh(a @ W1.T + b1) @ W2.T, axis=1))


def test_teacher_student_regression():
    data = teacher_student(300, 4, task="regression", num_classes=2, label_noise=0.0, seed=1)
    assert data.labels.shape == (300, 2) and data.labels.dtype == np.float64
    assert data.task == "regression" and data.num_classes == 2
    # strata are the deciles of the first output: 10 nearly equal bins
    counts = np.bincount(data.strata, minlength=10)
    assert counts.size == 10 and counts.min() >= 25


def _check_partition(parts, N, n):
    assert len(parts) == n
    assert all(p.size >= 1 for p in parts)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(N))


def test_iid_split_is_balanced_and_seeded():
    data = teacher_student(103, 2, seed=0)
    parts = split(data, 10, seed=3)
    _check_partition(parts, 103, 10)
    assert {p.size for p in parts} <= {10, 11}
    again = split(data, 10, seed=3)
    assert all(np.array_equal(p, q) for p, q in zip(parts, again))


def _label_skew(labels, parts, k):
    """Mean total-variation distance between each node's label distribution and the global one."""
    glob = np.bincount(labels, minlength=k) / labels.size
    tv = [0.5 * np.abs(np.bincount(labels[p], minlength=k) / p.size - glob).sum() for p in parts]
    return float(np.mean(tv))


def test_dirichlet_concentration_controls_heterogeneity():
    data = teacher_student(4000, 5, num_classes=4, seed=0)
    skew = {
        alpha: _label_skew(data.labels, split(data, 8, alpha=alpha, seed=1), 4)
        for alpha in (0.05, 1.0, 1000.0)
    }
    assert skew[0.05] > skew[1.0] > skew[1000.0]
    assert skew[1000.0] < 0.05  # alpha -> infinity: proportional shares
    assert skew[0.05] > 0.4  # alpha -> 0: nodes dominated by few labels


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 12),
    extra=st.integers(0, 40),
    k=st.integers(1, 5),
    alpha=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**31),
)
def test_dirichlet_split_is_a_partition_with_nonempty_nodes(n, extra, k, alpha, seed):
    N = n + extra
    labels = np.random.default_rng(seed).integers(0, k, size=N)
    parts = split(labels, n, alpha=alpha, seed=seed)
    _check_partition(parts, N, n)
    again = split(labels, n, alpha=alpha, seed=seed)
    assert all(np.array_equal(p, q) for p, q in zip(parts, again))


def test_bad_input_names_the_value():
    labels = np.zeros(5, dtype=np.int64)
    with pytest.raises(TheorylabError, match="5 samples, fewer than n = 8"):
        split(labels, 8)
    with pytest.raises(TheorylabError, match="5 samples, fewer than n = 8"):
        split(labels, 8, alpha=0.5)
    for alpha in (0.0, -1.0, float("nan")):
        with pytest.raises(TheorylabError, match=r"alpha .* > 0, got"):
            split(labels, 2, alpha=alpha)
    with pytest.raises(TheorylabError, match="integer label"):
        split(np.zeros(5), 2)
    with pytest.raises(TheorylabError, match="task"):
        teacher_student(10, task="ranking")
    with pytest.raises(TheorylabError, match="num_classes"):
        teacher_student(10, num_classes=1)


def test_digits_ships_with_sklearn():
    pytest.importorskip("sklearn", reason="scikit-learn (optional extra theorylab[data]) absent")
    data = digits()
    assert isinstance(data, Dataset)
    assert data.features.shape == (1797, 64) and data.num_classes == 10
    assert 0.0 <= data.features.min() and data.features.max() <= 1.0
    assert set(np.unique(data.labels)) == set(range(10))
    parts = split(data, 16, alpha=0.1, seed=0)
    _check_partition(parts, 1797, 16)


def test_doctest_examples_run():
    import doctest

    import theorylab.data

    assert doctest.testmod(theorylab.data, raise_on_error=True).attempted > 0
