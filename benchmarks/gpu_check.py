"""GPU checks, run on a machine with CUDA: the simulator at large n, and exact-vs-measured there.

Usage: ``python benchmarks/gpu_check.py [--n 4096] [--d 10000] [--out DIR]``

1. Throughput: DSGD (ATC) node-iterations per second on the stacked simulator at n nodes and d
   coordinates (float32) on CUDA, against a bare ``W @ X`` + gradient loop on the same tensors in
   the same run, and against the simulator on the CPU (fewer steps); peak GPU memory. The
   simulator is timed with both noise modes of ``QuadraticOracle`` (``"generator"``: one
   generator per node, drawn in a loop; ``"counter"``: one vectorised counter-based draw).
   Also: the counter-based normals computed on CPU and on CUDA (64 nodes x 1e5): their uniform
   words must be bitwise equal; the normals' largest difference is reported (ndtri rounding).
2. Exactness at scale: DSGD on a ring of n nodes (Metropolis weights) and a heterogeneous
   diagonal quadratic (d = 4), R = 256 seeded replicas in float64 on CUDA, against
   ``theorylab.exact.exact_dsgd``: the largest |mean - predicted| / (standard error) over the
   checkpoints (a z-score; |z| < 4 at 16 checkpoints and 2 quantities fails with probability
   < 0.2% under the null).
Prints one table and writes ``gpu_check.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from theorylab import mixing, topology
from theorylab.exact import exact_dsgd
from theorylab.problems import heterogeneous_quadratic
from verify import counter_rng
from verify.algorithms.dsgd import DSGD
from verify.oracles import QuadraticOracle
from verify.run import run_simulated


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _diag_problem(n, d, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.5, 1.5, size=(n, d))
    b = rng.standard_normal((n, d))
    x_star = (h * b).sum(0) / h.sum(0)
    return SimpleNamespace(n=n, d=d, b=b, sigma2=1.0, hessian_diagonal=h, x_star=x_star)


def _simulate(prob, W, x0, steps, device, noise):
    """Seconds per DSGD step on the simulator (with noise mode ``noise``), peak MiB, trajectory."""
    _sync(device)
    if device != "cpu":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    traj = run_simulated(
        DSGD(0.05),
        QuadraticOracle(prob, dtype=torch.float32, noise=noise),
        W,
        x0,
        steps,
        seed=0,
        record=[0, steps],
        device=device,
        dtype=torch.float32,
    )
    _sync(device)
    sim_s = (time.perf_counter() - t0) / steps
    peak = torch.cuda.max_memory_allocated() / 2**20 if device != "cpu" else float("nan")
    return sim_s, peak, traj


def throughput(n, d, device, steps):
    """Seconds per DSGD step (simulator, both noise modes) and median per bare step."""
    W = mixing.mixing_matrix(topology.ring(n), "metropolis", sparse=True)
    prob = _diag_problem(n, d)
    x0 = np.zeros((n, d))
    for noise in ("generator", "counter"):  # warm-up (CUDA context, kernels, allocator)
        _simulate(prob, W, x0, 1, device, noise)
    sim_s, peak, traj = _simulate(prob, W, x0, steps, device, "generator")
    sim_c_s, peak_c, traj_c = _simulate(prob, W, x0, steps, device, "counter")
    # Bare loop on the same tensors: sparse W @ X, diagonal gradient, Gaussian noise.
    Wt = torch.sparse_csr_tensor(
        torch.as_tensor(W.indptr, dtype=torch.int64),
        torch.as_tensor(W.indices, dtype=torch.int64),
        torch.as_tensor(W.data, dtype=torch.float32),
        size=W.shape,
    ).to(device)
    h = torch.as_tensor(prob.hessian_diagonal, dtype=torch.float32, device=device)
    b = torch.as_tensor(prob.b, dtype=torch.float32, device=device)
    x = torch.zeros(n, d, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    times = []
    for _ in range(steps):
        _sync(device)
        t = time.perf_counter()
        g = h * (x - b) + torch.randn(n, d, device=device, generator=gen) * (1.0 / d) ** 0.5
        x = Wt @ (x - 0.05 * g)
        _sync(device)
        times.append(time.perf_counter() - t)
    bare_s = statistics.median(times)
    return {
        "n": n,
        "d": d,
        "device": device,
        "steps": steps,
        "sim_s_per_step": sim_s,
        "bare_s_per_step": bare_s,
        "ratio": sim_s / bare_s,
        "node_iters_per_s": n / sim_s,
        "peak_gpu_mib": peak,
        "final_error": float(np.mean(traj.error[-1])),
        "sim_counter_s_per_step": sim_c_s,
        "ratio_counter": sim_c_s / bare_s,
        "speedup_counter_vs_generator": sim_s / sim_c_s,
        "peak_gpu_mib_counter": peak_c,
        "final_error_counter": float(np.mean(traj_c.error[-1])),
    }


def counter_devices(nodes=64, count=100_000):
    """Counter-based normals on CPU vs CUDA: words bitwise equal?, largest normal difference."""
    keys = torch.arange(nodes, dtype=torch.int64) * 7919 + 1
    out = {}
    for dev in ("cpu", "cuda"):
        E = counter_rng.index_words(count, dev)
        out[dev] = (
            counter_rng.counter_words(keys.to(dev), 3, E).cpu(),
            counter_rng.counter_normal(keys.to(dev), 3, E).cpu(),
        )
    diff = (out["cpu"][1] - out["cuda"][1]).abs()
    return {
        "words_equal": bool(torch.equal(out["cpu"][0], out["cuda"][0])),
        "normals_max_abs_diff": float(diff.max()),
        "normals_bitwise_equal_fraction": float((diff == 0).double().mean()),
    }


def exact_at_scale(n, device, replicas=256, steps=400):
    """Max |z| of the simulated mean (R replicas) against the exact DSGD prediction."""
    d = 4
    p = heterogeneous_quadratic(n, d, L=1.0, mu=0.2, zeta2=1.0, sigma2=1.0, seed=0)
    W = mixing.mixing_matrix(topology.ring(n), "metropolis", sparse=False)
    x0 = np.zeros((n, d))
    record = list(range(0, steps + 1, steps // 16))
    t0 = time.perf_counter()
    pred = exact_dsgd(p, W, 0.05, steps, x0, form="atc", record=record)
    exact_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    traj = run_simulated(
        DSGD(0.05),
        QuadraticOracle(p),
        W,
        x0,
        steps,
        seed=1,
        record=record,
        replicas=replicas,
        device=device,
        dtype=torch.float64,
    )
    _sync(device)
    sim_s = time.perf_counter() - t0
    out = {
        "n": n,
        "d": d,
        "replicas": replicas,
        "steps": steps,
        "exact_s": exact_s,
        "simulate_s": sim_s,
    }
    for q in ("error", "consensus"):
        m = np.asarray(getattr(traj, q))  # (checkpoints, R)
        mean = m.mean(1)
        se = m.std(1, ddof=1) / np.sqrt(replicas)
        predicted = np.asarray(getattr(pred, q))
        z = np.abs(mean[1:] - predicted[1:]) / se[1:]
        out[f"{q}_max_z"] = float(z.max())
        out[f"{q}_last_pred"] = float(predicted[-1])
        out[f"{q}_last_meas"] = float(mean[-1])
    out["pass"] = bool(out["error_max_z"] < 4 and out["consensus_max_z"] < 4)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--d", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--out", default=".")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check needs CUDA (torch.cuda.is_available() is False)")
    result = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    result["throughput_cuda"] = throughput(args.n, args.d, "cuda", args.steps)
    print("throughput_cuda:", result["throughput_cuda"], flush=True)
    result["throughput_cpu"] = throughput(args.n, args.d, "cpu", max(3, args.steps // 10))
    print("throughput_cpu:", result["throughput_cpu"], flush=True)
    result["counter_devices"] = counter_devices()
    print("counter_devices:", result["counter_devices"], flush=True)
    result["exact_cuda"] = exact_at_scale(args.n, "cuda")
    print("exact_cuda:", result["exact_cuda"], flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_check.json").write_text(json.dumps(result, indent=2))
    return 0 if result["exact_cuda"]["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
