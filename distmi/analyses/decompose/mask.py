"""The mask module: lambda_i in [0, 1] per local input, so that X' = lambda * X.

Following Gu ("Explaining Representation by Mutual Information"), the mask is a small network
on the local inputs X themselves (not on the label), ending in a sigmoid. It is **pointwise**:
lambda_i depends on X_i alone (and, for feature maps, on a learned per-position offset), so
X'_i = lambda_i X_i is a function of X_i and the data-processing inequality gives
I(Z; X'_i) <= I(Z; X_i): the decision-related information cannot exceed the total and the
redundant information is non-negative. (A mask that looked at a 3x3 neighbourhood would leak
the neighbours' content into X'_i; measured on digits, the critic then found more information
in X' than in X.)

- feature maps (B, C, H, W): per-position MLP C -> hidden -> 1 (1x1 convolutions) plus a
  learned logit offset per position;
- tokens (B, T, D): per-token MLP D -> hidden -> 1 (hidden states are already contextual).

What replaces the removed part (``fill``): ``fill="zero"`` gives Gu's X' = lambda * X exactly;
``fill="mean"`` gives X' = lambda * X + (1 - lambda) * E[X] (the mean feature map over the
fitting data, per position and channel; per channel for tokens), so a removed local input looks
like an average one instead of an all-zero one that the network never saw; ``fill="noise"``
gives X' = lambda * X + (1 - lambda) * (E[X] + sd[X] * eps), eps ~ N(0, 1) (the noise of the
information bottleneck attribution of Schulz et al. 2020). Scaling alone keeps information (an
attenuated X_i still tells Z apart, and the critic learns to read it); the noise destroys it
as lambda -> 0, so I(Z; X'_i) falls smoothly with lambda. Training draws fresh noise per step;
maps average over ``NOISE_DRAWS`` fixed draws (stored with the module), so a sample's map is
deterministic and does not depend on its batch. In every case I(Z; X'_i) <= I(Z; X_i).

The last bias starts at +2 (lambda ~ 0.88 everywhere): training begins from "keep everything"
and the sparsity term c * mean(lambda) removes what the decision does not need.
"""

from __future__ import annotations

import torch
from torch import nn

from distmi.analyses.decompose.critic import Standardize

INITIAL_LOGIT = 2.0
NOISE_DRAWS = 4


class _Mask(nn.Module):
    """Buffers shared by both masks: what removed local inputs become (see module docstring)."""

    def _init_fill(self, shape: tuple[int, ...]) -> None:
        self.register_buffer("baseline", torch.zeros(shape))
        self.register_buffer("noise_std", torch.zeros(shape))
        self.register_buffer("noise_draws", torch.zeros(NOISE_DRAWS, *shape))

    @property
    def noisy(self) -> bool:
        return bool(self.noise_std.any())

    def replacement(self, x: torch.Tensor, draw: int | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """What the removed part of ``x`` becomes: baseline (+ sd * noise), broadcastable to x.

        ``draw=None`` draws fresh noise (training); ``draw=k`` uses the k-th stored draw.
        """
        if not self.noisy:
            return self.baseline
        if draw is None:
            eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        else:
            eps = self.noise_draws[draw]
        return self.baseline + self.noise_std * eps


class ConvMask(_Mask):
    """(B, C, H, W) feature map -> lambda (B, H, W)."""

    def __init__(self, channels: int, height: int, width: int, hidden: int = 32) -> None:
        super().__init__()
        n_positions = height * width
        self.norm = Standardize(channels)
        self._init_fill((channels, height, width))
        self.net = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.position = nn.Parameter(torch.zeros(n_positions))
        nn.init.constant_(self.net[-1].bias, INITIAL_LOGIT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        positions = self.norm(x.flatten(2).transpose(1, 2))  # (B, P, C)
        logits = self.net(positions).squeeze(-1) + self.position  # (B, P)
        return torch.sigmoid(logits).reshape(b, h, w)


class TokenMask(_Mask):
    """(B, T, D) hidden states -> lambda (B, T)."""

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.norm = Standardize(dim)
        self._init_fill((dim,))
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.constant_(self.net[-1].bias, INITIAL_LOGIT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(self.norm(x))).squeeze(-1)


def apply_mask(x: torch.Tensor, lam: torch.Tensor, fill: torch.Tensor, local: str
               ) -> torch.Tensor:
    """X' = lambda * X + (1 - lambda) * fill.

    conv: x (B, C, H, W), lam (B, H, W), fill broadcastable to x ((C, H, W) or (B, C, H, W));
    tokens: x (B, T, D), lam (B, T), fill (D,) or (B, T, D). A zero fill is Gu's X' = lambda * X.
    """
    lam = lam.unsqueeze(1) if local == "conv" else lam.unsqueeze(-1)
    return lam * x + (1.0 - lam) * fill
