"""The stacked simulator: mixing against independent numpy products, byte conventions, errors."""

from __future__ import annotations

import doctest
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from graphs import one_peer_exponential, ring
from hypothesis import given, settings
from hypothesis import strategies as st

import verify.runtime.simulated as simulated
from theorylab.compressors import RandK
from theorylab.errors import TheorylabError
from verify.runtime.simulated import (
    SimulatedCommunicator,
    allgather_bytes,
    allreduce_bytes,
    out_degrees,
    schedule_matrices,
)
from verify.seeding import node_generators


def test_doctest_examples_run():
    assert doctest.testmod(simulated, raise_on_error=True).attempted > 0


@settings(deadline=None, max_examples=10, derandomize=True)
@given(n=st.integers(2, 9), R=st.integers(1, 3), d=st.integers(1, 4), seed=st.integers(0, 99))
def test_mix_is_W_times_X_dense(n, R, d, seed):
    rng = np.random.default_rng(seed)
    W = rng.random((n, n)) * (rng.random((n, n)) < 0.5) + np.eye(n)
    W /= W.sum(axis=1, keepdims=True)
    X = rng.standard_normal((n, R, d))
    comm = SimulatedCommunicator([W])
    got = comm.mix(torch.from_numpy(X), 0).numpy()
    np.testing.assert_allclose(got, np.einsum("ij,jrd->ird", W, X), rtol=0, atol=1e-13)


def test_sparse_path_matches_dense_numpy_and_counts_bytes():
    n, R, d = 300, 2, 3  # n > 128: the sparse path
    W = sp.csr_array(ring(n))
    comm = SimulatedCommunicator([W])
    assert not comm._ops[0].dense
    X = np.random.default_rng(0).standard_normal((n, R, d))
    got = comm.mix(torch.from_numpy(X), 0).numpy()
    np.testing.assert_allclose(got, np.einsum("ij,jrd->ird", ring(n), X), rtol=0, atol=1e-13)
    assert comm.bytes_sent == n * 2 * R * d * 8  # every node sends to its 2 neighbours


def test_time_varying_schedule_uses_round_k_mod_period():
    n = 8
    mats = one_peer_exponential(n)
    schedule = SimpleNamespace(matrices=mats, period=len(mats), n=n)
    comm = SimulatedCommunicator(schedule)
    X = torch.randn(n, 1, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    Y = X
    for k in range(3):
        Y = comm.mix(Y, k)
        np.testing.assert_array_equal(comm.W(k + 3), mats[k])  # period 3
    # one-peer exponential graph: exact average after log2(n) rounds
    torch.testing.assert_close(Y, X.mean(0, keepdim=True).expand_as(X), rtol=0, atol=1e-14)
    assert comm.bytes_sent == 3 * n * 1 * 2 * 8  # one peer per round


def test_accepts_a_theorylab_schedule():
    from theorylab.topology import Schedule

    mats = one_peer_exponential(8)
    X = torch.randn(8, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a, b = SimulatedCommunicator(Schedule(mats)), SimulatedCommunicator(mats)
    for k in range(4):
        assert torch.equal(a.mix(X, k), b.mix(X, k))
    assert a.bytes_sent == b.bytes_sent


def test_mean_gather_and_byte_conventions():
    n, R, d = 5, 2, 3
    comm = SimulatedCommunicator([ring(n)], dtype=torch.float32)
    X = torch.randn(n, R, d)
    m = comm.mean(X)
    torch.testing.assert_close(m, X.mean(0, keepdim=True).expand_as(X))
    s = R * d * 4
    assert comm.bytes_sent == n * ((2 * (n - 1) * s) // n) == n * allreduce_bytes(n, s)
    comm.bytes_sent = 0
    assert torch.equal(comm.gather(X), X)
    assert comm.bytes_sent == n * (n - 1) * s == n * allgather_bytes(n, s)
    comm.bytes_sent = 0
    comm.allsum(X)
    assert comm.bytes_sent == 0  # measurement traffic is not counted


def test_compressed_ops_match_independent_encode_decode():
    n, R, d = 4, 3, 10
    W = ring(n)
    comp = RandK(k=3)
    X = torch.randn(n, R, d, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    comm = SimulatedCommunicator([W])
    q, y = comm.compressed_mix(X, 0, comp, node_generators(5, "algorithm", range(n)))
    gens = node_generators(5, "algorithm", range(n))
    size = comp.nbytes((R, d), torch.float64)
    expect_q = torch.stack(
        [comp.decode(comp.encode(X[i], gens[i]), (R, d), torch.float64) for i in range(n)]
    )
    assert torch.equal(q, expect_q)
    torch.testing.assert_close(y, torch.einsum("ij,jrd->ird", torch.from_numpy(W), expect_q))
    assert comm.bytes_sent == int(out_degrees(W).sum()) * size == n * 2 * size
    comm.bytes_sent = 0
    q2, avg = comm.compressed_mean(X, comp, node_generators(5, "algorithm", range(n)))
    assert torch.equal(q2, expect_q)
    torch.testing.assert_close(avg, expect_q.mean(0, keepdim=True).expand_as(X))
    assert comm.bytes_sent == n * (n - 1) * size


def test_out_degrees_dense_and_sparse_agree_on_a_directed_matrix():
    W = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(out_degrees(W), [0, 1, 1])
    np.testing.assert_array_equal(out_degrees(sp.csr_array(W)), [0, 1, 1])


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(TheorylabError, match="square"):
        schedule_matrices([np.ones((2, 3))])
    with pytest.raises(TheorylabError, match="same n"):
        schedule_matrices([ring(3), ring(4)])
    with pytest.raises(TheorylabError, match="empty"):
        schedule_matrices([])
    with pytest.raises(TheorylabError, match="non-finite"):
        schedule_matrices([np.full((2, 2), np.nan)])
    comm = SimulatedCommunicator([ring(3)])
    with pytest.raises(TheorylabError, match="n = 3"):
        comm.mix(torch.zeros(4, 1, 1, dtype=torch.float64), 0)
    with pytest.raises(TypeError, match="dtype"):
        comm.mix(torch.zeros(3, 1, 1, dtype=torch.float32), 0)
    with pytest.raises(TypeError, match="floating"):
        SimulatedCommunicator([ring(3)], dtype=torch.int64)
