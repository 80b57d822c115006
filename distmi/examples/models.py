"""Small example networks whose layers are named for capture.

Each model starts with an ``input`` identity module so that the raw input features are a
capturable layer too (a neuron-interaction graph treats input features as nodes).

- :class:`IrisMLP`: 4-16-16-3 ReLU MLP for scikit-learn's iris (the NIF reference network).
  Layers: ``input`` (4), ``fc1``/``act1`` (16), ``fc2``/``act2`` (16), ``out`` (3 logits).
- :class:`DigitsCNN`: small CNN for scikit-learn's 8x8 digits.
  Layers: ``input`` (1x8x8), ``conv1``/``act1`` (8x8x8), ``pool1`` (8x4x4),
  ``conv2``/``act2`` (16x4x4), ``pool2`` (16x2x2), ``fc1``/``act3`` (32), ``out`` (10 logits).
"""

from __future__ import annotations

import torch
from torch import nn


class IrisMLP(nn.Module):
    """4-16-16-3 MLP; standardises raw iris measurements (cm) with stored train statistics."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(4))
        self.register_buffer("scale", torch.ones(4))
        self.input = nn.Identity()
        self.fc1 = nn.Linear(4, hidden)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, hidden)
        self.act2 = nn.ReLU()
        self.out = nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, 4) in cm
        z = (self.input(x) - self.mean) / self.scale
        return self.out(self.act2(self.fc2(self.act1(self.fc1(z)))))


class DigitsCNN(nn.Module):
    """Two conv blocks and a 32-unit dense layer for (batch, 1, 8, 8) images in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.input = nn.Identity()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=3, padding=1)
        self.act1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1)
        self.act2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 2 * 2, 32)
        self.act3 = nn.ReLU()
        self.out = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, 1, 8, 8)
        h = self.pool1(self.act1(self.conv1(self.input(x))))
        h = self.pool2(self.act2(self.conv2(h)))
        return self.out(self.act3(self.fc1(h.flatten(1))))
