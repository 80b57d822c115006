"""Helpers of the decomposition tests: a tiny token classifier and texts with a planted keyword."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from distmi.core.seeds import derive_rng

KEYWORD = 3  # token id whose presence is the class
VOCAB = 24
PAD = 0


class TinyTokenClassifier(nn.Module):
    """Embedding - one transformer layer (``layer``, (B, T, 16)) - masked mean - linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.pool = nn.Identity()
        self.head = nn.Linear(16, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        valid = attention_mask.bool()
        h = self.layer(self.embed(input_ids), src_key_padding_mask=~valid)
        w = valid.unsqueeze(-1).float()
        return self.head(self.pool((h * w).sum(1) / w.sum(1).clamp_min(1.0)))


def keyword_texts(n: int, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor, np.ndarray]:
    """Random token sequences (ids 4..23, lengths 5-10, padded with 0); label 1 when the keyword
    (id 3) is placed at a random position. Returns (inputs, labels, keyword position or -1)."""
    rng = derive_rng(seed, "keyword-texts")
    length = 10
    ids = np.zeros((n, length), np.int64)
    mask = np.zeros((n, length), np.int64)
    labels = rng.integers(0, 2, size=n)
    where = np.full(n, -1)
    for i in range(n):
        m = int(rng.integers(5, length + 1))
        ids[i, :m] = rng.integers(4, VOCAB, size=m)
        mask[i, :m] = 1
        if labels[i]:
            where[i] = int(rng.integers(0, m))
            ids[i, where[i]] = KEYWORD
    inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    return inputs, torch.from_numpy(labels), where


def train_token_model(model: nn.Module, inputs, labels, epochs: int, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    n = len(labels)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, 64):
            idx = order[s:s + 64]
            batch = {k: v[idx] for k, v in inputs.items()}
            opt.zero_grad()
            nn.functional.cross_entropy(model(**batch), labels[idx]).backward()
            opt.step()
    model.eval()
    return model
