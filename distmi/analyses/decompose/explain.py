"""Per-sample information maps and their aggregates.

:func:`compute_maps` runs the frozen model and the fitted modules over inputs and returns an
:class:`Explanation`:

- ``total[n, i]``    pointwise I(Z; X_i) of sample n (nats), from the critic with X;
- ``decision[n, i]`` pointwise I(Z; X'_i) with X' = lambda * X + (1 - lambda) * fill, the
  information the decision keeps (with the noise fill, the mean over the stored noise draws;
  ``masked_predictions`` use the first draw);
- ``redundant``      total - decision;
- ``mask``           lambda itself.

Maps are (n, H, W) for feature maps and (n, T) for tokens (NaN at padding, ``valid`` says
which tokens exist). Pointwise values can be slightly negative where a local input carries no
information; mass-based summaries use the positive part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from distmi.analyses.decompose.critic import InfomaxCritic
from distmi.analyses.decompose.data import InMemoryData, IterableData
from distmi.analyses.decompose.locals import to_positions
from distmi.analyses.decompose.losses import pointwise_information
from distmi.analyses.decompose.mask import apply_mask
from distmi.analyses.decompose.session import ModelSession
from distmi.core.errors import InvalidParameterError, LengthMismatchError

MAP_NAMES = ("total", "decision", "redundant")


@dataclass
class Explanation:
    """Maps of n samples (see module docstring). Arrays are float64 numpy."""

    total: np.ndarray
    decision: np.ndarray
    redundant: np.ndarray
    mask: np.ndarray
    predictions: np.ndarray  # (n,) the model's class on X
    masked_predictions: np.ndarray  # (n,) the model's class on X'
    local: str
    layer: str
    labels: np.ndarray | None = None
    valid: np.ndarray | None = None  # (n, T) bool for tokens
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.total)

    def map(self, name: str) -> np.ndarray:
        """One of ``total``, ``decision``, ``redundant``, ``mask``."""
        if name not in (*MAP_NAMES, "mask"):
            raise InvalidParameterError(
                f"map name must be one of {[*MAP_NAMES, 'mask']}, got {name!r}."
            )
        return getattr(self, name)

    def with_labels(self, labels: Any) -> Explanation:
        """A copy carrying true labels (n,), used by :meth:`class_means` and accuracy."""
        y = np.asarray(labels).astype(np.int64).ravel()
        if len(y) != len(self):
            raise LengthMismatchError(
                f"labels have {len(y)} entries but the explanation holds {len(self)} samples; "
                "pass one label per explained sample."
            )
        return Explanation(**{**self.__dict__, "labels": y})

    def per_position(self) -> Any:
        """pandas DataFrame: one row per position (or token index) with the sample means of the
        maps, i.e. estimates of I(Z; X_i), I(Z; X'_i) and their difference (nats)."""
        import pandas as pd

        n = len(self)
        cols: dict[str, Any] = {}
        if self.local == "conv":
            h, w = self.total.shape[1:]
            cols["row"] = np.repeat(np.arange(h), w)
            cols["col"] = np.tile(np.arange(w), h)
        else:
            cols["token"] = np.arange(self.total.shape[1])
            cols["n_samples"] = (self.valid.sum(0) if self.valid is not None
                                 else np.full(self.total.shape[1], n))
        for name in (*MAP_NAMES, "mask"):
            cols[name] = np.nanmean(self.map(name).reshape(n, -1), axis=0) if n else []
        return pd.DataFrame(cols)

    def class_means(self, by: str = "prediction") -> dict[int, dict[str, np.ndarray]]:
        """Per-class mean maps: {class: {"total", "decision", "redundant", "mask": map,
        "count": n}}; classes from the model's predictions or (``by="label"``) the labels."""
        if by == "label":
            if self.labels is None:
                raise InvalidParameterError(
                    "class_means(by='label') needs labels; use explanation.with_labels(y) or "
                    "by='prediction'."
                )
            groups = self.labels
        elif by == "prediction":
            groups = self.predictions
        else:
            raise InvalidParameterError(f"by must be 'prediction' or 'label', got {by!r}.")
        out: dict[int, dict[str, np.ndarray]] = {}
        for cls in np.unique(groups):
            sel = groups == cls
            entry: dict[str, Any] = {name: np.nanmean(self.map(name)[sel], axis=0)
                                     for name in (*MAP_NAMES, "mask")}
            entry["count"] = int(sel.sum())
            out[int(cls)] = entry
        return out

    def upsample(self, size: tuple[int, int], name: str = "decision") -> np.ndarray:
        """A feature-map map bilinearly resized to the input's (H_in, W_in): (n, H_in, W_in)."""
        if self.local != "conv":
            raise InvalidParameterError("upsample applies to feature maps (local='conv').")
        t = torch.from_numpy(np.ascontiguousarray(self.map(name)))[:, None].double()
        up = torch.nn.functional.interpolate(t, size=tuple(size), mode="bilinear",
                                             align_corners=False)
        return up[:, 0].numpy()

    def region_mass(self, region: np.ndarray, name: str = "decision") -> np.ndarray:
        """Fraction of each sample's positive map mass inside ``region`` (bool, map-shaped):
        (n,), NaN for a sample with no positive mass."""
        values = np.clip(np.nan_to_num(self.map(name), nan=0.0), 0.0, None)
        region = np.asarray(region, dtype=bool)
        if region.shape != values.shape[1:]:
            raise InvalidParameterError(
                f"region has shape {region.shape}, the maps are {values.shape[1:]}."
            )
        total = values.reshape(len(values), -1).sum(1)
        inside = values[:, region].sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, inside / total, np.nan)


def _draws(mask: nn.Module) -> list[int | None]:
    """Stored noise draws to average over (one pass without noise for deterministic fills)."""
    from distmi.analyses.decompose.mask import NOISE_DRAWS

    return list(range(NOISE_DRAWS)) if mask.noisy else [None]


def _reference_embeddings(critic: InfomaxCritic, mask: nn.Module, reference: torch.Tensor,
                          local: str, device: torch.device
                          ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Embedded reference local inputs, plain and masked (one per noise draw):
    conv (R, P, e); tokens (N, e)."""
    ref = reference.to(device) if local == "conv" else reference.to(device).unsqueeze(0)
    lam = mask(ref)  # the token mask is per token: the bank is one (1, N, D) "sentence"
    masked = [critic.embed_local(to_positions(
        apply_mask(ref, lam, mask.replacement(ref, draw), local), local)) for draw in _draws(mask)]
    plain = critic.embed_local(to_positions(ref, local))
    if local == "conv":
        return plain, masked
    return plain[0], [m[0] for m in masked]


def _reference_scores(critic: InfomaxCritic, gz: torch.Tensor, h_ref: torch.Tensor,
                      local: str) -> torch.Tensor:
    if local == "conv":
        return critic.pair_scores(gz, h_ref)  # (B, R, P)
    return (gz @ h_ref.T) * critic.scale  # (B, N)


@torch.no_grad()
def compute_maps(session: ModelSession, critic: InfomaxCritic, mask: nn.Module,
                 reference: torch.Tensor, data: InMemoryData | IterableData, batch_size: int,
                 layer_shape: tuple[int, ...]) -> Explanation:
    """Maps of every sample of ``data`` (see module docstring)."""
    local = session.local
    device = session.device
    critic.to(device).eval()
    mask.to(device).eval()
    try:
        if local == "conv":
            session.expect_layer_shape(tuple(layer_shape))
        h_ref, h_ref_masked = _reference_embeddings(critic, mask, reference, local, device)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("total", "decision", "mask", "valid")}
        preds, masked_preds, labels = [], [], []
        for batch in data.batches(batch_size):
            fwd = session.capture(batch.inputs)
            lam = mask(fwd.x)
            gz = critic.embed_z(fwd.z)
            total = pointwise_information(
                critic.own_scores(gz, critic.embed_local(fwd.positions)),
                _reference_scores(critic, gz, h_ref, local), local)
            decision = torch.zeros_like(total)
            x_first = None
            for k, draw in enumerate(_draws(mask)):
                x_masked = apply_mask(fwd.x, lam, mask.replacement(fwd.x, draw), local)
                x_first = x_masked if x_first is None else x_first
                h_xm = critic.embed_local(to_positions(x_masked, local))
                decision += pointwise_information(
                    critic.own_scores(gz, h_xm),
                    _reference_scores(critic, gz, h_ref_masked[k], local), local)
            decision /= len(h_ref_masked)
            x_masked = x_first
            masked_logits = session.substitute(batch.inputs, x_masked)
            invalid = ~fwd.valid
            for name, value in (("total", total), ("decision", decision),
                                ("mask", lam.flatten(1))):
                value = value.double().masked_fill(invalid, float("nan"))
                parts[name].append(value.cpu().numpy())
            parts["valid"].append(fwd.valid.cpu().numpy())
            preds.append(fwd.logits.argmax(1).cpu().numpy())
            masked_preds.append(masked_logits.argmax(1).cpu().numpy())
            if batch.labels is not None:
                labels.append(batch.labels.cpu().numpy())
    finally:
        session.expect_layer_shape(None)
        critic.cpu()
        mask.cpu()
    arrays = {k: _stack(v) for k, v in parts.items()}
    if local == "conv":
        h, w = layer_shape[1:]
        for k in ("total", "decision", "mask"):
            arrays[k] = arrays[k].reshape(-1, h, w)
    return Explanation(
        total=arrays["total"], decision=arrays["decision"],
        redundant=arrays["total"] - arrays["decision"], mask=arrays["mask"],
        predictions=np.concatenate(preds).astype(np.int64),
        masked_predictions=np.concatenate(masked_preds).astype(np.int64),
        local=local, layer=session.layer,
        labels=np.concatenate(labels).astype(np.int64) if labels and len(labels) == len(preds)
        else None,
        valid=arrays["valid"].astype(bool) if local == "tokens" else None,
    )


def _stack(chunks: list[np.ndarray]) -> np.ndarray:
    """Concatenate (b, P_k) chunks, padding shorter token rows (NaN, or False for masks)."""
    width = max(c.shape[1] for c in chunks)
    fill: Any = False if chunks[0].dtype == bool else np.nan
    padded = [np.pad(c, ((0, 0), (0, width - c.shape[1])), constant_values=fill)
              if c.shape[1] < width else c for c in chunks]
    return np.concatenate(padded)
