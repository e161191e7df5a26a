"""verify.model_oracle: the nn.Module oracle against direct per-node torch loops, on both
executors, with the registered algorithms, and its full-batch measurements and constants."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from theorylab.data import split, teacher_student
from theorylab.errors import TheorylabError
from theorylab.estimate import estimate_L, estimate_sigma2, estimate_zeta2, fd_hvp
from verify.algorithms import ALGORITHMS
from verify.algorithms.dsgd import DSGD
from verify.algorithms.psgd import PSGD
from verify.comm import GradientOracle
from verify.model_oracle import ModelOracle, mlp, model_oracle
from verify.run import Trajectory, make_context, run_distributed, run_simulated
from verify.runtime.simulated import SimulatedCommunicator
from verify.seeding import node_generators

N_NODES, R, B = 3, 4, 5


@pytest.fixture(scope="module")
def data():
    return teacher_student(45, 3, num_classes=3, hidden=8, seed=0)


@pytest.fixture(scope="module")
def oracle(data):
    return model_oracle(mlp([3, 4, 3], seed=1), data, N_NODES, alpha=0.5, seed=2, batch_size=B)


def _ring3():
    return np.array([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]])


def _x0(oracle, n, R, seed=0):
    gen = torch.Generator().manual_seed(seed)
    noise = 0.1 * torch.randn((n, R, oracle.d), generator=gen, dtype=torch.float64)
    return oracle.x0 + noise


# ---- a direct per-node, per-replica torch loop (autograd on a module, no torch.func) --------
def _direct_grad(oracle, model, x_flat, a, y):
    net = copy.deepcopy(model)
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(x_flat, net.parameters())
    loss = oracle.loss(net(a), y)
    grads = torch.autograd.grad(loss, list(net.parameters()))
    return torch.cat([g.reshape(-1) for g in grads])


def _direct_node_data(data, parts, i):
    X = torch.as_tensor(data.features[parts[i]])
    y = torch.as_tensor(data.labels[parts[i]])
    return X, y


def _direct_step_grads(oracle, data, parts, x, generators):
    """Per node l, replica r: draw indices as documented, gradient by autograd."""
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        X, y = _direct_node_data(data, parts, i)
        idx = torch.randint(len(parts[i]), (x.shape[1], B), generator=generators[i])
        for r in range(x.shape[1]):
            out[i, r] = _direct_grad(oracle, oracle.model, x[i, r], X[idx[r]], y[idx[r]])
    return out


def test_protocol_and_layout(oracle, data):
    assert isinstance(oracle, GradientOracle)
    assert oracle.n == N_NODES and oracle.d == 3 * 4 + 4 + 4 * 3 + 3
    assert oracle.x_star is None and sum(oracle.sizes) == len(data)
    params = oracle.unflatten(oracle.x0)
    for (name, p), (name2, q) in zip(oracle.model.named_parameters(), params.items()):
        assert name == name2 and torch.equal(p, q)


def test_grad_equals_direct_loop(oracle, data):
    parts = split(data, N_NODES, alpha=0.5, seed=2)
    x = _x0(oracle, N_NODES, R)
    got = oracle.grad(x, torch.arange(N_NODES), node_generators(7, "noise", range(N_NODES)))
    want = _direct_step_grads(oracle, data, parts, x, node_generators(7, "noise", range(N_NODES)))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_same_seed_same_batches(oracle):
    x = _x0(oracle, N_NODES, R)
    nodes = torch.arange(N_NODES)
    g1 = oracle.grad(x, nodes, node_generators(3, "noise", range(N_NODES)))
    g2 = oracle.grad(x, nodes, node_generators(3, "noise", range(N_NODES)))
    g3 = oracle.grad(x, nodes, node_generators(4, "noise", range(N_NODES)))
    assert torch.equal(g1, g2)
    assert not torch.allclose(g1, g3)
    # a node alone (a rank) draws what it draws in the stack (the simulator)
    gens = node_generators(3, "noise", [1])
    alone = oracle.grad(x[1:2].contiguous(), torch.tensor([1]), gens)
    torch.testing.assert_close(alone[0], g1[1], rtol=1e-13, atol=1e-13)


def test_vmap_over_replicas_equals_loop_over_replicas(data):
    full = model_oracle(mlp([3, 4, 3], seed=1), data, N_NODES, alpha=0.5, seed=2, batch_size=None)
    x = _x0(full, N_NODES, R)
    nodes = torch.arange(N_NODES)
    batched = full.grad(x, nodes, [None] * N_NODES)
    for r in range(R):
        one = full.grad(x[:, r : r + 1].contiguous(), nodes, [None] * N_NODES)
        torch.testing.assert_close(batched[:, r : r + 1], one, rtol=1e-12, atol=1e-13)
    # and each node's full gradient is the mean of its per-sample gradients (autograd)
    parts = split(data, N_NODES, alpha=0.5, seed=2)
    assert len(set(full.sizes)) > 1  # unequal nodes: the padded batch's weights matter
    for i in range(N_NODES):
        X, y = _direct_node_data(data, parts, i)
        want = _direct_grad(full, full.model, x[i, 1], X, y)
        torch.testing.assert_close(batched[i, 1], want, rtol=1e-12, atol=1e-13)
    # any subset of nodes, in any order (a rank holds one; the simulator all)
    sub = full.grad(x[[2, 0]].contiguous(), torch.tensor([2, 0]), [None, None])
    torch.testing.assert_close(sub, batched[[2, 0]], rtol=1e-12, atol=1e-13)


def test_node_objectives_equal_direct_autograd(data):
    full = model_oracle(mlp([3, 4, 3], seed=1), data, N_NODES, alpha=0.5, seed=2, batch_size=None)
    parts = split(data, N_NODES, alpha=0.5, seed=2)
    x = _x0(full, 1, R)[0]  # (R, d), points shared by the nodes
    values, grads = full.node_objectives(x, [2, 0, 1])
    assert values.shape == (3, R) and grads.shape == (3, R, full.d)
    for l, i in enumerate([2, 0, 1]):
        X, y = _direct_node_data(data, parts, i)
        for r in range(R):
            net = copy.deepcopy(full.model)
            with torch.no_grad():
                torch.nn.utils.vector_to_parameters(x[r], net.parameters())
            want_f = full.loss(net(X), y)
            torch.testing.assert_close(values[l, r], want_f.detach(), rtol=1e-12, atol=1e-13)
            want_g = _direct_grad(full, full.model, x[r], X, y)
            torch.testing.assert_close(grads[l, r], want_g, rtol=1e-12, atol=1e-13)
    with pytest.raises(TheorylabError, match="shape"):
        full.node_objectives(x[None], [0])
    with pytest.raises(TheorylabError):
        full.node_objectives(x, [N_NODES])


def _direct_run(oracle, data, name, gamma, W, x0, steps, seed):
    """PSGD / DSGD (ATC) written out node by node, with the documented draws."""
    parts = split(data, N_NODES, alpha=0.5, seed=2)
    gens = node_generators(seed, "noise", range(N_NODES))
    Wt = torch.as_tensor(W)
    x = x0.clone()
    xs = [x]
    for _ in range(steps):
        g = _direct_step_grads(oracle, data, parts, x, gens)
        y = x - gamma * g
        if name == "psgd":
            x = y.mean(dim=0, keepdim=True).expand_as(y).clone()
        else:
            x = torch.einsum("ij,jrd->ird", Wt, y)
        xs.append(x)
    return xs


@pytest.mark.parametrize("algorithm", [PSGD(0.2), DSGD(0.2)], ids=["psgd", "dsgd"])
def test_algorithms_on_simulator_equal_direct_loop(oracle, data, algorithm):
    W, steps, seed = _ring3(), 4, 11
    x0 = _x0(oracle, N_NODES, R, seed=1)
    want = _direct_run(oracle, data, algorithm.name, 0.2, W, x0, steps, seed)
    ctx = make_context(SimulatedCommunicator(W), oracle, seed)
    state = algorithm.init(x0, ctx)
    for k in range(steps):
        state = algorithm.step(state, ctx, k)
    torch.testing.assert_close(algorithm.iterate(state), want[-1], rtol=1e-11, atol=1e-12)
    traj = run_simulated(algorithm, oracle, W, x0, steps, seed)
    consensus = [
        ((x - x.mean(0)) ** 2).sum(-1).mean(0).numpy() for x in want
    ]  # (1/n) sum_i ||x_i - xbar||^2 per replica
    np.testing.assert_allclose(traj.consensus, np.stack(consensus), rtol=1e-9, atol=1e-15)


def test_every_registered_algorithm_runs(oracle):
    """Every algorithm with a plain ``gamma`` runs unchanged on the model oracle."""
    x0 = _x0(oracle, N_NODES, 2)
    ran = []
    for name, cls in sorted(ALGORITHMS.items()):
        try:
            algorithm = cls(0.05)
        except TypeError:
            continue  # needs more than a step size (a compressor, ...): covered by its own suite
        traj = run_simulated(algorithm, oracle, _ring3(), x0, 3, seed=0)
        assert np.all(np.isfinite(traj.consensus)), name
        ran.append(name)
    assert {"psgd", "dsgd"} <= set(ran)


def test_simulator_and_distributed_agree(pool, data):
    oracle2 = model_oracle(mlp([3, 4, 3], seed=1), data, 2, alpha=1.0, seed=0, batch_size=B)
    W = np.array([[0.75, 0.25], [0.25, 0.75]])
    x0 = _x0(oracle2, 2, 3, seed=5)
    for algorithm in (DSGD(0.3), PSGD(0.3)):
        sim = run_simulated(algorithm, oracle2, W, x0, 5, seed=9)
        ranks = pool.run(run_distributed, algorithm, oracle2, W, x0, 5, 9)
        dist = Trajectory.from_ranks(ranks)
        np.testing.assert_allclose(dist.consensus, sim.consensus, rtol=1e-9, atol=1e-14)
        assert dist.bytes_sent == sim.bytes_sent
    # DSGD's consensus is not trivially zero, so the comparison has teeth
    assert sim.consensus.shape == (6, 3)


def test_measurements_match_direct_computation(oracle, data):
    parts = split(data, N_NODES, alpha=0.5, seed=2)
    x = _x0(oracle, N_NODES, 2)
    m = oracle.measure(x)
    xbar = x.mean(0)
    for r in range(2):
        f_i, g_i = [], []
        for i in range(N_NODES):
            X, y = _direct_node_data(data, parts, i)
            net = copy.deepcopy(oracle.model)
            with torch.no_grad():
                torch.nn.utils.vector_to_parameters(xbar[r], net.parameters())
            f_i.append(float(oracle.loss(net(X), y).detach()))
            g_i.append(_direct_grad(oracle, oracle.model, xbar[r], X, y))
        G = torch.stack(g_i)
        assert float(m["f_avg"][r]) == pytest.approx(np.mean(f_i), rel=1e-12)
        assert float(m["grad_norm2_avg"][r]) == pytest.approx(float((G.mean(0) ** 2).sum()), 1e-10)
        assert float(m["zeta2_avg"][r]) == pytest.approx(
            float(((G - G.mean(0)) ** 2).sum(1).mean()), rel=1e-10
        )
    # node-averaged quantities: f and ||grad f||^2 at each node's iterate, then averaged
    fx, gx = oracle.objective(x)
    torch.testing.assert_close(m["f_nodes"], fx.mean(0))
    torch.testing.assert_close(m["grad_norm2_nodes"], (gx**2).sum(-1).mean(0))
    # at one point shared by all nodes, both forms agree
    same = oracle.measure(xbar[None].expand(N_NODES, 2, oracle.d).contiguous())
    torch.testing.assert_close(same["f_nodes"], same["f_avg"])


def test_hvp_and_constants_on_the_network(oracle):
    x = oracle.x0
    v = torch.linspace(-1, 1, oracle.d, dtype=torch.float64)

    def grad_f(z):
        return oracle.objective(torch.as_tensor(z))[1].numpy()

    fd = fd_hvp(grad_f)(x.numpy(), v.numpy())
    np.testing.assert_allclose(oracle.hvp(x, v).numpy(), fd, rtol=1e-5, atol=1e-7)
    # L over the nodes' Hessians by exact HVPs
    hvps = [
        (lambda z, u, i=i: oracle.hvp(torch.as_tensor(z), torch.as_tensor(u), node=i).numpy())
        for i in range(oracle.n)
    ]
    L = estimate_L(hvps, x.numpy(), confidence=0.999, max_iter=400, min_iter=50)
    # the lower end is sure: no unit vector gives a larger ||H_i v|| than the estimate's upper end
    for i in range(oracle.n):
        Hv = oracle.hvp(x, v / v.norm(), node=i).norm()
        assert float(Hv) <= L.upper
    assert 0 < L.lower <= L.value <= L.upper
    # zeta2 from the oracle's local gradients equals measure()'s
    z = estimate_zeta2(lambda p: oracle.local_objectives(torch.as_tensor(p))[1].numpy(), x)
    m = oracle.measure(x.expand(oracle.n, 1, oracle.d).contiguous())
    assert z.value == pytest.approx(float(m["zeta2_avg"][0]), rel=1e-10)


def test_sigma2_estimate_covers_exact_minibatch_variance(oracle, data):
    # exact: sigma2_i(x) = (1/B) (1/m_i) sum_j ||grad l_j(x) - grad f_i(x)||^2 (with replacement)
    parts = split(data, N_NODES, alpha=0.5, seed=2)
    x = oracle.x0
    exact = []
    for i in range(N_NODES):
        X, y = _direct_node_data(data, parts, i)
        per = torch.stack(
            [
                _direct_grad(oracle, oracle.model, x, X[j : j + 1], y[j : j + 1])
                for j in range(len(X))
            ]
        )
        exact.append(float(((per - per.mean(0)) ** 2).sum(1).mean()) / B)
    gens = node_generators(0, "noise", range(N_NODES))

    def sample(p, k):
        z = torch.as_tensor(p)
        return torch.stack([oracle.sample_grads(z, i, k, gens[i]) for i in range(N_NODES)]).numpy()

    # false-failure probability ~ 1e-3 (t-interval level, normal approximation of group means)
    e = estimate_sigma2(sample, x.numpy(), num_samples=4000, groups=40, confidence=0.999)
    assert e.covers(float(np.mean(exact)))


def test_bad_input(data):
    class IntParam(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)
            self.count = torch.nn.Parameter(torch.zeros(2, dtype=torch.int64), requires_grad=False)

        def forward(self, a):
            return self.lin(a)

    with pytest.raises(TypeError, match="'count' has dtype torch.int64"):
        model_oracle(IntParam(), data, 2)
    with pytest.raises(TheorylabError, match="45 samples, fewer than n = 50"):
        model_oracle(mlp([3, 3]), data, 50)
    with pytest.raises(TheorylabError, match="alpha"):
        model_oracle(mlp([3, 3]), data, 3, alpha=0.0)
    with pytest.raises(TheorylabError, match="alpha"):
        model_oracle(mlp([3, 3]), data, 3, alpha=-2.0)
    with pytest.raises(TheorylabError, match="node 1 has no samples"):
        ModelOracle(mlp([3, 3]), "cross_entropy", data.features, data.labels, [[0, 1], []])
    with pytest.raises(TypeError, match="nn.Module"):
        model_oracle("net", data, 2)
    with pytest.raises(TheorylabError, match="loss"):
        model_oracle(mlp([3, 3]), data, 2, loss="hinge")


def test_diverged_run_returns_nan_not_an_error(oracle):
    x = _x0(oracle, N_NODES, 2)
    x[1, 0, 0] = math.nan
    g = oracle.grad(x, torch.arange(N_NODES), node_generators(0, "noise", range(N_NODES)))
    assert torch.isnan(g[1, 0]).all() and torch.isfinite(g[0]).all()
    m = oracle.measure(x)
    assert math.isnan(float(m["f_avg"][0])) and math.isfinite(float(m["f_avg"][1]))
    # a step size far too large on a linear least-squares model: the run overflows, and the
    # trajectory records the non-finite values instead of raising
    reg = teacher_student(30, 2, task="regression", num_classes=1, seed=0)
    lin = model_oracle(mlp([2, 1]), reg, N_NODES, batch_size=4)
    x0 = lin.x0.expand(N_NODES, 2, lin.d).contiguous()
    traj = run_simulated(DSGD(100.0), lin, _ring3(), x0, 400, seed=0, record=[0, 400])
    assert np.isfinite(traj.consensus[0]).all() and not np.isfinite(traj.consensus[1]).any()


def test_regression_task_and_half_mse(data):
    reg = teacher_student(30, 2, task="regression", num_classes=2, seed=0)
    o = model_oracle(mlp([2, 3, 2]), reg, 2, alpha=1.0, batch_size=None)
    assert o.loss_name == "half_mse" and o.y.dtype == torch.float64
    f, g = o.objective(o.x0)
    parts = split(reg, 2, alpha=1.0, seed=0)
    with torch.no_grad():
        want = np.mean(
            [
                0.5
                * float(
                    (
                        (o.model(torch.as_tensor(reg.features[p])) - torch.as_tensor(reg.labels[p]))
                        ** 2
                    )
                    .sum(1)
                    .mean()
                )
                for p in parts
            ]
        )
    assert float(f) == pytest.approx(want, rel=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(data):
    full = model_oracle(mlp([3, 4, 3], seed=1), data, N_NODES, alpha=0.5, seed=2, batch_size=None)
    x = _x0(full, N_NODES, R)
    cpu = full.grad(x, torch.arange(N_NODES), [None] * N_NODES)
    gpu_oracle = full.to("cuda")
    gpu = gpu_oracle.grad(x.cuda(), torch.arange(N_NODES), [None] * N_NODES)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=1e-12)
    mb = model_oracle(mlp([3, 4, 3], seed=1), data, N_NODES, alpha=0.5, seed=2, device="cuda")
    traj = run_simulated(DSGD(0.1), mb, _ring3(), x.cuda(), 5, seed=0, device="cuda")
    assert np.all(np.isfinite(traj.consensus))
    again = run_simulated(DSGD(0.1), mb, _ring3(), x.cuda(), 5, seed=0, device="cuda")
    np.testing.assert_array_equal(traj.consensus, again.consensus)


def test_doctest_examples_run():
    import doctest

    import verify.model_oracle

    assert doctest.testmod(verify.model_oracle, raise_on_error=True).attempted > 0


def test_oracle_pickles_for_the_ranks(oracle):
    import pickle

    other = pickle.loads(pickle.dumps(oracle))
    x = _x0(oracle, N_NODES, 2)
    nodes = torch.arange(N_NODES)
    torch.testing.assert_close(
        other.grad(x, nodes, node_generators(1, "noise", range(N_NODES))),
        oracle.grad(x, nodes, node_generators(1, "noise", range(N_NODES))),
    )


def test_estimate_constants_into_nonconvex_rates(oracle):
    from theorylab.estimate import nonconvex_rates
    from verify.model_oracle import estimate_constants

    c = estimate_constants(
        oracle,
        oracle.x0,
        oracle.x0,
        num_samples=200,
        groups=10,
        delta_steps=20,
        L_min_iter=20,
        L_max_iter=60,
    )
    assert set(c) == {"L", "sigma2", "zeta2", "delta"}
    assert 0 < c["L"].lower <= c["L"].upper and c["sigma2"].lower <= c["sigma2"].upper
    m = oracle.measure(oracle.x0.expand(oracle.n, 1, oracle.d).contiguous())
    assert c["zeta2"].value == pytest.approx(float(m["zeta2_avg"][0]), rel=1e-10)
    # f* <= f(x_run) and f* >= 0: delta's bracket
    f0 = float(oracle.objective(oracle.x0)[0])
    assert 0 <= c["delta"].lower <= c["delta"].upper == pytest.approx(f0)
    rates = nonconvex_rates(**c, gamma=0.5 / c["L"].upper, n=oracle.n, T=1000, rho=0.5)
    assert rates["psgd"].extra["confidence"] == pytest.approx(0.99)
    assert rates["dsgd"].extra["estimates"]["L"]["upper"] == c["L"].upper
    assert rates["psgd"].total > 0 and math.isfinite(rates["dsgd"].total)


def _weighted_cross_entropy(output, target):  # normalised by the batch's weights: coupled
    w = torch.tensor([1.0, 5.0, 0.2], dtype=output.dtype)
    return torch.nn.functional.cross_entropy(output, target, weight=w)


def test_a_loss_that_is_not_a_per_sample_mean_is_refused(data):
    parts = split(data, N_NODES, alpha=0.5, seed=2)
    with pytest.raises(TheorylabError, match="mean of per-sample losses"):
        ModelOracle(mlp([3, 4, 3], seed=1), _weighted_cross_entropy, data.features, data.labels,
                    parts)  # fmt: skip
    # the named losses pass the check
    ModelOracle(mlp([3, 4, 3], seed=1), "cross_entropy", data.features, data.labels, parts)


def test_moved_copy_does_not_share_the_padded_data_cache(oracle):
    # the cache of padded node batches lives on the oracle's device: a copy on another device
    # that kept it (copy.copy shares the dict) would mix devices
    x = oracle.x0.reshape(1, -1).to(torch.float64)
    oracle.node_objectives(x, [0, 1])
    assert oracle.__dict__.get("_padded_cache")
    moved = oracle.to("meta")
    assert "_padded_cache" not in moved.__dict__ and oracle.__dict__["_padded_cache"]
    assert moved.X.device.type == "meta" and oracle.X.device.type == "cpu"


def test_gradients_do_not_import_torch_dynamo():
    # torch.func.grad imports torch._dynamo (~0.9 s, ~70 MB) in every process that calls it;
    # the oracle's gradients (minibatch, full-batch, measurements) need only autograd
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from verify.model_oracle import mlp, model_oracle\n"
        "from theorylab.data import teacher_student\n"
        "data = teacher_student(64, 4, num_classes=3, seed=0)\n"
        "o = model_oracle(mlp([4, 6, 3], seed=0), data, 4, seed=0, batch_size=8)\n"
        "x = o.x0.reshape(1, 1, -1).expand(4, 2, -1).contiguous()\n"
        "gens = [torch.Generator().manual_seed(i) for i in range(4)]\n"
        "o.grad(x, torch.arange(4), gens); o.measure(x); o.objective(x[0])\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert out.stdout.strip() == "False", out.stdout + out.stderr
