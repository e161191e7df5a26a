"""``theorylab verify`` under torchrun: two torchrun "nodes" over loopback give the spawned pool's
result.

Two ``torchrun`` agents (``--nnodes 2 --nproc-per-node 1``, c10d rendezvous on 127.0.0.1, gloo
on the loopback interface) run ``python -m verify --claims executors_agree``: rank 0 drives the
claim and writes the result, rank 1 serves the distributed runs
(:mod:`verify.runtime.torchrun`). The saved result must equal the one the spawned
:class:`~verify.runtime.WorkerPool` gives at world size 2 for the same seed (same checks, same
measurements and series, bit for bit: the same tasks with the same seeds on the same machine).
A second job checks the error path: a task that raises on rank 1 becomes a
:class:`~verify.runtime.launch.DistributedError` on rank 0 naming it, and rank 1 keeps serving.
Every subprocess has a timeout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from verify.claims import ClaimContext
from verify.report import run_claims

ROOT = Path(__file__).resolve().parents[1]
CLAIM = "executors_agree"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "GLOO_SOCKET_IFNAME": "lo",
        "OMP_NUM_THREADS": "1",
    }


def _two_nodes(target: list[str], cwd, timeout: float = 400) -> list[subprocess.CompletedProcess]:
    """Run ``target`` (``-m module ...`` or a script) as two torchrun nodes of one rank each."""
    port = _port()
    procs = []
    for _ in range(2):
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
            "--nproc-per-node", "1", "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "verify-test",
            "--max-restarts", "0", *target,
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(
                cmd,
                env=_env(),
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
        )
    out = []
    try:
        for p in procs:
            stdout, _ = p.communicate(timeout=timeout)
            out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, ""))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    return out


def _strip(result: dict) -> dict:
    """The parts of a saved result that depend on the measurement, not on the run's clock."""
    drop = {"wall_s", "timestamp", "versions", "traceback"}
    return {k: v for k, v in result.items() if k not in drop}


@pytest.mark.timeout(900)
def test_verify_under_torchrun_matches_spawned_pool(tmp_path):
    results = tmp_path / "torchrun"
    procs = _two_nodes(
        ["-m", "verify", "--claims", CLAIM, "--results", str(results), "--no-figures",
         "--quiet", "--seed", "3"],
        tmp_path,
    )  # fmt: skip
    for p in procs:
        assert p.returncode == 0, p.stdout[-3000:]
    assert any("1/1 claims pass" in p.stdout and "world size 2" in p.stdout for p in procs)
    files = list(results.glob(f"{CLAIM}-*.json"))
    assert len(files) == 1, [p.stdout[-2000:] for p in procs]
    under_torchrun = json.loads(files[0].read_text())
    # the spawned pool, same seed, same world size
    spawned_dir = tmp_path / "spawned"
    with ClaimContext("quick", world_size=2, seed=3) as ctx:
        (spawned,) = run_claims([CLAIM], ctx, spawned_dir, figures=False)
    spawned_files = list(spawned_dir.glob(f"{CLAIM}-*.json"))
    assert [f.name for f in spawned_files] == [files[0].name]  # same configuration hash
    a, b = _strip(under_torchrun), _strip(json.loads(spawned_files[0].read_text()))
    assert a["verdict"] == b["verdict"] == "pass"
    assert a["world_size"] == b["world_size"] == 2
    assert a["bytes_sent"] == b["bytes_sent"] > 0
    assert a == b


_ERROR_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch.distributed as dist
    from verify.runtime.launch import DistributedError
    from verify.runtime.torchrun import TorchrunPool, serve, start


    def fails_on_1(rank, world_size):
        if rank == 1:
            raise ValueError("planted failure on rank 1")
        return rank


    def square(rank, world_size, x):
        return rank + x * x


    rank, world, control = start("gloo", "cpu", timeout_s=30, control_timeout_s=120)
    if rank != 0:
        print("served", serve(control, rank, world))
    else:
        pool = TorchrunPool(control, rank, world)
        try:
            pool.run(fails_on_1)
        except DistributedError as exc:
            print("error:", exc)
        print("after:", pool.run(square, 3))
        pool.close()
    dist.destroy_process_group()
    """
)


@pytest.mark.timeout(600)
def test_torchrun_pool_reports_a_rank_error_and_keeps_serving(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(_ERROR_SCRIPT)
    procs = _two_nodes([str(script)], tmp_path, timeout=300)
    text = "\n".join(p.stdout for p in procs)
    for p in procs:
        assert p.returncode == 0, text[-3000:]
    assert "rank 1: ValueError: planted failure on rank 1" in text
    assert "after: [9, 10]" in text
    assert "served 2" in text
