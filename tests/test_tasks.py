"""verify.tasks (torchrun tasks, outside the executor) and Algorithm.example (registry-driven)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from theorylab.errors import TheorylabError
from theorylab.stochastic import check_schedule
from verify.algorithms import ALGORITHMS
from verify.run import run_simulated
from verify.runtime.entry import resolve_task
from verify.runtime.launch import free_port
from verify.tasks import quadratic_run, quadratic_setup, ring_mix_check


def test_example_builds_every_registered_algorithm():
    # the table of quadratic_setup is the registry: every algorithm, no hand-kept list
    options = {"consensus_step": 0.5}  # CHOCO's consensus step has no default
    for cls in ALGORITHMS.values():
        algo = cls.example(gamma=0.05, **options)  # "form" means different things per family
        assert isinstance(algo, cls) and algo.config().get("gamma") in (None, 0.05)
    assert ALGORITHMS["dsgd"].example(gamma=0.05, form="cta").config()["form"] == "cta"
    if "choco" in ALGORITHMS:
        with pytest.raises(TypeError, match=r"example needs \['consensus_step'\]"):
            ALGORITHMS["choco"].example(gamma=0.1)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_quadratic_setup_runs_every_algorithm(name):
    algo, oracle, schedule, x0 = quadratic_setup(
        4, algorithm=name, d=3, replicas=2, options={"consensus_step": 0.5}
    )
    assert x0.shape == (4, 2, 3)
    check_schedule(schedule, n=4, stochasticity=algo.stochasticity)
    traj = run_simulated(algo, oracle, schedule, x0, steps=3, seed=0)
    assert np.all(np.isfinite(traj.consensus))


def test_quadratic_setup_schedules_and_errors():
    (W,) = quadratic_setup(5)[2]
    np.testing.assert_allclose(W[0], [1 / 3, 1 / 3, 0, 0, 1 / 3], rtol=0, atol=1e-15)
    (W2,) = quadratic_setup(2)[2]
    np.testing.assert_array_equal(W2, np.full((2, 2), 0.5))
    mats = quadratic_setup(8, topology="one_peer_exp")[2]
    assert len(mats) == 3  # log2(8) rounds, exact average
    prod = mats[2] @ mats[1] @ mats[0]
    np.testing.assert_allclose(prod, np.full((8, 8), 1 / 8), rtol=0, atol=1e-15)
    with pytest.raises(TheorylabError, match="algorithm must be one of"):
        quadratic_setup(4, algorithm="nope")
    with pytest.raises(TheorylabError, match="topology must be one of"):
        quadratic_setup(4, topology="star")


def test_old_task_paths_are_deprecated_aliases():
    with pytest.warns(DeprecationWarning, match="moved to verify.tasks.quadratic_run"):
        assert resolve_task("verify.runtime.entry:quadratic_run") is quadratic_run
    with pytest.warns(DeprecationWarning):
        from verify.runtime.entry import ring_mix_check as old
    assert old is ring_mix_check
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_task("verify.tasks:quadratic_run") is quadratic_run


@pytest.mark.distributed
def test_entry_writes_into_a_new_results_folder(tmp_path):
    # the README's torchrun line writes results/run.json (not run.json in the repository root);
    # the folder is created. One rank, the environment torchrun would set.
    env = dict(os.environ, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
    env["MASTER_PORT"] = str(free_port())
    cmd = [
        sys.executable, "-m", "verify.runtime.entry", "--task", "verify.tasks:quadratic_run",
        "--args", json.dumps({"steps": 3, "zeta2": 0.0}), "--out", "results/run.json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads((tmp_path / "results" / "run.json").read_text())
    assert payload["task"] == "verify.tasks:quadratic_run" and payload["world_size"] == 1
    assert len(payload["result"]["error"]) >= 3
    assert not (tmp_path / "run.json").exists()
