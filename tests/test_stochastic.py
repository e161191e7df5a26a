"""theorylab.stochastic: the one home of W validation, used by theory and both executors."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from theorylab import mixing, spectral, stochastic, topology
from theorylab.errors import TheorylabError
from theorylab.stochastic import Schedule, check_mixing_matrix, check_schedule


def _ring_W(n=5):
    return mixing.mixing_matrix(topology.ring(n))


def _row_only(n=4, seed=0):
    """A row-stochastic W whose columns do not sum to 1 (positive entries)."""
    A = np.random.default_rng(seed).uniform(0.1, 1.0, (n, n))
    return A / A.sum(axis=1, keepdims=True)


def test_one_definition_reexported():
    # the circle topology -> mixing -> spectral -> topology is gone; old names still import
    assert topology.Schedule is stochastic.Schedule
    assert topology.check_graph is stochastic.check_graph
    assert mixing.check_mixing_matrix is stochastic.check_mixing_matrix
    assert mixing.check_world_size is stochastic.check_world_size
    assert topology.DENSE_LIMIT is spectral.DENSE_LIMIT is stochastic.DENSE_LIMIT


def test_stochasticity_kinds():
    R = _row_only()
    C = R.T.copy()  # column-stochastic, rows do not sum to 1
    check_mixing_matrix(R, stochasticity="row")
    check_mixing_matrix(C, stochasticity="column")
    with pytest.raises(TheorylabError, match="column .* sums to .* doubly-stochastic"):
        check_mixing_matrix(R, stochasticity="doubly")
    with pytest.raises(TheorylabError, match="row .* sums to .* row-stochastic"):
        check_mixing_matrix(C, stochasticity="row")
    with pytest.raises(TheorylabError, match="column .* column-stochastic"):
        check_mixing_matrix(R, stochasticity="column")
    # the old keyword keeps its meaning
    check_mixing_matrix(R, doubly_stochastic=False)
    with pytest.raises(TheorylabError, match="doubly"):
        check_mixing_matrix(R, doubly_stochastic=True)
    with pytest.raises(TheorylabError, match="stochasticity must be one of"):
        check_mixing_matrix(R, stochasticity="rows")
    with pytest.raises(TypeError, match="stochasticity must be a string"):
        check_mixing_matrix(R, stochasticity=["row"])
    with pytest.raises(TypeError, match="doubly_stochastic must be True or False"):
        check_mixing_matrix(R, doubly_stochastic="yes")


def test_complex_W_is_an_error_everywhere():
    # issue 7 item 13: rho of a complex W used to return 0.0 (imaginary part dropped)
    W = np.full((2, 2), 0.5) + 0.1j * np.array([[1, -1], [-1, 1]])
    for fn in (spectral.rho, check_mixing_matrix, check_schedule, lambda w: Schedule([w])):
        with pytest.raises(TypeError, match="real matrix, got complex"):
            fn(W)
    with pytest.raises(TypeError, match="complex"):
        spectral.rho(sp.csr_array(W))
    with pytest.raises(TypeError, match="numeric"):
        check_mixing_matrix(np.array([["0.5", "0.5"], ["0.5", "0.5"]]))


def test_check_schedule_forms():
    W = _ring_W(5)
    one = check_schedule(W)
    assert len(one) == 1 and np.array_equal(one[0], W)
    assert len(check_schedule([W, W])) == 2
    assert len(check_schedule(np.stack([W, W, W]))) == 3
    sched = topology.one_peer_exponential(8)
    assert all(a is b for a, b in zip(check_schedule(sched), sched.matrices))  # already checked
    with pytest.raises(TheorylabError, match="empty"):
        check_schedule([])
    with pytest.raises(TheorylabError, match="round 1 is 4 x 4 but round 0 is 5"):
        check_schedule([W, _ring_W(4)])
    with pytest.raises(TheorylabError, match="expected n = 6"):
        check_schedule(W, n=6)
    with pytest.raises(TheorylabError, match="schedule round 1: row .* sums to"):
        check_schedule([W, 2 * W])
    with pytest.raises(TypeError, match="a schedule must be"):
        check_schedule(3.0)
    # a row-stochastic Schedule does not satisfy a doubly-stochastic request: re-checked
    rs = Schedule([_row_only(4)], stochasticity="row")
    assert rs.stochasticity == "row" and not rs.doubly_stochastic
    check_schedule(rs, stochasticity="row")
    with pytest.raises(TheorylabError, match="column"):
        check_schedule(rs, stochasticity="doubly")


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 7),
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(1.001, 3.0) | st.floats(0.2, 0.999),
)
def test_wrong_row_normalisation_is_rejected(n, seed, scale):
    # a row-stochastic W with one row scaled is an error for every kind that needs rows
    W = _row_only(n, seed % 1000)
    bad = W.copy()
    bad[seed % n] *= scale
    for kind in ("row", "doubly"):
        with pytest.raises(TheorylabError, match=f"row {seed % n} of W sums to"):
            check_mixing_matrix(bad, stochasticity=kind, connected=False)
    check_mixing_matrix(W, stochasticity="row", connected=False)


def test_executors_reject_wrong_W():
    torch = pytest.importorskip("torch")
    from verify.runtime.simulated import SimulatedCommunicator, schedule_matrices

    W = _ring_W(4)
    bad = W.copy()
    bad[0, 0] += 0.25  # row 0 sums to 1.25
    with pytest.raises(TheorylabError, match="row 0 of W sums to 1.25"):
        SimulatedCommunicator([bad])
    R = _row_only(4)
    SimulatedCommunicator([R])  # row-stochastic is what every gossip step needs: accepted
    with pytest.raises(TheorylabError, match="doubly"):
        SimulatedCommunicator([R], stochasticity="doubly")
    with pytest.raises(TypeError, match="complex"):
        schedule_matrices([W.astype(complex)])
    # sparse: explicit zeros dropped (true support), input left untouched
    C = sp.coo_array(W)
    Z = sp.csr_array((np.r_[C.data, 0.0], (np.r_[C.row, 0], np.r_[C.col, 2])), shape=W.shape)
    assert Z.nnz == C.nnz + 1  # an explicit zero at (0, 2), not an edge of the 4-ring
    (out,) = schedule_matrices(Z)
    assert out.nnz == C.nnz and Z.nnz == C.nnz + 1
    comm = SimulatedCommunicator([W])
    x = torch.arange(4, dtype=torch.float64).reshape(4, 1, 1)
    assert torch.allclose(comm.mix(x, 0).flatten(), torch.from_numpy(W @ np.arange(4.0)))


def test_distributed_executor_validates_with_the_same_rule():
    # the distributed executor's constructor calls the same schedule_matrices (no process group
    # needed to see the validation order: the group check comes first, so check the source)
    import inspect

    from verify.runtime import distributed

    src = inspect.getsource(distributed.DistributedCommunicator.__init__)
    assert "schedule_matrices(schedule, stochasticity)" in src


def test_algorithms_declare_stochasticity():
    pytest.importorskip("torch")
    from verify.algorithms import ALGORITHMS, Algorithm, register

    assert Algorithm.stochasticity == "doubly"
    assert all(cls.stochasticity in stochastic.STOCHASTICITY for cls in ALGORITHMS.values())

    class Bad(Algorithm):
        name = "bad-stochasticity"
        stochasticity = "rows"

        def init(self, x0, ctx): ...

        def step(self, state, ctx, k): ...

    with pytest.raises(ValueError, match="stochasticity must be one of"):
        register(Bad)
    assert "bad-stochasticity" not in ALGORITHMS


def test_mixing_matrix_argument_types():
    G = nx.cycle_graph(5)
    # issue 7 item 13: lazy='yes' was accepted; a list as the rule gave "unhashable type"
    with pytest.raises(TypeError, match="lazy must be True or False, got 'yes'"):
        mixing.mixing_matrix(G, lazy="yes")
    with pytest.raises(TypeError, match=r"rule must be a weight rule name .* got \['metropolis'\]"):
        mixing.mixing_matrix(G, rule=["metropolis"])
    assert np.allclose(mixing.mixing_matrix(G, lazy=np.bool_(True)), mixing.lazy(_ring_W(5)))


def test_check_world_size():
    W = _ring_W(5)
    assert stochastic.check_world_size(W, 5) is W
    with pytest.raises(TheorylabError, match="n = 5 nodes but the process group has world_size"):
        stochastic.check_world_size(topology.static(W), 4)


def test_examples_run():
    import doctest

    from theorylab import output

    for module in (stochastic, output, mixing):
        assert doctest.testmod(module, raise_on_error=True).attempted > 0
