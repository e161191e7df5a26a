"""verify.calibrate: alpha-beta calibration by ping-pong on the real runtime (2 gloo ranks).

Timings on a shared 2-core machine are noisy and bimodal (a round trip takes ~0.1 ms, or a few
ms when a rank waits for a CPU), so the tests assert only what survives that noise: positivity,
finiteness, the arithmetic of the fit and of the table, and that a 4 MiB message's fastest round
trip is slower than an 8 B message's fastest one (measured margin ~20x; a false failure needs
every one of the 30 trials of the 8 B message to be delayed by more than the whole 4 MiB
transfer). No test bounds a measured time from above or compares it with the prediction.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from theorylab.cli import main
from theorylab.cost import CommModel, round_time
from theorylab.errors import TheorylabError
from verify.calibrate import DEFAULT_SIZES, Calibration, measure_alpha_beta


@pytest.fixture(scope="module")
def calibration(pool) -> Calibration:
    # "min": the link itself, robust to scheduling delays (see the module docstring)
    return measure_alpha_beta(2, repeats=30, warmup=2, pool=pool, statistic="min")


def test_fit_positive_finite(calibration):
    assert calibration.alpha > 0 and math.isfinite(calibration.alpha)
    assert calibration.beta > 0 and math.isfinite(calibration.beta)
    assert math.isfinite(calibration.r2) and calibration.r2 <= 1.0
    assert calibration.fit.points == len(DEFAULT_SIZES)


def test_fit_is_least_squares_of_the_table(calibration):
    b = np.array([row["bytes"] for row in calibration.table], dtype=float)
    s = np.array([row["one_way_s"] for row in calibration.table])
    beta, alpha = np.polyfit(b, s, 1)  # independent OLS (no clipping happened: both > 0)
    assert calibration.alpha == pytest.approx(alpha, rel=1e-6, abs=1e-12)
    assert calibration.beta == pytest.approx(beta, rel=1e-6)
    pred = alpha + beta * b
    r2 = 1 - np.sum((s - pred) ** 2) / np.sum((s - s.mean()) ** 2)
    assert calibration.r2 == pytest.approx(r2, rel=1e-6, abs=1e-9)
    for row, p in zip(calibration.table, pred):
        assert row["predicted_s"] == pytest.approx(p, rel=1e-6)


def test_table(calibration):
    assert [row["bytes"] for row in calibration.table] == sorted(DEFAULT_SIZES)
    for row in calibration.table:
        assert row["one_way_s"] == row["round_trip_s"] / 2  # statistic "min"
        assert row["round_trip_s"] == row["round_trip_min_s"]
        assert 0 < row["round_trip_min_s"] <= row["round_trip_median_s"] <= row["round_trip_max_s"]
    small, large = calibration.table[0], calibration.table[-1]
    assert (small["bytes"], large["bytes"]) == (8, 4 * 2**20)
    assert large["round_trip_min_s"] > small["round_trip_min_s"]


def test_ring_validation_point(calibration):
    ring = calibration.ring
    assert (ring["n"], ring["degree"], ring["bytes"]) == (2, 1, 2**20)
    assert ring["measured_s"] > 0 and math.isfinite(ring["measured_s"])
    model = CommModel(calibration.alpha, calibration.beta, 2**20, 0.0)
    assert ring["predicted_sequential_s"] == pytest.approx(round_time(1, model))
    # degree 1: sequential and parallel sends cost the same, alpha + beta b
    assert ring["predicted_parallel_s"] == pytest.approx(
        calibration.alpha + calibration.beta * 2**20
    )
    d = calibration.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["alpha"] == calibration.alpha and d["statistic"] == "min"


def test_bad_arguments(pool):
    with pytest.raises(TheorylabError, match="two distinct"):
        measure_alpha_beta(2, sizes=(64, 64), pool=pool)
    with pytest.raises(TheorylabError, match="statistic"):
        measure_alpha_beta(2, statistic="mean", pool=pool)
    with pytest.raises(TheorylabError, match="world size 2"):
        measure_alpha_beta(3, pool=pool)
    with pytest.raises(TheorylabError, match="world_size"):
        measure_alpha_beta(1)


def test_design_cli_calibrate(capsys):
    argv = ["design", "--n", "16", "--max-degree", "2", "--calibrate", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    cal = out["calibration"]
    assert cal["alpha"] > 0 and math.isfinite(cal["alpha"])
    assert cal["beta"] >= 0 and math.isfinite(cal["beta"])  # median: beta may clip to 0 if noisy
    assert "r2" in cal and len(cal["table"]) == len(DEFAULT_SIZES)
    assert (out["model"]["alpha"], out["model"]["beta"]) == (cal["alpha"], cal["beta"])
    assert out["candidates"] and all(c["degree"] <= 2 for c in out["candidates"])
