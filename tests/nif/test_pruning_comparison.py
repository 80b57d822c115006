"""Pruning curves, weight surgery details and the IG/SHAP comparison."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from distmi.analyses.nif import comparison
from distmi.analyses.nif.graph import build_graph
from distmi.analyses.nif.pruning import (
    accuracy,
    curve_summary,
    predict,
    prune_neurons,
    pruning_curve,
    pruning_orders,
)
from distmi.core.errors import InvalidInputError


def test_pruning_curve(iris_flow, iris_bundle):
    xt, yt = iris_bundle.test
    curve = pruning_curve(iris_bundle.model, iris_flow.graph, iris_flow.neurons, xt, yt,
                          fractions=[0.0, 0.5, 1.0], n_random=3)
    assert set(curve["order"]) == {"nif", "nif_mi", "l1", "random"}
    base = accuracy(iris_bundle.model, xt, yt)
    assert np.allclose(curve.loc[curve["fraction"] == 0, "accuracy"], base)
    # everything pruned: every order gives the same constant prediction
    full = curve.loc[curve["fraction"] == 1, "accuracy"].to_numpy()
    assert np.allclose(full, full[0]) and full[0] < base
    summary = curve_summary(curve)
    assert set(summary.columns) == {"order", "kept_accuracy_to_fraction", "mean_accuracy"}
    orders = pruning_orders(iris_bundle.model, iris_flow.graph, iris_flow.neurons, 2, 0)
    hidden = iris_flow.neurons[iris_flow.neurons["kind"] == "hidden"].reset_index(drop=True)
    first = hidden.iloc[orders["nif"][0][: int(hidden["zero_flow"].sum())]]
    assert first["zero_flow"].all()  # zero-flow neurons are pruned first


def test_fold_into_a_consumer_without_bias():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[0].weight[1] = 0.0
        model[0].bias[1] = 0.5
    g = build_graph(model, None, "classes")
    from dataclasses import replace

    g = replace(g, layers=tuple(replace(layer, n_units=4) if layer.kind == "hidden" else layer
                                for layer in g.layers))
    pruned, report = prune_neurons(model, g, [("1", 1)], {("1", 1): 0.5})
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    np.testing.assert_allclose(predict(pruned, x), predict(model, x), atol=1e-6)
    assert pruned[2].bias is not None and report.pruned == [("1", 1)]
    with pytest.raises(InvalidInputError, match="prune the model the flow was computed on"):
        prune_neurons(nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)), g,
                      [("1", 1)], {})


def test_pruning_input_features_is_skipped(iris_flow, iris_bundle):
    model = copy.deepcopy(iris_bundle.model)
    _, report = prune_neurons(model, iris_flow.graph, [("input", 0)], {})
    assert report.skipped == [("input", 0, "input nodes are not pruned")]


def test_comparison_tables(iris_flow, iris_bundle):
    x, _ = iris_bundle.train
    xt, yt = iris_bundle.test
    comp = comparison.compare_attributions(iris_flow, iris_bundle.model, x, xt, yt)
    ks = comp["ks"].set_index("attribution")
    assert list(ks.index) == ["NIF", "SHAP", "IG"]
    assert ((ks["ks_statistic"] >= 0) & (ks["ks_statistic"] <= 1)).all()
    assert ((ks["p_value"] > 0) & (ks["p_value"] <= 1)).all()
    agree = comp["agreement"]
    assert {"spearman", "top2_overlap"} <= set(agree.columns)
    assert len(agree) == 6  # NIF, SHAP, IG, raw MI: every pair
    dele = comp["deletion"]
    base = accuracy(iris_bundle.model, xt, yt)
    assert np.allclose(dele.loc[dele["n_deleted"] == 0, "accuracy"], base)
    assert set(dele["method"]) == {"NIF", "SHAP", "IG", "raw MI", "random"}
    mats = comp["matrices"]
    assert (mats["importance"] >= 0).all() and len(mats) == 4 * 4 * 3


def test_ks_table_of_identical_matrices_is_zero():
    m = np.arange(12.0).reshape(4, 3)
    table = comparison.ks_table({"same": m * 3.0}, m)
    assert table.loc[0, "ks_statistic"] == 0.0 and table.loc[0, "p_value"] == 1.0


def test_integrated_gradients_completeness(iris_bundle):
    """IG's attributions add up to f(x) - f(baseline) (captum's completeness axiom)."""
    from captum.attr import IntegratedGradients

    x, _ = iris_bundle.train
    base = x.mean(0)
    xt = torch.as_tensor(x[:10])
    attr = IntegratedGradients(iris_bundle.model).attribute(
        xt, baselines=torch.as_tensor(base)[None].expand_as(xt), target=1, n_steps=200)
    gap = predict(iris_bundle.model, x[:10])[:, 1] - predict(iris_bundle.model, base[None])[0, 1]
    np.testing.assert_allclose(attr.sum(1).detach().numpy(), gap, rtol=0.01)
