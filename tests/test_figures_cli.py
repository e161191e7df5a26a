"""``theorylab figures``: every figure drawn from a small results folder, PNG and PDF, nothing
written outside ``--out``, and a hostile results folder handled by the validated loader.

The results are synthetic (no claim is run): a ``psgd_dsgd_speedup`` result with the series the
claim saves, and a ``compressed_psgd_floor`` result with its ``floor`` panel, written with
:func:`verify.report.save_result` so their names match their content.
"""

from __future__ import annotations

import json
import os

import pytest

from theorylab.cli import main as theorylab_main
from verify.claims.base import ClaimResult
from verify.report import save_result

STEMS = (
    "1_speedup_psgd_vs_dsgd",
    "2_rho_and_gap_vs_n",
    "3_compression_floor_and_bits",
    "4_local_sgd_tau",
    "5_heterogeneity_dsgd_gt_ed",
    "6_async_delay",
    "7_byzantine_floors",
    "8_transient_iterations",
)


def _speedup_result() -> ClaimResult:
    ns, grid = [2, 4], [2, 3, 4, 8, 16]
    sp: dict = {"x": ns}
    model: dict = {"x": grid}
    for algo, slope in (("psgd", 0.3), ("dsgd", 0.9)):
        for lab, scale in (("small", 1.0), ("large", 0.2)):
            m = [scale * n**slope for n in ns]
            sp[f"{algo} {lab} measured"] = m
            sp[f"{algo} {lab} lo"] = [0.8 * v for v in m]
            sp[f"{algo} {lab} hi"] = [1.2 * v for v in m]
            sp[f"{algo} {lab} predicted"] = m
            model[f"{algo} {lab}"] = [scale * n**slope for n in grid]
    series = {
        "speedup": sp,
        "model": model,
        "ratios": {"small": 0.1, "large": 5.0},
        "compute_s": [0.015, 0.0002],
        "calibration": {"alpha": 1e-3, "beta": 1e-9, "r2": 0.9},
        "caption": "synthetic: gloo on cpu, n = 2..4",
    }
    return ClaimResult(
        claim="psgd_dsgd_speedup", kind="shape", verdict="pass", series=series,
        config={"claim": "psgd_dsgd_speedup", "world_size": 4}, timestamp="2026-12-06T22:00:00",
    )  # fmt: skip


def _floor_result() -> ClaimResult:
    series = {
        "floor": {"x": [1.0, 2.0, 4.0], "exact": [0.01, 0.02, 0.04], "measured": [0.011, 0.019,
                                                                                  0.042]},
        "caption": "synthetic: scaled rand-k, n=4",
    }  # fmt: skip
    return ClaimResult(
        claim="compressed_psgd_floor", kind="exact", verdict="pass", series=series,
        config={"claim": "compressed_psgd_floor"}, timestamp="2026-12-06T22:00:00",
    )  # fmt: skip


def _snapshot(root) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[path] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """One run of ``theorylab figures RESULTS --out OUT --json`` on a folder holding two valid
    results and a collection of hostile entries."""
    base = tmp_path_factory.mktemp("figs")
    results, out = base / "results", base / "out"
    save_result(_speedup_result(), results)
    save_result(_floor_result(), results)
    # hostile entries: each must be skipped with a warning, never followed or executed
    (results / "not_json-abcdef.json").write_text("{not json")
    (results / "deep-abcdef.json").write_text("[" * 5000 + "]" * 5000)
    (results / "a_dir.json").mkdir()
    evil = _speedup_result().to_dict()
    evil["claim"] = "../../escaped"
    (results / "evil-abcdef.json").write_text(json.dumps(evil))
    renamed = _floor_result().to_dict()
    (results / "compressed_psgd_floor-000000.json").write_text(json.dumps(renamed))
    (results / "link.json").symlink_to(base / "outside.json")
    (base / "outside.json").write_text(
        json.dumps({"claim": "x", "kind": "exact", "verdict": "pass"})
    )
    if hasattr(os, "mkfifo"):
        os.mkfifo(results / "fifo-abcdef.json")
    before = _snapshot(base)
    code = theorylab_main(["figures", str(results), "--out", str(out), "--json"])
    after = _snapshot(base)
    return {"base": base, "results": results, "out": out, "code": code, "before": before,
            "after": after}  # fmt: skip


def test_every_lecture_figure_is_drawn_as_png_and_pdf(drawn, capsys):
    assert drawn["code"] == 0
    for stem in STEMS:
        for ext in ("png", "pdf"):
            path = drawn["out"] / f"{stem}.{ext}"
            assert path.is_file() and path.stat().st_size > 1000, path
    assert (drawn["out"] / "1_speedup_psgd_vs_dsgd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (drawn["out"] / "2_rho_and_gap_vs_n.pdf").read_bytes()[:5] == b"%PDF-"
    # each claim's own figure too, named after the (validated) claim
    claims = sorted(p.name for p in (drawn["out"] / "claims").iterdir())
    assert claims == [
        "compressed_psgd_floor.pdf", "compressed_psgd_floor.png",
        "psgd_dsgd_speedup.pdf", "psgd_dsgd_speedup.png",
    ]  # fmt: skip


def test_measured_figures_say_which_claims_they_show(drawn):
    # the figure module reports which saved measurements each figure overlays
    from figures.lecture import draw_all
    from verify.report import load_results

    with pytest.warns(Warning):
        results = load_results(drawn["results"])
    rows = {r["name"]: r for r in draw_all(results, drawn["base"] / "again", only=STEMS[:3])}
    assert rows["1_speedup_psgd_vs_dsgd"]["measured"] == ["psgd_dsgd_speedup"]
    assert rows["2_rho_and_gap_vs_n"]["measured"] == []  # a theory figure
    assert rows["3_compression_floor_and_bits"]["measured"] == ["compressed_psgd_floor"]


def test_nothing_is_written_outside_out(drawn):
    new = {p for p in drawn["after"] if p not in drawn["before"]}
    changed = {p for p, v in drawn["before"].items() if drawn["after"].get(p) != v}
    out = str(drawn["out"])
    assert all(p == out or p.startswith(out + os.sep) for p in new), sorted(new)
    assert changed == set(), sorted(changed)
    assert not (drawn["base"].parent / "escaped.png").exists()


def test_hostile_results_are_skipped_with_a_warning(tmp_path):
    from verify.figures_cli import redraw

    results = tmp_path / "results"
    results.mkdir()
    (results / "junk-abcdef.json").write_text('"just a string"')
    (results / "psgd_dsgd_speedup-abcdef.json").write_text(json.dumps(_speedup_result().to_dict()))
    out = redraw(results, tmp_path / "out", claims=True)
    assert len(out["skipped"]) == 2  # neither is a valid result (type, name vs content)
    assert out["claims"] == []
    assert all(not r["measured"] for r in out["lecture"])
    assert len(out["lecture"]) == len(STEMS)


def test_missing_results_folder_is_a_clear_error(tmp_path, capsys):
    code = theorylab_main(["figures", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
