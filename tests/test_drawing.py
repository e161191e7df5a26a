"""Figures drawn in the background process (verify.drawing) are the inline ones."""

from __future__ import annotations

from verify.claims.base import ClaimResult
from verify.drawing import FigureDrawer, draw_png
from verify.report import save_figure


def _result() -> ClaimResult:
    return ClaimResult(
        claim="not_registered",
        kind="exact",
        verdict="pass",
        series={"panel": {"x": [1, 2, 3], "measured": [1.0, 0.5, 0.25]}},
    )


def test_background_figures_are_written_and_failures_reported(tmp_path):
    r = _result()
    drawer = FigureDrawer()
    assert drawer.submit(r.claim, r.to_dict(), tmp_path / "bg.png")
    assert drawer.submit("broken", {"series": "not a dict"}, tmp_path / "broken.png")
    failed = drawer.close()
    assert (tmp_path / "bg.png").read_bytes()[:4] == b"\x89PNG"
    assert [name for name, _ in failed] == ["broken"]
    assert not list(tmp_path.glob(".*.png"))  # no temporary file left behind


def test_draw_png_matches_the_inline_drawing_size(tmp_path):
    r = _result()
    a = draw_png(r.to_dict(), str(tmp_path / "a.png"))
    b = save_figure(r, tmp_path / "b.png")
    from matplotlib.image import imread

    assert imread(a).shape == imread(str(b)).shape
