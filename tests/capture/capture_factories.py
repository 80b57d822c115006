"""Models and inputs for the capture tests, importable by Ray workers (``module:factory``)."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from distmi.store.capture import CaptureSource


def mlp(seed: int = 0) -> nn.Module:
    """A seeded 6-40-5 MLP (the same weights in every process)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 40), nn.Tanh(), nn.Linear(40, 5))


def mlp_inputs(n: int = 500, seed: int = 0) -> CaptureSource:
    """(n, 6) float32 inputs with a categorical and a continuous target."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    return CaptureSource(x, {"label": (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0),
                             "score": x[:, 2].astype(np.float64)})


def unseeded_mlp() -> nn.Module:
    """An MLP with fresh random weights in every call (what a capture must refuse)."""
    return nn.Sequential(nn.Linear(6, 4))


class Dying(nn.Module):
    """The seeded MLP; its process exits in its second forward pass while ``marker`` exists
    (the marker is removed first, so exactly one process dies, once)."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.body = mlp()
        self.marker = marker
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls >= 2:
            try:
                os.remove(self.marker)
            except FileNotFoundError:
                pass
            else:
                os._exit(1)
        return self.body(x)


def dying_mlp(marker: str) -> nn.Module:
    return Dying(marker)
