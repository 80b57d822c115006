"""Bundled tabular classifiers for NIF: iris, wine, breast_cancer (scikit-learn) and digits.

All four data sets ship with scikit-learn (no download). Each network is an MLP with named
layers ``input`` (identity, so the raw features are capturable), ``fc1``/``act1``,
``fc2``/``act2`` and ``out`` (logits), ReLU activations and a stored per-feature
standardisation:

=============  ===========  ======================  =======
name           samples      layers                  classes
=============  ===========  ======================  =======
iris           150          4-16-16-3               3
wine           178          13-16-16-3              3
breast_cancer  569          30-16-16-2              2
digits         1797         64-32-32-10 (8x8 flat)  10
=============  ===========  ======================  =======

iris uses the project's reference network :class:`~distmi.examples.models.IrisMLP` (the same
weights as ``jobs/quickstart.yaml``). Training is deterministic, on one CPU thread, with seeds
derived from ``seed`` (see :mod:`distmi.examples.train_models`).

    from distmi.examples.tabular import load_bundled
    bundle = load_bundled("wine")          # model, data, split, names, accuracies
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distmi.core.errors import InvalidParameterError
from distmi.core.seeds import derive_seed

BUILTINS = ("iris", "wine", "breast_cancer", "digits")
# name -> (hidden widths, epochs, batch size, learning rate)
_RECIPES = {
    "wine": ((16, 16), 150, 32, 0.01),
    "breast_cancer": ((16, 16), 100, 64, 0.003),
    "digits": ((32, 32), 60, 64, 0.003),
}


@dataclass(frozen=True)
class Bundle:
    """A trained bundled classifier with its data.

    Attributes:
        name: ``iris``, ``wine``, ``breast_cancer`` or ``digits``.
        model: the trained torch module (eval mode).
        x: float32 features, shape (n, d) (digits: the 8x8 image flattened, scaled to [0, 1]).
        y: int64 class codes, shape (n,).
        is_test: bool, shape (n,), the stratified 20 % test split.
        feature_names: d names.
        class_names: one name per class code.
        accuracy: ``{"train_accuracy": ..., "test_accuracy": ...}``.
    """

    name: str
    model: Any
    x: np.ndarray
    y: np.ndarray
    is_test: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    accuracy: dict[str, float] = field(default_factory=dict)

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the training split."""
        return self.x[~self.is_test], self.y[~self.is_test]

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the test split."""
        return self.x[self.is_test], self.y[self.is_test]


def _tabular_mlp_class() -> type:
    import torch
    from torch import nn

    class TabularMLP(nn.Module):
        """d-h1-h2-c ReLU MLP that standardises its input with stored training statistics."""

        def __init__(self, n_features: int, hidden: tuple[int, int], n_classes: int) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(n_features))
            self.register_buffer("scale", torch.ones(n_features))
            self.input = nn.Identity()
            self.fc1 = nn.Linear(n_features, hidden[0])
            self.act1 = nn.ReLU()
            self.fc2 = nn.Linear(hidden[0], hidden[1])
            self.act2 = nn.ReLU()
            self.out = nn.Linear(hidden[1], n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, n_features)
            z = (self.input(x) - self.mean) / self.scale
            return self.out(self.act2(self.fc2(self.act1(self.fc1(z)))))

    return TabularMLP


def tabular_mlp(n_features: int, hidden: tuple[int, int], n_classes: int) -> Any:
    """An untrained :class:`TabularMLP` (layers ``input, fc1, act1, fc2, act2, out``)."""
    return _tabular_mlp_class()(n_features, hidden, n_classes)


def _load(name: str) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    from sklearn import datasets

    if name == "digits":
        bunch = datasets.load_digits()
        x = (bunch.data / 16.0).astype(np.float32)
        features = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
        return x, bunch.target.astype(np.int64), features, [str(t) for t in bunch.target_names]
    loader = {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer}[name]
    bunch = loader()
    features = [str(f).replace(" ", "_") for f in bunch.feature_names]
    return (bunch.data.astype(np.float32), bunch.target.astype(np.int64), features,
            [str(t) for t in bunch.target_names])


def load_bundled(name: str, seed: int = 0) -> Bundle:
    """Train (deterministically, ~1-10 s) the bundled classifier ``name`` and return it.

    Raises:
        InvalidParameterError: ``name`` is not one of :data:`BUILTINS`.
    """
    import torch

    from distmi.examples.train_models import (
        IRIS_FEATURES,
        _accuracy,
        _fit,
        _one_thread,
        _stratified_test_mask,
        iris_data,
        train_iris_mlp,
    )

    if name not in BUILTINS:
        raise InvalidParameterError(
            f"unknown bundled data set {name!r}; choose one of {list(BUILTINS)}."
        )
    if name == "iris":
        data = iris_data(seed)
        model, info = train_iris_mlp(seed)
        return Bundle("iris", model, data.x, data.y, data.is_test, list(IRIS_FEATURES),
                      ["setosa", "versicolor", "virginica"], info)
    x_np, y_np, features, classes = _load(name)
    is_test = _stratified_test_mask(y_np, seed, name)
    hidden, epochs, batch_size, lr = _RECIPES[name]
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    train = torch.from_numpy(~is_test)
    with _one_thread():
        torch.manual_seed(derive_seed(seed, name, "init"))
        model = tabular_mlp(x.shape[1], hidden, len(classes))
        model.mean.copy_(x[train].mean(0))
        model.scale.copy_(torch.clamp(x[train].std(0), min=1e-3))  # constant pixels: scale 1e-3
        _fit(model, x[train], y[train], epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
        info = {"train_accuracy": _accuracy(model, x[train], y[train]),
                "test_accuracy": _accuracy(model, x[~train], y[~train])}
    return Bundle(name, model, x_np, y_np, is_test, features, classes, info)
