"""theorylab.directed: directed families, one-sided weights, strong connectivity, Perron vector,
and the biased point of DSGD with row-stochastic weights (against independent computations)."""

from __future__ import annotations

import doctest

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import theorylab.directed as directed
from theorylab.directed import (
    biased_optimum,
    check_column_stochastic,
    check_row_stochastic,
    check_strongly_connected,
    column_stochastic_weights,
    directed_exponential,
    directed_ring,
    dsgd_fixed_point,
    perron_vector,
    random_directed,
    row_stochastic_weights,
)
from theorylab.errors import TheorylabError
from theorylab.exact.pushsum import push_sum_weights
from theorylab.problems import heterogeneous_quadratic
from theorylab.topology import exponential_mixing_matrix


def test_doctest_examples_run():
    assert doctest.testmod(directed, raise_on_error=True).attempted > 0


@pytest.mark.parametrize("n", [3, 5, 8, 16])
def test_directed_ring_weights_and_closed_form_rho(n):
    # topology.md §5: 1/2 self + 1/2 one neighbour, rho = ||W - J||_2 = cos(pi/n)
    P = column_stochastic_weights(directed_ring(n))
    A = row_stochastic_weights(directed_ring(n))
    np.testing.assert_allclose(P, A)  # circulant: both sides uniform, doubly stochastic
    np.testing.assert_allclose(P.sum(0), 1.0)
    np.testing.assert_allclose(P.sum(1), 1.0)
    rho = np.linalg.norm(P - np.full((n, n), 1 / n), 2)
    assert rho == pytest.approx(np.cos(np.pi / n), abs=1e-12)


@pytest.mark.parametrize("n", [4, 6, 8, 12, 16])
def test_directed_exponential_is_the_transpose_of_the_receive_form(n):
    # exponential_mixing_matrix: i receives from i + 2^k; here i sends to i + 2^k
    P = column_stochastic_weights(directed_exponential(n))
    np.testing.assert_allclose(P, exponential_mixing_matrix(n).T, atol=1e-15)
    tau = int(np.ceil(np.log2(n)))
    assert all(directed_exponential(n).out_degree(i) == tau for i in range(n))


def test_random_directed_is_strongly_connected_and_not_regular():
    G = random_directed(12, 2, seed=3)
    assert nx.is_strongly_connected(G)
    assert all(G.out_degree(i) == 3 for i in range(12))
    A = row_stochastic_weights(G)
    np.testing.assert_allclose(A.sum(1), 1.0)
    assert np.abs(A.sum(0) - 1).max() > 0.1  # not doubly stochastic
    P = column_stochastic_weights(G)
    np.testing.assert_allclose(P.sum(0), 1.0)
    assert random_directed(12, 2, seed=3).edges() == G.edges()  # seeded


def test_sparse_weights_equal_dense():
    G = random_directed(9, 2, seed=1)
    np.testing.assert_allclose(column_stochastic_weights(G, sparse=True).toarray(),
                               column_stochastic_weights(G))  # fmt: skip
    np.testing.assert_allclose(perron_vector(row_stochastic_weights(G, sparse=True)),
                               perron_vector(row_stochastic_weights(G)), atol=1e-14)  # fmt: skip


def test_perron_vector_against_the_power_method_and_push_sum_weights():
    A = row_stochastic_weights(random_directed(10, 2, seed=0))
    pi = perron_vector(A)
    power = np.linalg.matrix_power(A, 4000)[0]  # rows of A^k -> pi^T (A primitive: self-loops)
    np.testing.assert_allclose(pi, power, atol=1e-12)
    np.testing.assert_allclose(pi @ A, pi, atol=1e-14)
    assert np.all(pi > 0) and pi.sum() == pytest.approx(1.0)
    # push-sum weights w^k = P^k 1 -> n * right Perron vector of P
    P = column_stochastic_weights(random_directed(10, 2, seed=0))
    w = push_sum_weights([P], 4000)[-1]
    np.testing.assert_allclose(w, 10 * perron_vector(P.T), atol=1e-10)


def test_perron_vector_is_uniform_for_doubly_stochastic_weights():
    np.testing.assert_allclose(perron_vector(column_stochastic_weights(directed_exponential(12))),
                               np.full(12, 1 / 12), atol=1e-14)  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 12), extra=st.integers(0, 1), seed=st.integers(0, 1000))
def test_property_weights_are_one_sided_stochastic_and_pi_stationary(n, extra, seed):
    G = random_directed(n, extra, seed=seed)
    P, A = column_stochastic_weights(G), row_stochastic_weights(G)
    assert np.all(P >= 0) and np.all(A >= 0)
    np.testing.assert_allclose(P.sum(0), 1.0, atol=1e-14)
    np.testing.assert_allclose(A.sum(1), 1.0, atol=1e-14)
    assert np.array_equal(P != 0, A != 0)  # the same support: the graph's edges and self-loops
    pi = perron_vector(A)
    np.testing.assert_allclose(pi @ A, pi, atol=1e-13)
    assert np.all(pi > 0)


def test_biased_optimum_is_the_weighted_minimiser():
    p = heterogeneous_quadratic(8, 3, diagonal=False, sigma2=0.0, seed=2)
    A = row_stochastic_weights(random_directed(8, 1, seed=0))
    pi = perron_vector(A)
    xb = biased_optimum(p, A)
    grad = np.einsum("i,ijk,ik->j", pi, p.A, xb[None, :] - p.b)  # sum_i pi_i A_i (x - b_i)
    np.testing.assert_allclose(grad, 0.0, atol=1e-12)
    assert np.linalg.norm(xb - p.x_star) > 0.05  # biased away from x*
    W_ds = column_stochastic_weights(directed_ring(8))  # doubly stochastic: pi = 1/n
    np.testing.assert_allclose(biased_optimum(p, W_ds), p.x_star, atol=1e-12)


@pytest.mark.parametrize("form", ["atc", "cta"])
def test_dsgd_fixed_point_solves_its_equation_and_tends_to_the_biased_point(form):
    p = heterogeneous_quadratic(6, 2, diagonal=False, sigma2=0.0, seed=1)
    A = row_stochastic_weights(random_directed(6, 1, seed=2))
    gamma = 0.05
    x = dsgd_fixed_point(p, A, gamma, form)
    g = np.einsum("ijk,ik->ij", p.A, x - p.b)
    rhs = A @ (x - gamma * g) if form == "atc" else A @ x - gamma * g
    np.testing.assert_allclose(x, rhs, atol=1e-12)
    # gamma -> 0: the pi-weighted average tends to x_pi* (distance O(gamma))
    pi, xb = perron_vector(A), biased_optimum(p, A)
    dist = [np.linalg.norm(pi @ dsgd_fixed_point(p, A, g_, form) - xb) for g_ in (1e-2, 1e-3)]
    assert dist[1] < 0.2 * dist[0] and dist[1] < 1e-2


def test_not_strongly_connected_is_named():
    G = nx.DiGraph([(0, 1), (1, 2), (2, 1)])  # 0 is a source nobody reaches
    with pytest.raises(TheorylabError, match="not strongly connected.*node 0 cannot be reached"):
        check_strongly_connected(G)
    with pytest.raises(TheorylabError, match="not strongly connected"):
        column_stochastic_weights(G)
    W = np.array([[1.0, 0.0], [0.5, 0.5]])  # node 1 never sends to node 0
    with pytest.raises(TheorylabError, match="node 0 cannot be reached from node 1"):
        perron_vector(W)


def test_swapped_orientation_is_named():
    A = row_stochastic_weights(random_directed(6, 1, seed=0))
    P = column_stochastic_weights(random_directed(6, 1, seed=0))
    with pytest.raises(TheorylabError, match="column-stochastic .*push-sum.* matrix"):
        check_row_stochastic(P)
    with pytest.raises(TheorylabError, match="rows sum to 1: this is a row-stochastic"):
        check_column_stochastic(A)
    with pytest.raises(TheorylabError, match="negative"):
        check_row_stochastic([[1.5, -0.5], [0.5, 0.5]])
    with pytest.raises(TheorylabError, match="n >= 3|must be >= 3"):
        random_directed(2)
