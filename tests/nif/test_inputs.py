"""Graph discovery and bad input: clear errors that name the problem and the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import distmi
from distmi.analyses.nif.graph import build_graph
from distmi.core.errors import (
    InvalidInputError,
    InvalidParameterError,
    LengthMismatchError,
    NonFiniteInputError,
    SingleClassError,
    UnknownLayerError,
)


def test_discovers_the_iris_mlp(iris_bundle):
    g = build_graph(iris_bundle.model, None, "classes")
    assert g.names == ["input", "act1", "act2", "classes"]
    assert [(layer.producer, layer.consumer) for layer in g.hidden] == [("fc1", "fc2"), ("fc2", "out")]
    assert g.layers[0].consumer == "fc1"
    g = build_graph(iris_bundle.model, None, "logits")
    assert g.names[-1] == "logits" and g.layers[-1].producer == "out"


def test_discovers_a_sequential_with_extra_modules():
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.1),
                          nn.Linear(8, 6), nn.GELU(), nn.Linear(6, 3))
    g = build_graph(model, None, "classes")
    assert g.names == ["input", "2", "5", "classes"]
    assert [(layer.producer, layer.consumer) for layer in g.hidden] == [("0", "4"), ("4", "6")]


def test_conv_channels_are_nodes():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3))
    x = np.random.default_rng(0).normal(size=(60, 1, 6, 6)).astype(np.float32)
    from distmi.analyses.nif.capture import capture_activations

    acts, _logits, g = capture_activations(model, build_graph(model, None, "classes"), x)
    assert acts["1"].shape == (60, 4) and acts["input"].shape == (60, 36)
    assert g.hidden[0].conv and g.hidden[0].consumer == "3"


def test_model_without_the_named_layers(iris_bundle):
    x, y = iris_bundle.train
    with pytest.raises(UnknownLayerError, match=r"no module\(s\) \['act3'\].*Did you mean"):
        distmi.nif.information_flow(iris_bundle.model, x, y, layers=["act1", "act3"])


def test_model_without_linear_and_activation():
    model = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(InvalidInputError, match="no Linear/Conv layer followed by an activation"):
        distmi.nif.information_flow(model, np.zeros((20, 4)), np.arange(20) % 3)


def test_labels_of_the_wrong_length(iris_bundle):
    x, y = iris_bundle.train
    with pytest.raises(LengthMismatchError, match="y has 119 labels but X has 120 rows"):
        distmi.nif.information_flow(iris_bundle.model, x, y[:-1])


@pytest.mark.parametrize(("labels", "match"), [
    (lambda y: y + 5, r"labels must be 0\.\.2"),
    (lambda y: y.astype(str), "integer class indices"),
    (lambda y: np.eye(3)[y], "not one-hot"),
    (lambda y: np.zeros_like(y), "single class"),
])
def test_bad_labels(iris_bundle, labels, match):
    x, y = iris_bundle.train
    err = SingleClassError if "single" in match else InvalidInputError
    with pytest.raises(err, match=match):
        distmi.nif.information_flow(iris_bundle.model, x, labels(y))


class _Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.act1 = nn.ReLU()
        self.out = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act1(self.fc1(x)))


def test_non_classification_output():
    x = np.random.default_rng(0).normal(size=(40, 4))
    with pytest.raises(InvalidInputError, match=r"not \(n, C\) class scores.*C >= 2"):
        distmi.nif.information_flow(_Regressor(), x, np.arange(40) % 2)


def test_non_finite_inputs_and_bad_settings(iris_bundle):
    x, y = iris_bundle.train
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(NonFiniteInputError, match="layer 'input' holds NaN"):
        distmi.nif.information_flow(iris_bundle.model, bad, y)
    with pytest.raises(InvalidParameterError, match="outputs must be one of"):
        distmi.nif.information_flow(iris_bundle.model, x, y, outputs="probabilities")
    with pytest.raises(InvalidParameterError, match="redundancy_order must be one of"):
        distmi.nif.information_flow(iris_bundle.model, x, y, redundancy_order="random")
    with pytest.raises(InvalidParameterError, match="bound must be one of"):
        distmi.nif.information_flow(iris_bundle.model, x, y, bound="nwj")
    with pytest.raises(LengthMismatchError, match="feature_names has 3 names"):
        distmi.nif.information_flow(iris_bundle.model, x, y, feature_names=["a", "b", "c"])
    with pytest.raises(InvalidParameterError, match="reserved layer names"):
        build_graph(nn.Sequential(), ["input"], "classes")


def test_import_distmi_stays_light():
    import subprocess
    import sys

    code = ("import sys, distmi; assert 'torch' not in sys.modules and 'ray' not in sys.modules;"
            "m = distmi.nif; assert m.information_flow; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_logits_as_outputs(iris_bundle):
    x, y = iris_bundle.train
    flow = distmi.nif.information_flow(iris_bundle.model, x, y, outputs="logits", n_bootstrap=2,
                                       n_permutations=99, class_names=iris_bundle.class_names)
    assert flow.graph.names == ["input", "act1", "act2", "logits"]
    assert int((flow.links["dst_layer"] == "logits").sum()) == 16 * 3
    assert flow.attribution.shape == (4, 3)
    assert list(flow.attribution.columns) == iris_bundle.class_names
    assert (flow.raw_mi.to_numpy() > 0).all()  # feature-class MI is still measured
