"""Every figure function returns a Figure and writes a PNG."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from distmi.analyses.decompose import figures
from distmi.analyses.decompose.evaluation import Curve


def test_figures_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((8, 8))
    maps = {k: rng.random((4, 4)) for k in ("total", "decision", "redundant")}
    curve = [Curve(kind, "m", np.linspace(0, 1, 5), np.linspace(1, 0, 5), np.linspace(1, 0, 5))
             for kind in ("deletion", "insertion")]
    made = [
        figures.heatmap_figure(maps["total"], "total"),
        figures.overlay_figure(image[None], maps["decision"], "decision"),
        figures.decomposition_figure(image, maps, "sample"),
        figures.class_means_figure({0: {**maps, "count": 3}, 1: {**maps, "count": 2}}),
        figures.token_figure(["[CLS]", "the", "cat", "[SEP]"],
                             {"total": np.array([0.1, 0.5, 1.0, np.nan]),
                              "decision": np.zeros(4)}),
        figures.curves_figure(curve, "curves"),
    ]
    for i, fig in enumerate(made):
        assert isinstance(fig, Figure)
        path = figures.save_png(fig, tmp_path / f"f{i}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
