"""The ``theorylab rate`` command: its numbers are the Python API's (theorylab.calculator,
theorylab.knobs), --json round-trips, and every bad input is a message, never a traceback."""

from __future__ import annotations

import json
import math

import pytest

from theorylab import calculator, knobs
from theorylab.cli import main
from theorylab.output import format_value, to_jsonable

DSGD = ["--n", "16", "--topology", "ring", "--weights", "metropolis", "--L", "1", "--mu", "0.1",
        "--sigma2", "1", "--zeta2", "1", "--r0-sq", "1", "--T", "1000"]  # fmt: skip
DSGD_KW = dict(n=16, topology="ring", weights="metropolis", L=1.0, mu=0.1, sigma2=1.0,
               zeta2=1.0, r0_sq=1.0)  # fmt: skip


def _json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_equals_python_api(capsys):
    got = _json(capsys, ["rate", "dsgd", *DSGD])
    pred = calculator.predict("dsgd", T=1000, **DSGD_KW)
    assert got == json.loads(json.dumps(to_jsonable(pred)))  # the JSON round trip is lossless
    assert got["rate"]["total"] == pred.total
    assert got["exact"]["value"] == pred.exact["value"]
    assert got["inputs"]["rho"] == pred.inputs["rho"]
    assert got["transient"]["value"] == pred.transient["value"]


def test_table_shows_terms_totals_exact_and_transient(capsys):
    assert main(["rate", "dsgd", *DSGD]) == 0
    out = capsys.readouterr().out
    pred = calculator.predict("dsgd", T=1000, **DSGD_KW)
    for term, v in pred.rate.terms.items():
        assert term in out and format_value(float(v)) in out
    assert format_value(pred.total) in out
    for e in pred.exact["value"]:
        assert format_value(e) in out  # the exact curve next to the bound
    assert "transient iterations: " + format_value(pred.transient["value"]) in out
    assert "kind     upper" in out and "ring (n = 16) with metropolis weights" in out
    assert "theorylab.exact.exact_dsgd" in out


def test_compare(capsys):
    argv = ["rate", "--compare", "psgd", "dsgd", "gradient_tracking", "exact_diffusion", *DSGD]
    got = _json(capsys, argv)
    preds = calculator.compare(["psgd", "dsgd", "gradient_tracking", "exact_diffusion"],
                               T=1000, **DSGD_KW)  # fmt: skip
    assert got == json.loads(json.dumps(to_jsonable({"compare": preds})))
    assert main(argv) == 0
    out = capsys.readouterr().out
    for p in preds:
        assert p.algorithm in out and format_value(p.total) in out


def test_nonconvex_and_compressor_and_delays(capsys):
    got = _json(
        capsys,
        [
            "rate",
            "asgd_delayed",
            "--L",
            "1",
            "--sigma2",
            "0.5",
            "--f-gap",
            "3",
            "--gamma",
            "0.05",
            "--tau-max",
            "4",
            "--tau-avg",
            "2",
            "--T",
            "500",
        ],
    )
    direct = calculator.rate("asgd_delayed", T=500, L=1.0, sigma2=0.5, f_gap=3.0, gamma=0.05,
                             tau_max=4, tau_avg=2)  # fmt: skip
    assert got["rate"] == json.loads(json.dumps(to_jsonable(direct)))
    got = _json(capsys, ["rate", "compressed_psgd", "--compressor", "rand-k:k=2", "--d", "8",
                         "--n", "4", "--L", "1", "--mu", "0.5", "--sigma2", "1", "--gamma",
                         "0.1", "--T", "50"])  # fmt: skip
    assert got["inputs"]["omega"] == 3.0 and got["exact"]["T"] == [5, 50]


def test_best_step_cli_equals_api(capsys):
    argv = ["rate", "psgd", "--n", "8", "--L", "1", "--mu", "0.1", "--sigma2", "1", "--r0-sq",
            "1", "--T", "100", "--best", "step", "--target", "0.05", "--alpha", "1e-4", "--beta",
            "1e-9", "--compute-time", "1e-3"]  # fmt: skip
    got = _json(capsys, argv)
    model = knobs.comm_model(alpha=1e-4, beta=1e-9, compute_s=1e-3, d=4)
    ch = knobs.best_step("psgd", target=0.05, model=model, n=8, L=1.0, mu=0.1, sigma2=1.0,
                         r0_sq=1.0)  # fmt: skip
    assert got == json.loads(json.dumps(to_jsonable(ch)))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"best step for psgd: {format_value(ch.choice)}" in out


def test_best_tau_and_topology_cli(capsys):
    got = _json(capsys, ["rate", "local_sgd", "--n", "8", "--L", "1", "--mu", "0.5", "--sigma2",
                         "0", "--zeta2", "1e-3", "--r0-sq", "1", "--gamma", "0.05", "--T",
                         "3000", "--best", "tau", "--target", "1e-2", "--alpha", "1e-3",
                         "--beta", "0", "--nbytes", "0", "--compute-time", "1e-4", "--taus",
                         "1,2,4,8,16", "--T-max", "3000"])  # fmt: skip
    assert got["choice"] == 4 and [r["iterations"] for r in got["rows"]] == [
        91,
        105,
        149,
        1212,
        None,
    ]
    got = _json(capsys, ["rate", "dsgd", "--n", "16", "--L", "1", "--mu", "0.5", "--sigma2", "0",
                         "--zeta2", "1", "--r0-sq", "1", "--T", "100", "--best", "topology",
                         "--max-degree", "1", "--target", "1e-2", "--alpha", "1e-3"])  # fmt: skip
    assert got["choice"] == "one-peer exponential" and math.isfinite(got["time_s"])


def test_W_file(capsys, tmp_path):
    import numpy as np

    from theorylab.mixing import mixing_matrix
    from theorylab.topology import ring

    path = tmp_path / "W.npy"
    np.save(path, mixing_matrix(ring(8), "metropolis"))
    base = ["rate", "dsgd", "--n", "8", "--L", "1", "--mu", "0.5", "--sigma2", "1", "--T", "50"]
    a = _json(capsys, [*base, "--W", str(path)])
    b = _json(capsys, [*base, "--topology", "ring"])
    assert a["rate"] == b["rate"] and a["exact"]["value"] == b["exact"]["value"]
    assert main([*base, "--W", str(tmp_path / "missing.npy")]) == 2
    assert "missing.npy" in capsys.readouterr().err


def test_list(capsys):
    assert main(["rate", "--list"]) == 0
    out = capsys.readouterr().out
    for name in calculator.available():
        assert name in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["rate", "nope", "--L", "1", "--T", "10"], "unknown algorithm 'nope'"),
        (["rate", "psgd", "--L", "1", "--mu", "0.5"], "give the horizon --T"),
        (["rate", "--L", "1", "--T", "10"], "give an ALGORITHM"),
        (["rate", "dsgd", "--L", "1", "--mu", "0.5", "--T", "10", "--rho", "0.5", "--topology",
          "ring", "--n", "8"], "one of rho, topology and W"),
        (["rate", "dsgd", "--L", "1", "--mu", "0.5", "--T", "10", "--n", "8"], "needs the graph"),
        (["rate", "psgd", "--L", "-1", "--T", "10"], "L"),
        (["rate", "psgd", "--L", "1", "--mu", "2", "--T", "10"], "need mu <= L"),
        (["rate", "psgd", "--L", "1", "--T", "10"], "f_gap"),
        (["rate", "dsgd", "--L", "1", "--mu", "0.5", "--T", "10", "--n", "8", "--topology",
          "ring", "--weights", "bogus"], "unknown weight rule"),
        (["rate", "dsgd", "--L", "1", "--mu", "0.5", "--T", "10", "--n", "8", "--topology",
          "nosuch"], "unknown topology family"),
        (["rate", "compressed_psgd", "--L", "1", "--mu", "0.5", "--T", "10", "--compressor",
          "zip"], "unknown compressor"),
        (["rate", "psgd", "--L", "1", "--mu", "0.5", "--T", "10", "--best", "step"], "--target"),
        (["rate", "dsgd", "--L", "1", "--mu", "0.5", "--T", "10", "--n", "8", "--best",
          "topology", "--target", "0.1"], "--max-degree"),
        (["rate", "psgd", "--L", "1", "--mu", "0.5", "--T", "10", "--Ts", "1,x"], "--Ts"),
        (["rate", "psgd", "--L", "1", "--mu", "0.5", "--T", "10", "--best", "tau", "--target",
          "0.1"], "period"),
    ],
)  # fmt: skip
def test_bad_input_is_a_message(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("theorylab rate: error: ") and message in err
    assert "Traceback" not in err
