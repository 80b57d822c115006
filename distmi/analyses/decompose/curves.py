"""Deletion and insertion curves (Petsiuk et al. 2018, "RISE"); see :mod:`.evaluation`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from distmi.analyses.decompose.locals import call_model, logits_of
from distmi.core.errors import InvalidParameterError
from distmi.core.seeds import derive_rng

CURVE_KINDS = ("deletion", "insertion")


@dataclass
class Curve:
    """One deletion or insertion curve (see module docstring)."""

    kind: str
    method: str
    fraction: np.ndarray  # (K,) in [0, 1]
    accuracy: np.ndarray  # (K,)
    probability: np.ndarray  # (K,) mean probability of the clean prediction

    @property
    def auc_accuracy(self) -> float:
        return float(np.trapezoid(self.accuracy, self.fraction))

    @property
    def auc_probability(self) -> float:
        return float(np.trapezoid(self.probability, self.fraction))


def ranking(saliency: np.ndarray, seed: int = 0) -> np.ndarray:
    """Positions of each row sorted by decreasing saliency, ties in a seeded random order.

    Args:
        saliency: (n, L) (NaN ranks last).
    Returns:
        (n, L) int64 position indices.
    """
    s = np.nan_to_num(np.asarray(saliency, dtype=np.float64), nan=-np.inf)
    tiebreak = derive_rng(seed, "deletion-ties").random(s.shape)
    return np.lexsort((tiebreak, -s), axis=-1).astype(np.int64)


@torch.no_grad()
def _predict(model: nn.Module, inputs: Any, batch_size: int) -> torch.Tensor:
    """Softmax probabilities (n, classes) in batches."""
    if isinstance(inputs, Mapping):
        n = len(next(iter(inputs.values())))
        chunks = [call_model(model, {k: v[s:s + batch_size] for k, v in inputs.items()})
                  for s in range(0, n, batch_size)]
    else:
        chunks = [call_model(model, inputs[s:s + batch_size])
                  for s in range(0, len(inputs), batch_size)]
    return torch.cat([logits_of(c).softmax(1) for c in chunks])


def _curve_point(probs: torch.Tensor, labels: torch.Tensor, clean: torch.Tensor
                 ) -> tuple[float, float]:
    acc = float((probs.argmax(1) == labels).double().mean())
    prob = float(probs.gather(1, clean[:, None]).double().mean())
    return acc, prob


def image_curve(model: nn.Module, x: torch.Tensor, labels: Any, saliency: np.ndarray, *,
                kind: str, method: str = "", steps: int | None = None, fill: float = 0.0,
                batch_size: int = 512, seed: int = 0) -> Curve:
    """Deletion or insertion curve of images (n, C, H, W) ranked by ``saliency`` (n, H, W)."""
    if kind not in CURVE_KINDS:
        raise InvalidParameterError(f"kind must be one of {CURVE_KINDS}, got {kind!r}.")
    n, c, h, w = x.shape
    sal = np.asarray(saliency)
    if sal.shape != (n, h, w):
        raise InvalidParameterError(
            f"saliency must have the input's shape (n, H, W) = {(n, h, w)}, got {sal.shape}; "
            "upsample layer maps first (Explanation.upsample)."
        )
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    length = h * w
    counts = np.unique(np.linspace(0, length, (steps or length) + 1).round().astype(int))
    order = torch.from_numpy(ranking(sal.reshape(n, length), seed))  # (n, L)
    clean = _predict(model, x, batch_size).argmax(1)
    flat = x.reshape(n, c, length)
    rank_of = torch.empty_like(order)
    rank_of.scatter_(1, order, torch.arange(length).expand(n, length))  # rank of each pixel
    accs, probs = [], []
    for k in counts:
        top = (rank_of < int(k)).unsqueeze(1)  # (n, 1, L): the k best-ranked pixels
        keep = ~top if kind == "deletion" else top
        xk = torch.where(keep, flat, torch.full_like(flat, fill)).reshape(x.shape)
        a, p = _curve_point(_predict(model, xk, batch_size), labels, clean)
        accs.append(a)
        probs.append(p)
    return Curve(kind, method, counts / length, np.array(accs), np.array(probs))


def token_curve(model: nn.Module, inputs: Mapping[str, torch.Tensor], labels: Any,
                saliency: np.ndarray, protected: np.ndarray, *, kind: str, method: str = "",
                steps: int = 20, batch_size: int = 256, seed: int = 0) -> Curve:
    """Deletion or insertion curve over content tokens (see module docstring).

    Args:
        inputs: tokenizer output with ``attention_mask`` (n, T).
        saliency: (n, T) token scores.
        protected: (n, T) bool, tokens never removed (special tokens); padding is implied by
            the attention mask.
    """
    if kind not in CURVE_KINDS:
        raise InvalidParameterError(f"kind must be one of {CURVE_KINDS}, got {kind!r}.")
    attention = inputs["attention_mask"].bool()
    n, t = attention.shape
    content = attention & ~torch.as_tensor(protected, dtype=torch.bool)
    sal = np.where(content.numpy(), np.nan_to_num(np.asarray(saliency, dtype=np.float64),
                                                  nan=-1e300), -np.inf)
    order = torch.from_numpy(ranking(sal, seed))
    rank_of = torch.empty_like(order)
    rank_of.scatter_(1, order, torch.arange(t).expand(n, t))
    n_content = content.sum(1, keepdim=True)  # (n, 1)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    clean = _predict(model, inputs, batch_size).argmax(1)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    accs, probs = [], []
    for f in fractions:
        k = torch.round(n_content.double() * f).long()
        top = (rank_of < k) & content
        keep = attention & ~top if kind == "deletion" else (attention & ~content) | top
        masked = dict(inputs)
        masked["attention_mask"] = keep.to(inputs["attention_mask"].dtype)
        a, p = _curve_point(_predict(model, masked, batch_size), labels, clean)
        accs.append(a)
        probs.append(p)
    return Curve(kind, method, fractions, np.array(accs), np.array(probs))


def compare_methods(model: nn.Module, inputs: Any, labels: Any, maps: Mapping[str, np.ndarray],
                    *, local: str, protected: np.ndarray | None = None, seed: int = 0
                    ) -> tuple[Any, list[Curve]]:
    """Deletion and insertion curves of every map; returns (table, curves).

    The table (pandas) has one row per method: deletion/insertion AUCs of accuracy (lower /
    higher is better) and of the clean-prediction probability.
    """
    import pandas as pd

    rows, curves = [], []
    for method, sal in maps.items():
        pair = []
        for kind in CURVE_KINDS:
            if local == "conv":
                curve = image_curve(model, inputs, labels, sal, kind=kind, method=method,
                                    seed=seed)
            else:
                curve = token_curve(model, inputs, labels, sal,
                                    protected if protected is not None
                                    else np.zeros(sal.shape, bool),
                                    kind=kind, method=method, seed=seed)
            pair.append(curve)
        curves.extend(pair)
        rows.append({"method": method,
                     "deletion_auc": pair[0].auc_accuracy,
                     "insertion_auc": pair[1].auc_accuracy,
                     "deletion_auc_prob": pair[0].auc_probability,
                     "insertion_auc_prob": pair[1].auc_probability})
    return pd.DataFrame(rows), curves
