"""Gradient oracles: exact gradients against theorylab.problems, noise law, per-node draws."""

from __future__ import annotations

import doctest
import math
import pickle

import numpy as np
import pytest
import torch
from scipy import stats

import verify.counter_rng as counter_rng
import verify.oracles as oracles
from theorylab.compressors import _splitmix64
from theorylab.errors import TheorylabError
from theorylab.problems import heterogeneous_quadratic, logistic_regression
from verify.comm import GradientOracle
from verify.oracles import LogisticOracle, QuadraticOracle
from verify.run import run_distributed, run_simulated
from verify.seeding import node_generators
from verify.tasks import quadratic_setup


def test_doctest_examples_run():
    assert doctest.testmod(oracles, raise_on_error=True).attempted > 0


def test_protocol():
    p = heterogeneous_quadratic(3, 2, seed=0)
    assert isinstance(QuadraticOracle(p), GradientOracle)
    assert isinstance(
        LogisticOracle(logistic_regression(2, 5, 3, seed=0, tol=1e-9), 2), GradientOracle
    )


@pytest.mark.parametrize("diagonal", [True, False])
def test_noise_free_quadratic_gradient_equals_problem_gradient(diagonal):
    n, d, R = 4, 5, 3
    p = heterogeneous_quadratic(n, d, sigma2=0.0, diagonal=diagonal, seed=1)
    oracle = QuadraticOracle(p)
    assert (oracle.h is not None) == diagonal
    np.testing.assert_allclose(oracle.x_star.numpy(), p.x_star, rtol=0, atol=1e-12)
    X = np.random.default_rng(0).standard_normal((n, R, d))
    g = oracle.grad(torch.from_numpy(X), torch.arange(n), [None] * n).numpy()
    for r in range(R):
        np.testing.assert_allclose(g[:, r], p.grad(X[:, r]), rtol=1e-13, atol=1e-13)
    # a subset of nodes, in any order, sees its own A_i and b_i
    sub = oracle.grad(torch.from_numpy(X[[2, 0]]), torch.tensor([2, 0]), [None, None]).numpy()
    np.testing.assert_allclose(sub, g[[2, 0]], rtol=0, atol=1e-15)


def test_noise_uses_the_documented_draw_order_and_each_node_its_own_generator():
    n, d, R, sigma2 = 3, 4, 2, 2.5
    p = heterogeneous_quadratic(n, d, sigma2=sigma2, seed=2)
    oracle = QuadraticOracle(p)
    x = torch.zeros(n, R, d, dtype=torch.float64)
    g = oracle.grad(x, torch.arange(n), node_generators(7, "noise", range(n)))
    clean = QuadraticOracle(heterogeneous_quadratic(n, d, sigma2=0.0, seed=2))
    g0 = clean.grad(x, torch.arange(n), [None] * n)
    for i, gen in enumerate(node_generators(7, "noise", range(n))):
        noise = torch.randn((R, d), generator=gen, dtype=torch.float64) * math.sqrt(sigma2 / d)
        torch.testing.assert_close(g[i], g0[i] + noise, rtol=0, atol=1e-15)
        # node i alone (a distributed rank) draws exactly the same numbers
        alone = oracle.grad(x[i : i + 1], torch.tensor([i]), node_generators(7, "noise", [i]))
        assert torch.equal(alone[0], g[i])


def test_noise_has_mean_zero_and_second_moment_sigma2():
    # ||xi||^2 = (sigma2/d) chi2_d: mean sigma2, variance 2 sigma2^2 / d. With N = 20000 draws
    # the sample mean's std is sigma2 sqrt(2/(d N)); a 5-std band fails with probability
    # < 1e-6 (CLT). Each coordinate's mean has std sqrt(sigma2/(d N)); 5 std over d = 5
    # coordinates fails with probability < 5e-6. Seeds are fixed, so the test is deterministic.
    d, N, sigma2 = 5, 20000, 3.0
    p = heterogeneous_quadratic(2, d, sigma2=sigma2, seed=3)
    oracle = QuadraticOracle(p)
    x = torch.from_numpy(np.broadcast_to(p.b[0], (1, N, d)).copy())  # grad f_0 = 0 here
    xi = oracle.grad(x, torch.tensor([0]), node_generators(11, "noise", [0]))[0]
    sq = (xi**2).sum(dim=1)
    assert abs(float(sq.mean()) - sigma2) < 5 * sigma2 * math.sqrt(2 / (d * N))
    assert float(xi.mean(dim=0).abs().max()) < 5 * math.sqrt(sigma2 / (d * N))


def test_zero_noise_draws_nothing():
    p = heterogeneous_quadratic(2, 3, sigma2=0.0, seed=0)
    gens = node_generators(1, "noise", range(2))
    before = [g.get_state() for g in gens]
    QuadraticOracle(p).grad(torch.zeros(2, 1, 3, dtype=torch.float64), torch.arange(2), gens)
    assert all(torch.equal(a, g.get_state()) for a, g in zip(before, gens))


def test_logistic_full_gradient_equals_problem_gradient():
    p = logistic_regression(3, 20, 4, reg=0.1, seed=0)
    oracle = LogisticOracle(p)
    np.testing.assert_allclose(oracle.x_star.numpy(), p.x_star)
    x = np.random.default_rng(1).standard_normal(4)
    X = torch.from_numpy(np.broadcast_to(x, (3, 2, 4)).copy())
    g = oracle.grad(X, torch.arange(3), [None] * 3).numpy()
    np.testing.assert_allclose(g[:, 0], p.grad(x), rtol=1e-12, atol=1e-14)
    # at x* the full local gradients average to ~0
    Xs = torch.from_numpy(np.broadcast_to(p.x_star, (3, 1, 4)).copy())
    gs = oracle.grad(Xs, torch.arange(3), [None] * 3)
    assert float(gs.mean(dim=0).norm()) < 1e-10


def test_logistic_minibatch_gradient_is_unbiased():
    # R = 4000 independent minibatches of B = 2 with replacement: the mean of each coordinate is
    # within 5 estimated standard errors of the full gradient (false failure < 6e-7 per
    # coordinate by the CLT; 12 coordinates -> < 1e-5). Fixed seeds: deterministic.
    p = logistic_regression(3, 10, 4, reg=0.05, seed=4)
    R = 4000
    oracle = LogisticOracle(p, batch_size=2)
    x = np.random.default_rng(2).standard_normal(4)
    X = torch.from_numpy(np.broadcast_to(x, (3, R, 4)).copy())
    g = oracle.grad(X, torch.arange(3), node_generators(3, "noise", range(3)))
    full = p.grad(x)
    mean, se = g.mean(dim=1).numpy(), (g.std(dim=1) / math.sqrt(R)).numpy()
    assert np.all(np.abs(mean - full) < 5 * se + 1e-12)
    # node i alone draws the same minibatches
    alone = oracle.grad(X[1:2], torch.tensor([1]), node_generators(3, "noise", [1]))
    assert torch.equal(alone[0], g[1])


def test_invalid_inputs():
    p = heterogeneous_quadratic(2, 3, seed=0)
    oracle = QuadraticOracle(p)
    with pytest.raises(TheorylabError, match="d = 3"):
        oracle.grad(torch.zeros(2, 1, 4, dtype=torch.float64), torch.arange(2), [None] * 2)
    with pytest.raises(TypeError, match="dtype"):
        oracle.grad(torch.zeros(2, 1, 3), torch.arange(2), [None] * 2)
    with pytest.raises(TheorylabError, match="generator"):
        oracle.grad(torch.zeros(2, 1, 3, dtype=torch.float64), torch.arange(2), [None])
    with pytest.raises(TheorylabError, match="node ids"):
        oracle.grad(torch.zeros(1, 1, 3, dtype=torch.float64), torch.tensor([5]), [None])
    with pytest.raises(TheorylabError, match="batch_size"):
        LogisticOracle(logistic_regression(2, 5, 3, seed=0, tol=1e-9), batch_size=0)


# -- noise="counter": counter-based draws (verify.counter_rng) -----------------------------------

_M64 = (1 << 64) - 1


def _h_reference(z: int) -> int:
    """SplitMix64's finaliser on Python ints (unsigned 64-bit), top 63 bits: an implementation
    independent of the int64 torch one (no sign or shift subtleties)."""
    z &= _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return (z ^ (z >> 31)) >> 1


def _word_reference(key: int, t: int, c: int) -> int:
    G = 0x9E3779B97F4A7C15
    E = _h_reference((c + 1) * G)
    K = _h_reference(_h_reference(key ^ 0xBF58476D1CE4E5B9) + (t + 1) * G)
    return _h_reference(E ^ K)


def test_counter_rng_doctests_run():
    assert doctest.testmod(counter_rng, raise_on_error=True).attempted > 0


def test_counter_words_match_a_python_integer_reference():
    keys = [0, 1, 7, (1 << 63) - 1, 2**62 + 12345]  # includes the largest 63-bit seed
    for t in (0, 1, 1000):
        got = counter_rng.counter_words(
            torch.tensor(keys, dtype=torch.int64), t, counter_rng.index_words(5)
        )
        want = [[_word_reference(k, t, c) for c in range(5)] for k in keys]
        assert got.tolist() == want
    # the in-place mixer equals the shared out-of-place one on full-range inputs
    z = torch.randint(-(2**63), 2**63 - 1, (1000,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(counter_rng._mix_(z.clone(), torch.empty_like(z)), _splitmix64(z))


def _counter_normals(nodes: int, t: int, count: int) -> torch.Tensor:
    keys = counter_rng.node_keys(node_generators(5, "noise", range(nodes)))
    return counter_rng.counter_normal(keys, t, counter_rng.index_words(count))


def test_counter_normals_are_standard_normal():
    # N = 2^20 draws (16 nodes x 65536). Under N(0, 1): the sample mean has std 1/sqrt(N) and the
    # sample variance std sqrt(2/N); 5-std bands fail with probability < 6e-7 each. The KS test
    # at level 1e-6 fails with probability 1e-6. Fixed keys: the test is deterministic.
    z = _counter_normals(16, 0, 65536).flatten()
    N = z.numel()
    assert abs(float(z.mean())) < 5 / math.sqrt(N)
    assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / N)
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-6
    assert float(z.abs().max()) < 8.3  # the documented truncation (u on a 2^-52 grid)


def test_counter_normals_are_uncorrelated_across_nodes_replicas_calls_and_indices():
    # Each sample correlation of L = 32768 independent pairs is ~N(0, 1/L); |r| < 5/sqrt(L)
    # fails with probability < 6e-7 per pair; the ~200 pairs below: < 1.2e-4 by a union bound.
    # Keys of consecutive seeds and consecutive calls are the adversarial case for a hash.
    L = 32768
    bound = 5 / math.sqrt(L)
    z = _counter_normals(8, 0, 2 * L)  # two "replicas" of L coordinates per node
    rows = torch.cat([z[:, :L], z[:, L:]])  # 16 streams: 8 nodes x 2 replicas
    corr = torch.corrcoef(rows)
    off = corr[~torch.eye(16, dtype=torch.bool)]
    assert float(off.abs().max()) < bound
    later = _counter_normals(8, 1, 2 * L)  # the next call
    for i in range(8):
        assert abs(float(torch.corrcoef(torch.stack([z[i], later[i]]))[0, 1])) < bound
        for lag in (1, 2, 64):  # within a stream
            a, b = z[i, :-lag], z[i, lag:]
            assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < bound
    # dependence beyond linear: the squares of different nodes are uncorrelated too (same bound:
    # a sample correlation of independent pairs is ~N(0, 1/L) whatever the law)
    sq = torch.corrcoef(z[:, :L] ** 2)
    assert float(sq[~torch.eye(8, dtype=torch.bool)].abs().max()) < bound


def _counter_quadratic(n=5, d=7, sigma2=2.0, **kw):
    return QuadraticOracle(
        heterogeneous_quadratic(n, d, sigma2=sigma2, seed=0), noise="counter", **kw
    )


def test_counter_noise_is_the_same_stacked_and_one_node_at_a_time():
    n, d, R, steps = 5, 7, 3, 3
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((n, R, d)))
    stacked = _counter_quadratic(n, d)
    gens = node_generators(3, "noise", range(n))
    before = [g.get_state() for g in gens]
    g_all = [stacked.grad(x, torch.arange(n), gens) for _ in range(steps)]
    assert all(torch.equal(a, g.get_state()) for a, g in zip(before, gens))  # nothing drawn
    assert not torch.equal(g_all[0], g_all[1])  # each call draws anew
    for i in range(n):  # a rank: a fresh copy of the oracle and node i's generator only
        alone = pickle.loads(pickle.dumps(stacked))
        gi = node_generators(3, "noise", [i])
        for t in range(steps):
            assert torch.equal(alone.grad(x[i : i + 1], torch.tensor([i]), gi)[0], g_all[t][i])
    # the law: noise = g - clean has E||xi||^2 = sigma2 (checked loosely; exact law above)
    clean = QuadraticOracle(heterogeneous_quadratic(n, d, sigma2=0.0, seed=0))
    xi = g_all[0] - clean.grad(x, torch.arange(n), [None] * n)
    scale = math.sqrt(2.0 / d)
    z = counter_rng.counter_normal(
        counter_rng.node_keys(gens), 0, counter_rng.index_words(R * d)
    ).view(n, R, d)
    torch.testing.assert_close(xi, z * scale, rtol=0, atol=1e-14)


def test_counter_noise_is_deterministic_and_restarts_per_run():
    n, d = 3, 4
    x = torch.zeros(n, 2, d, dtype=torch.float64)
    ids = torch.arange(n)

    def run(oracle, seed, calls=3, gens=None):
        gens = gens or node_generators(seed, "noise", range(n))
        return [oracle.grad(x, ids, gens) for _ in range(calls)]

    a, b = _counter_quadratic(n, d), _counter_quadratic(n, d)
    first = run(a, 1)
    assert all(torch.equal(u, v) for u, v in zip(first, run(b, 1)))  # fresh objects agree
    assert all(torch.equal(u, v) for u, v in zip(first, run(a, 1)))  # new generators: t = 0
    assert not torch.equal(first[0], run(a, 2, 1)[0])  # another seed, other numbers
    gens = node_generators(1, "noise", range(n))
    run(a, 1, 2, gens)
    a.reset()  # same generators, but the count restarts
    assert torch.equal(run(a, 1, 1, gens)[0], first[0])
    assert torch.equal(run(a, 1, 1, list(gens))[0], first[1])  # a copy of the list: same run
    # float32 draws the same normals, rounded once
    c = _counter_quadratic(n, d, dtype=torch.float32)
    g32 = c.grad(x.float(), ids, node_generators(1, "noise", range(n)))
    torch.testing.assert_close(g32, first[0].float(), rtol=0, atol=1e-6)


def test_logistic_counter_minibatches():
    p = logistic_regression(3, 10, 4, reg=0.05, seed=4)
    R = 4000
    oracle = LogisticOracle(p, batch_size=2, noise="counter")
    x = np.random.default_rng(2).standard_normal(4)
    X = torch.from_numpy(np.broadcast_to(x, (3, R, 4)).copy())
    gens = node_generators(3, "noise", range(3))
    g = oracle.grad(X, torch.arange(3), gens)
    # unbiased, as for the generator mode (same bound and false-failure probability, < 1e-5)
    mean, se = g.mean(dim=1).numpy(), (g.std(dim=1) / math.sqrt(R)).numpy()
    assert np.all(np.abs(mean - p.grad(x)) < 5 * se + 1e-12)
    alone = LogisticOracle(p, batch_size=2, noise="counter")
    assert torch.equal(alone.grad(X[1:2], torch.tensor([1]), [gens[1]])[0], g[1])
    # indices uniform on [0, 10): chi-square with 9 dof over 3 * 4000 * 2 draws at level 1e-6
    idx = counter_rng.counter_randint(
        counter_rng.node_keys(gens), 0, 10, counter_rng.index_words(2 * R)
    )
    counts = torch.bincount(idx.flatten(), minlength=10).numpy()
    assert stats.chisquare(counts).pvalue > 1e-6


def test_counter_noise_invalid_inputs():
    p = heterogeneous_quadratic(2, 3, seed=0)
    with pytest.raises(TheorylabError, match="noise must be one of"):
        QuadraticOracle(p, noise="philox")
    with pytest.raises(TypeError, match="torch.Generator"):
        QuadraticOracle(p, noise="counter").grad(
            torch.zeros(2, 1, 3, dtype=torch.float64), torch.arange(2), [None, None]
        )
    with pytest.raises(TheorylabError, match="2\\^-40"):
        counter_rng.counter_randint(torch.tensor([0]), 0, 1 << 23, counter_rng.index_words(1))


@pytest.mark.distributed
def test_counter_noise_same_trajectory_on_both_executors(pool):
    # the session's 2-rank gloo pool (tests/conftest.py); DSGD with noisy gradients, 5 steps
    algorithm, _, schedule, x0 = quadratic_setup(2, algorithm="dsgd", d=3, replicas=2, sigma2=0.5)
    hq = heterogeneous_quadratic
    oracle = QuadraticOracle(hq(2, 3, zeta2=1.0, sigma2=0.5, seed=0), noise="counter")
    record = [0, 1, 3, 5]
    sim = run_simulated(algorithm, oracle, schedule, x0, 5, 3, record)
    ranks = pool.run(run_distributed, algorithm, oracle, schedule, x0, 5, 3, record)
    for traj in ranks:
        for key in ("error", "consensus", "avg_error"):
            np.testing.assert_allclose(
                getattr(traj, key), getattr(sim, key), rtol=1e-12, atol=1e-14
            )
    # the mode is in effect: the generator-mode run differs
    plain = QuadraticOracle(hq(2, 3, zeta2=1.0, sigma2=0.5, seed=0))
    other = run_simulated(algorithm, plain, schedule, x0, 5, 3, record)
    assert not np.allclose(other.error, sim.error)
