"""The ``theorylab topology`` command: table and --json output."""

import json
import math

import pytest

from theorylab.cli import main


def test_table(capsys):
    assert main(["topology", "ring", "--n", "8"]) == 0
    out = capsys.readouterr().out
    assert "ring, weights metropolis" in out
    assert "0.804737854124365" in out  # 1/3 + 2/3 cos(2 pi / 8)
    assert "iterations to 1e-06 consensus" in out and "dense" in out


def test_json_closed_forms(capsys):
    assert main(["topology", "hypercube", "--n", "16", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert abs(res["rho"] - 0.6) < 1e-12 and res["degree_max"] == 4
    assert res["mixing_time_1e-06"] == 28  # 0.6^28 < 1e-6 < 0.6^27
    assert main(["topology", "one-peer-exponential", "--n", "8", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rho"] == 0.0 and res["period"] == 3


def test_options(capsys, tmp_path):
    assert main(["topology", "torus", "--rows", "3", "--cols", "5", "--lazy", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 15 and "lazy" in res["weights"]
    assert (
        main(
            [
                "topology",
                "random-regular",
                "--n",
                "20",
                "--degree",
                "3",
                "--seed",
                "1",
                "--weights",
                "uniform",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["degree_max"] == 3
    f = tmp_path / "edges.txt"
    f.write_text("0 1\n1 2\n2 0\n")
    assert main(["topology", "--edgelist", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rho"] < 1e-12  # triangle: W = J


def test_sparse_large_ring(capsys):
    assert main(["topology", "ring", "--n", "20000", "--weights", "uniform", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (
        res["method"].startswith("sparse")
        and abs(res["spectral_gap"] - 2 / 3 * (1 - math.cos(2 * math.pi / 20000))) < 1e-15
    )


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["topology", "ring", "--n", "2"], "n >= 3"),
        (["topology", "random-regular", "--n", "10"], "degree"),
        (["topology", "star", "--n", "5", "--weights", "uniform"], "regular"),
        (["topology", "erdos-renyi", "--n", "50", "--p", "0.01"], "larger p"),
    ],
)
def test_errors(argv, msg, capsys):
    assert main(argv) == 2
    assert msg in capsys.readouterr().err


def test_edgelist_without_family(capsys, tmp_path):
    # --help says "--edgelist: read the graph from an edge-list file instead" (of a family)
    f = tmp_path / "edges.txt"
    f.write_text("0 1\n1 2\n2 0\n")
    assert main(["topology", "--edgelist", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rho"] < 1e-12  # triangle: W = J


def test_family_or_edgelist_required(capsys, tmp_path):
    assert main(["topology", "--n", "5"]) == 2
    assert "--edgelist" in capsys.readouterr().err
    f = tmp_path / "edges.txt"
    f.write_text("0 1\n1 2\n2 0\n")
    assert main(["topology", "ring", "--n", "5", "--edgelist", str(f)]) == 2
    assert "not both" in capsys.readouterr().err


def test_missing_edgelist_file_is_a_clean_error(capsys, tmp_path):
    missing = tmp_path / "missing.txt"
    assert main(["topology", "--edgelist", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "missing.txt" in err and "Traceback" not in err
    assert main(["weights", "path", "--n", "4", "--save", str(tmp_path / "no" / "W.npy")]) == 2
    assert "W.npy" in capsys.readouterr().err


def test_weights_save_reports_the_file_written(capsys, tmp_path):
    # np.save appends .npy to a name without it; the report must name the real file
    import numpy as np

    target = tmp_path / "W"
    assert main(["weights", "path", "--n", "4", "--no-sdp", "--save", str(target), "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)["saved"]["fdla"]
    assert saved == str(target) + ".npy" and np.load(saved).shape == (4, 4)


def test_closed_pipe_is_quiet():
    # `theorylab topology ... | head -1`: no traceback and no error line when the reader quits
    import subprocess
    import sys

    code = "import sys; from theorylab.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "topology", "ring", "--n", "4", "--json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # nobody reads: the first write raises BrokenPipeError
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert err == ""


def test_large_n_routes(capsys):
    """Routes the CLI takes at large n: the complete graph by its structure (W = a I + (1 - a) J,
    rho = |a|), random geometric with its default radius, the one-peer schedule lazily."""
    assert main(["topology", "complete", "--n", "3000", "--weights", "max-degree", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rho"] == pytest.approx(1 / 2999, abs=1e-16) and res["degree_max"] == 2999
    assert res["method"].startswith("structured")
    assert main(["topology", "complete", "--n", "50", "--weights", "max-degree", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rho"] == pytest.approx(1 / 49, abs=1e-14)
    assert main(["topology", "random-geometric", "--n", "3000", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    from theorylab import mixing, spectral, topology

    G = topology.random_geometric(3000, seed=0)  # the same default radius
    W = mixing.mixing_matrix(G, "metropolis", sparse=True)
    assert res["rho"] == pytest.approx(spectral.rho(W), abs=1e-12)
    assert res["method"].startswith("sparse")
    assert main(["topology", "one-peer-exponential", "--n", "12", "--lazy", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    sched = topology.one_peer_exponential(12)
    lazy = topology.Schedule([mixing.lazy(W) for W in sched.matrices])
    assert res["rho"] == pytest.approx(spectral.schedule_rho(lazy), abs=1e-12)
    assert "lazy" in res["weights"]
