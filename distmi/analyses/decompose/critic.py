"""The Infomax critic T(Z, X_i): a separable network scoring a representation against local inputs.

    T(z, x_i) = <g(z), h(x_i, i)> / sqrt(e)

with g: R^{d_z} -> R^e and h: R^{C} -> R^e two small MLPs on standardised inputs (Deep InfoMax's
local objective, Hjelm et al. 2019, and Gu's "Explaining Representation by Mutual Information").
For feature maps h also gets a learned embedding of the position i (added after its first
layer), so the critic of position i is specialised to that position's distribution; token
critics are position-free (hidden states already carry their position).

The separable form makes every (sample, local input) pairing one matrix product: with B
representations and M samples of local inputs at P positions the scores are an (B, M, P)
tensor, the positive pairs on its diagonal ``n == m`` and the negatives (local inputs of other
samples) off it.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Standardize(nn.Module):
    """(x - mean) / std with fixed statistics over the last dimension (buffers, never trained)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class InfomaxCritic(nn.Module):
    """Separable critic of Z against local inputs (see module docstring).

    Args:
        dim_z: width of the flattened representation Z.
        dim_local: channels of a local input (C of a feature map, D of a hidden state).
        n_positions: P for feature maps (a learned position embedding each); 0 for tokens.
        hidden: width of the MLPs' hidden layer.
        embed: e, width of the embeddings whose inner product is the score.
    """

    def __init__(self, dim_z: int, dim_local: int, n_positions: int, hidden: int = 128,
                 embed: int = 64) -> None:
        super().__init__()
        self.z_norm = Standardize(dim_z)
        self.x_norm = Standardize(dim_local)
        self.g = nn.Sequential(nn.Linear(dim_z, hidden), nn.ReLU(), nn.Linear(hidden, embed))
        self.h_in = nn.Linear(dim_local, hidden)
        self.h_out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, embed))
        self.position = nn.Parameter(torch.zeros(n_positions, hidden)) if n_positions else None
        self.scale = 1.0 / math.sqrt(embed)

    def embed_z(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d_z) -> (B, e)."""
        return self.g(self.z_norm(z))

    def embed_local(self, x: torch.Tensor) -> torch.Tensor:
        """(M, P, C) local inputs -> (M, P, e); positions must match ``n_positions`` for maps."""
        h = self.h_in(self.x_norm(x))
        if self.position is not None:
            if x.shape[1] != self.position.shape[0]:
                raise ValueError(
                    f"the feature map has {x.shape[1]} positions, the critic was fitted on "
                    f"{self.position.shape[0]}; explain inputs of the size the model was fitted on."
                )
            h = h + self.position
        return self.h_out(h)

    def pair_scores(self, gz: torch.Tensor, hx: torch.Tensor) -> torch.Tensor:
        """T for every pairing: (B, e), (M, P, e) -> (B, M, P); ``[n, m, p] = T(z_n, x_{m,p})``."""
        return torch.einsum("ne,mpe->nmp", gz, hx) * self.scale

    def own_scores(self, gz: torch.Tensor, hx: torch.Tensor) -> torch.Tensor:
        """T of each sample with its own local inputs: (B, e), (B, P, e) -> (B, P)."""
        return torch.einsum("ne,npe->np", gz, hx) * self.scale
