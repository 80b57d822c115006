"""Train the bundled example networks in seconds and capture their activations.

Both data sets ship with scikit-learn (no network). Training is deterministic: seeds derive
from ``seed`` via :func:`distmi.core.seeds.derive_seed`, and training runs on one CPU thread so
that floating-point reductions happen in the same order on every run.

    from distmi.examples.train_models import build_iris_dataset
    ds = build_iris_dataset("out/iris")        # trains (~1 s) and captures; reuses a match

Command-line use goes through the factories (``module:function``)::

    distmi capture distmi.examples.train_models:trained_iris_mlp \\
        distmi.examples.train_models:iris_source --layer act1 --layer act2 --output out/iris
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distmi.core.seeds import derive_rng, derive_seed
from distmi.examples.models import DigitsCNN, IrisMLP

IRIS_LAYERS = ("input", "act1", "act2", "out")
DIGITS_LAYERS = ("input", "act1", "act2", "act3", "out")
IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


@dataclass(frozen=True)
class ExampleData:
    """Inputs, integer labels and a fixed stratified train/test split."""

    x: np.ndarray  # float32, (n, 4) for iris, (n, 1, 8, 8) for digits
    y: np.ndarray  # int64, (n,)
    is_test: np.ndarray  # bool, (n,)


@contextmanager
def _one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stratified_test_mask(y: np.ndarray, seed: int, name: str, fraction: float = 0.2) -> np.ndarray:
    rng = derive_rng(seed, name, "split")
    mask = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        mask[rng.choice(idx, size=round(fraction * len(idx)), replace=False)] = True
    return mask


def iris_data(seed: int = 0) -> ExampleData:
    """Iris measurements in cm (150, 4), species codes 0..2 and a 80/20 stratified split."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    y = bunch.target.astype(np.int64)
    return ExampleData(bunch.data.astype(np.float32), y, _stratified_test_mask(y, seed, "iris"))


def digits_data(seed: int = 0) -> ExampleData:
    """8x8 digit images scaled to [0, 1] (1797, 1, 8, 8), digit labels and a 80/20 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    y = bunch.target.astype(np.int64)
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    return ExampleData(x, y, _stratified_test_mask(y, seed, "digits"))


def _fit(model: Any, x: Any, y: Any, *, epochs: int, batch_size: int, lr: float, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(derive_seed(seed, "batches"))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), batch_size):
            idx = order[s : s + batch_size]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()


def _accuracy(model: Any, x: Any, y: Any) -> float:
    import torch

    with torch.inference_mode():
        return float((model(x).argmax(1) == y).float().mean())


def train_iris_mlp(seed: int = 0, epochs: int = 200) -> tuple[IrisMLP, dict[str, float]]:
    """Train the 4-16-16-3 MLP on the iris training split; return (model, accuracies)."""
    import torch

    data = iris_data(seed)
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    train = torch.from_numpy(~data.is_test)
    with _one_thread():
        torch.manual_seed(derive_seed(seed, "iris", "init"))
        model = IrisMLP()
        model.mean.copy_(x[train].mean(0))
        model.scale.copy_(x[train].std(0))
        _fit(model, x[train], y[train], epochs=epochs, batch_size=30, lr=0.01, seed=seed)
        info = {"train_accuracy": _accuracy(model, x[train], y[train]),
                "test_accuracy": _accuracy(model, x[~train], y[~train])}
    return model, info


def train_digits_cnn(seed: int = 0, epochs: int = 20) -> tuple[DigitsCNN, dict[str, float]]:
    """Train the small CNN on the digits training split; return (model, accuracies)."""
    import torch

    data = digits_data(seed)
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    train = torch.from_numpy(~data.is_test)
    with _one_thread():
        torch.manual_seed(derive_seed(seed, "digits", "init"))
        model = DigitsCNN()
        _fit(model, x[train], y[train], epochs=epochs, batch_size=64, lr=3e-3, seed=seed)
        info = {"train_accuracy": _accuracy(model, x[train], y[train]),
                "test_accuracy": _accuracy(model, x[~train], y[~train])}
    return model, info


def _predicted(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode(), _one_thread():
        return model(torch.from_numpy(x)).argmax(1).numpy().astype(np.int64)


def trained_iris_mlp(seed: int = 0) -> IrisMLP:
    """Factory for ``distmi capture``: the trained iris MLP."""
    return train_iris_mlp(seed)[0]


def trained_digits_cnn(seed: int = 0) -> DigitsCNN:
    """Factory for ``distmi capture``: the trained digits CNN."""
    return train_digits_cnn(seed)[0]


def iris_source(seed: int = 0, model: Any = None):
    """Factory for ``distmi capture``: iris inputs with species, split and measurements."""
    from distmi.store.capture import CaptureSource

    data = iris_data(seed)
    targets = {"species": data.y, "split": np.where(data.is_test, "test", "train")}
    targets.update({name: data.x[:, i].astype(np.float64) for i, name in enumerate(IRIS_FEATURES)})
    if model is not None:
        targets["predicted"] = _predicted(model, data.x)
    return CaptureSource(data.x, targets)


def digits_source(seed: int = 0, model: Any = None):
    """Factory for ``distmi capture``: digit images with digit, split and ink targets."""
    from distmi.store.capture import CaptureSource

    data = digits_data(seed)
    targets = {
        "digit": data.y,
        "split": np.where(data.is_test, "test", "train"),
        "ink": data.x.reshape(len(data.x), -1).mean(1).astype(np.float64),
    }
    if model is not None:
        targets["predicted"] = _predicted(model, data.x)
    return CaptureSource(data.x, targets)


def build_iris_dataset(out_dir: str | Path, *, seed: int = 0, overwrite: bool = False):
    """Train the iris MLP and capture ``input, act1, act2, out`` with the species as target.

    Targets: ``species`` (categorical 0..2), ``split`` (train/test), the four measurements
    (continuous, cm) and ``predicted`` (the network's class). A matching dataset already at
    ``out_dir`` is reused. Takes about a second.
    """
    from distmi.store.capture import capture

    model, info = train_iris_mlp(seed)
    with _one_thread():
        return capture(model, iris_source(seed, model), list(IRIS_LAYERS), out_dir,
                       batch_size=150, model_id=f"iris-mlp-4-16-16-3-seed{seed}",
                       model_info=info, overwrite=overwrite)


def build_digits_dataset(out_dir: str | Path, *, seed: int = 0, overwrite: bool = False):
    """Train the digits CNN and capture ``input, act1, act2, act3, out`` (conv maps flattened).

    Targets: ``digit`` (categorical), ``split``, ``ink`` (mean pixel intensity, continuous) and
    ``predicted``. A matching dataset already at ``out_dir`` is reused. Takes a few seconds.
    """
    from distmi.store.capture import capture

    model, info = train_digits_cnn(seed)
    with _one_thread():
        return capture(model, digits_source(seed, model), list(DIGITS_LAYERS), out_dir,
                       batch_size=256, model_id=f"digits-cnn-seed{seed}", model_info=info,
                       overwrite=overwrite)


if __name__ == "__main__":  # pragma: no cover - manual check
    for build, name in ((build_iris_dataset, "iris"), (build_digits_dataset, "digits")):
        ds = build(Path("out") / name)
        print(ds, {n: ds.layer_shape(n) for n in ds.layers})
