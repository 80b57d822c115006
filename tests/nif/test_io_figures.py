"""Saving/loading a flow, tamper detection, and the figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import distmi
from distmi.analyses.nif import figures
from distmi.core.errors import CorruptDataError, StoreError


def test_save_load_round_trip(iris_flow, tmp_path):
    path = iris_flow.save(tmp_path / "flow")
    back = distmi.nif.load(path)
    pd.testing.assert_frame_equal(back.links, iris_flow.links)
    pd.testing.assert_frame_equal(back.neurons, iris_flow.neurons)
    pd.testing.assert_frame_equal(back.attribution, iris_flow.attribution)
    pd.testing.assert_frame_equal(back.raw_mi, iris_flow.raw_mi)
    np.testing.assert_array_equal(back.attribution_replicates, iris_flow.attribution_replicates)
    assert back.zero_flow == iris_flow.zero_flow
    assert back.graph == iris_flow.graph
    assert back.settings["estimator"] == "ksg"
    summary = json.loads((path / "summary.json").read_text())
    assert summary["unit"] == "nat" and summary["summary"]["n_links"] == len(iris_flow.links)
    # tables load without distmi
    assert len(pd.read_parquet(path / "links.parquet")) == len(iris_flow.links)


def test_tampered_or_unfinished_saves_are_refused(iris_flow, tmp_path):
    path = iris_flow.save(tmp_path / "flow")
    links = pd.read_parquet(path / "links.parquet")
    links.loc[0, "nif"] = 123.0
    links.to_parquet(path / "links.parquet", index=False)
    with pytest.raises(CorruptDataError, match="does not match the sha256"):
        distmi.nif.load(path)
    (path / "summary.json").unlink()
    with pytest.raises(StoreError, match=r"no summary\.json"):
        distmi.nif.load(path)


def test_figures_render(iris_flow, tmp_path):
    fig = figures.flow_graph(iris_flow.links, iris_flow.neurons)
    fig.savefig(tmp_path / "graph.png")
    assert fig.axes[0].get_title().startswith("information flow")
    n_drawn = sum(1 for line in fig.axes[0].lines)
    assert n_drawn == int((iris_flow.links["nif"] > 0).sum())
    fig = figures.attribution_heatmap(iris_flow.attribution)
    fig.savefig(tmp_path / "heat.png")
    curve = pd.DataFrame({"order": ["nif", "nif", "l1", "l1"], "fraction": [0, 1, 0, 1],
                          "accuracy": [1.0, 0.3, 1.0, 0.3], "accuracy_sd": 0.0})
    figures.pruning_curve_figure(curve).savefig(tmp_path / "curve.png")
    dele = pd.DataFrame({"method": ["NIF", "NIF"], "n_deleted": [0, 4], "accuracy": [1.0, 0.3]})
    figures.deletion_curve_figure(dele).savefig(tmp_path / "del.png")
    for name in ("graph", "heat", "curve", "del"):
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
