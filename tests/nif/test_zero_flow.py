"""Planted zero-flow neurons: dead (constant) neurons and neurons whose inputs are all zero."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import distmi
from distmi.analyses.nif.linkmethod import _constant
from distmi.analyses.nif.pruning import accuracy, predict

DEAD_1 = (2, 5)      # act1: bias -1, incoming weights 0 -> relu(-1) = 0 for every row
CONST_1 = (8,)       # act1: incoming weights 0, bias 0.7 -> constant 0.7 (inputs all zero)
FED_BY_DEAD_2 = (3,)  # act2: reads only the dead act1 neurons, bias 0.4 -> constant 0.4
DEAD_2 = (6,)        # act2: bias -1000 -> dead


@pytest.fixture(scope="module")
def planted(iris_bundle):
    import torch

    model = copy.deepcopy(iris_bundle.model)
    with torch.no_grad():
        for u in DEAD_1:
            model.fc1.weight[u] = 0.0
            model.fc1.bias[u] = -1.0
        for u in CONST_1:
            model.fc1.weight[u] = 0.0
            model.fc1.bias[u] = 0.7
        for u in FED_BY_DEAD_2:
            model.fc2.weight[u] = 0.0
            model.fc2.weight[u, list(DEAD_1)] = 1.5
            model.fc2.bias[u] = 0.4
        for u in DEAD_2:
            model.fc2.bias[u] = -1000.0
    x, y = iris_bundle.train
    flow = distmi.nif.information_flow(model, x, y, n_bootstrap=4, n_permutations=1999)
    return model, flow


def test_planted_neurons_are_exactly_the_zero_flow_set(planted, iris_bundle):
    model, flow = planted
    x, y = iris_bundle.train
    planted_set = ({("act1", u) for u in DEAD_1 + CONST_1}
                   | {("act2", u) for u in FED_BY_DEAD_2 + DEAD_2})
    hidden = flow.neurons[flow.neurons["kind"] == "hidden"]
    constant = {(a, int(u)) for a, u, c in zip(hidden["layer"], hidden["unit"],
                                               hidden["constant"], strict=True) if c}
    assert planted_set <= constant  # the model's own dead neurons may come on top
    zero_hidden = {z for z in flow.zero_flow if z[0] != "input"}
    assert zero_hidden == constant
    # every other hidden neuron carries class information (Ross/KSG vs the label, with a
    # permutation null): so no live class-carrying neuron was flagged
    acts = {}
    hooks = [getattr(model, name).register_forward_hook(
        lambda _m, _i, o, name=name: acts.__setitem__(name, o.detach().numpy()))
        for name in ("act1", "act2")]
    predict(model, x)
    for h in hooks:
        h.remove()
    live = [(a, u) for a, u in zip(hidden["layer"], hidden["unit"], strict=True)
            if (a, int(u)) not in constant]
    cols = np.stack([acts[a][:, u] for a, u in live], axis=1)
    mi = distmi.pairwise_mi(cols, y, method="ksg", discrete_y=True, n_bootstrap=0)
    rng = np.random.default_rng(0)
    null = [distmi.pairwise_mi(cols, rng.permutation(y), method="ksg", discrete_y=True,
                               n_bootstrap=0)["estimate"].max() for _ in range(20)]
    assert (mi["estimate"].to_numpy() > max(null)).all()
    for a, u in constant:
        assert _constant(acts[a][:, u].astype(np.float64))
    row = flow.neurons.set_index(["layer", "unit"])
    for z in constant:
        assert row.loc[z, "p_value"] == 1.0


def test_pruning_planted_neurons_changes_nothing(planted, iris_bundle):
    model, flow = planted
    pruned = flow.prune(model)
    report = flow.last_prune
    assert set(report.pruned) == {z for z in flow.zero_flow if z[0] != "input"}
    assert report.params_zeroed > 0
    # the folded constants (0.7 and 0.4) keep the logits on every row, train and test
    x_all = iris_bundle.x
    np.testing.assert_allclose(predict(pruned, x_all), predict(model, x_all), atol=1e-5)
    xt, yt = iris_bundle.test
    assert accuracy(pruned, xt, yt) == accuracy(model, xt, yt)
    # the original model is untouched
    assert float(model.fc1.bias[CONST_1[0]].detach()) == pytest.approx(0.7)
    assert float(pruned.fc1.bias[CONST_1[0]].detach()) == 0.0
    assert float(pruned.fc2.weight[:, CONST_1[0]].detach().abs().sum()) == 0.0
