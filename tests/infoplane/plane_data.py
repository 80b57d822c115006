"""A tiny labelled problem and network trained with capture (shared by the plane tests)."""

from __future__ import annotations

import numpy as np


class Interrupt(Exception):
    """Raised by a test to cut a training run short."""


def tiny_problem(seed: int = 0):
    """(x (n, 6), labels (n,)) with the label carried by the first two inputs."""
    rng = np.random.default_rng(seed)
    n = 300
    labels = rng.integers(0, 3, size=n)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    x[:, 0] += 1.5 * labels
    x[:, 1] -= labels
    return x, labels


def tiny_model(seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Identity(),                       # "0": the input X
        nn.Linear(6, 8), nn.ReLU(),          # "2": hidden
        nn.Linear(8, 3),                     # "3": logits
    )


def train_tiny(output, epochs: int = 4, *, stop_after: int | None = None, seed: int = 0,
               overwrite: bool = False, layers=("0", "2", "3")):
    """Train the tiny model, capturing ``layers`` at every epoch (0 = initial weights).

    ``stop_after`` raises :class:`Interrupt` after that epoch's capture (an interrupted run).
    """
    import torch

    from distmi.store.training import TrainingCapture

    x, labels = tiny_problem(seed)
    torch.set_num_threads(1)
    model = tiny_model(seed)
    cap = TrainingCapture(output, x, list(layers), targets={"label": labels},
                          batch_size=128, overwrite=overwrite)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels)
    for epoch in range(epochs + 1):
        if epoch > 0:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt), yt).backward()
            opt.step()
        if not cap.done(epoch):
            with torch.no_grad():
                loss = torch.nn.functional.cross_entropy(model(xt), yt).item()
            cap(model, epoch, loss=loss)
        if stop_after is not None and epoch == stop_after:
            raise Interrupt
    return cap


class PlantedNet:
    """Factory of a module whose layers carry planted information about X and Y.

    X (n, 8): columns 0-1 carry the label, 2-7 are noise. Layers: ``input`` (X), ``sig`` =
    s x[:, 0:2] + (1 - s) x[:, 2:4] (label information grows with s) and ``noise`` =
    x[:, 4:6] (a function of X that carries nothing about the label).
    """

    @staticmethod
    def build(s: float):
        import torch
        from torch import nn

        class Planted(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("s", torch.tensor(float(s)))
                self.input = nn.Identity()
                self.sig = nn.Identity()
                self.noise = nn.Identity()

            def forward(self, x):
                x = self.input(x)
                a = self.sig(self.s * x[:, 0:2] + (1 - self.s) * x[:, 2:4])
                b = self.noise(x[:, 4:6])
                return torch.cat([a, b], 1)

        return Planted()


def planted_problem(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    x[:, 0] += 2.0 * labels
    x[:, 1] -= 1.5 * labels
    return x, labels


def capture_planted(output, scales=(0.0, 0.5, 1.0), n: int = 600):
    """A training dataset with epochs 0, 1, 2 at the given s; returns its path."""
    from distmi.store.training import TrainingCapture

    x, labels = planted_problem(n)
    cap = TrainingCapture(output, x, ["input", "sig", "noise"],
                          targets={"label": labels, "score": labels + 0.5})
    for epoch, s in enumerate(scales):
        cap(PlantedNet.build(s), epoch)
    return output
