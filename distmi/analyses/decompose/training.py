"""Fitting the inserted modules: a survey pass, then epochs of the decomposition objective.

1. **Survey** (one no-grad pass over the data): checks the layer against the local mode and the
   labels against the model's classes, measures the standardisation statistics of the local
   inputs and of Z, and keeps a reference bank of local inputs (``n_reference`` samples, drawn
   with the seed for in-memory data, the first ones of a loader) for the pointwise maps.
2. **Training**: per batch, a no-grad pass gives X, Z and the model's prediction; the mask gives
   lambda and X' = lambda * X; a second pass with X' substituted gives f(X'); the critic scores
   Z against X and X'; one Adam step on the critic and the mask minimises
   L = -(I(Z;X) + I(Z;X')) + CE(f(X'), y) + c * mean(lambda) (:mod:`losses`). The model's
   parameters have ``requires_grad=False`` and are in no optimizer.

Determinism: module initialisation draws from ``derive_seed(random_state, "decompose", "init")``
(the global torch RNG is restored afterwards) and epoch orders from
``derive_rng(random_state, "decompose", "epoch", e)``, so a seed fixes the fit on a given device
and thread count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from distmi.analyses.decompose.config import DecomposeConfig
from distmi.analyses.decompose.critic import InfomaxCritic
from distmi.analyses.decompose.data import (
    InMemoryData,
    IterableData,
    index_inputs,
)
from distmi.analyses.decompose.locals import to_positions
from distmi.analyses.decompose.losses import BoundState, infomax_terms, total_loss
from distmi.analyses.decompose.mask import ConvMask, TokenMask, apply_mask
from distmi.analyses.decompose.session import ModelSession
from distmi.core.errors import InvalidInputError, TooFewSamplesError
from distmi.core.seeds import derive_rng, derive_seed

POSITION_LR_SCALE = 25.0


@dataclass
class Survey:
    """What the survey pass learned (shapes, statistics, reference bank, class count)."""

    layer_shape: tuple[int, ...]  # (C, H, W) or (D,)
    dim_z: int
    n_classes: int
    n_samples: int
    x_mean: torch.Tensor
    x_std: torch.Tensor
    z_mean: torch.Tensor
    z_std: torch.Tensor
    layer_mean: torch.Tensor  # conv (C, H, W) mean feature map; tokens (D,)
    layer_std: torch.Tensor  # same shape, standard deviation
    reference: torch.Tensor  # conv (R, C, H, W); tokens (N_ref_tokens, D)

    @property
    def n_positions(self) -> int:
        return int(np.prod(self.layer_shape[1:])) if len(self.layer_shape) == 3 else 0


class _Moments:
    """Running mean and variance over rows (float64 sums)."""

    def __init__(self) -> None:
        self.n = 0
        self.s: torch.Tensor | None = None
        self.ss: torch.Tensor | None = None

    def add(self, rows: torch.Tensor) -> None:
        rows = rows.double()
        s, ss = rows.sum(0), (rows * rows).sum(0)
        self.s = s if self.s is None else self.s + s
        self.ss = ss if self.ss is None else self.ss + ss
        self.n += rows.shape[0]

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.s / max(self.n, 1)
        var = (self.ss / max(self.n, 1) - mean * mean).clamp_min(0.0)
        return mean.float(), var.sqrt().float()


def _check_labels(labels: torch.Tensor | None, n_classes: int) -> None:
    if labels is not None and len(labels) and int(labels.max()) >= n_classes:
        raise InvalidInputError(
            f"labels go up to {int(labels.max())} but the model scores {n_classes} classes; "
            f"labels must be class ids 0..{n_classes - 1}."
        )


def survey(session: ModelSession, data: InMemoryData | IterableData, cfg: DecomposeConfig
           ) -> Survey:
    """The survey pass (see module docstring)."""
    x_moments, z_moments, map_moments = _Moments(), _Moments(), _Moments()
    bank: list[torch.Tensor] = []
    banked = 0
    layer_shape: tuple[int, ...] | None = None
    n_classes = dim_z = count = 0
    for batch in data.batches(max(cfg.batch_size, 256)):
        fwd = session.capture(batch.inputs)
        if layer_shape is None:
            layer_shape = tuple(fwd.x.shape[1:]) if cfg.local == "conv" else (fwd.x.shape[2],)
            n_classes, dim_z = fwd.logits.shape[1], fwd.z.shape[1]
        elif cfg.local == "conv" and tuple(fwd.x.shape[1:]) != layer_shape:
            raise InvalidInputError(
                f"layer {cfg.layer!r} gave feature maps of shape {tuple(fwd.x.shape[1:])} and "
                f"{layer_shape} for different batches; every input must have the same size."
            )
        _check_labels(batch.labels, n_classes)
        x_moments.add(fwd.positions[fwd.valid])
        if cfg.local == "conv":
            map_moments.add(fwd.x.flatten(1))
        z_moments.add(fwd.z)
        count += fwd.x.shape[0]
        if isinstance(data, IterableData) and banked < cfg.n_reference:
            take = min(cfg.n_reference - banked, fwd.x.shape[0])
            bank.append(_bank_rows(fwd, take, cfg.local))
            banked += take
    assert layer_shape is not None
    if isinstance(data, InMemoryData):
        bank = [_reference_in_memory(session, data, cfg)]
    x_mean, x_std = x_moments.result()
    z_mean, z_std = z_moments.result()
    if cfg.local == "conv":
        layer_mean, layer_std = (t.reshape(layer_shape) for t in map_moments.result())
    else:
        layer_mean, layer_std = x_mean.clone(), x_std.clone()
    return Survey(layer_shape, dim_z, n_classes, count, x_mean.cpu(), x_std.cpu(), z_mean.cpu(),
                  z_std.cpu(), layer_mean.cpu(), layer_std.cpu(), torch.cat(bank).cpu())


def _bank_rows(fwd: Any, take: int, local: str) -> torch.Tensor:
    if local == "conv":
        return fwd.x[:take].cpu()
    return fwd.positions[:take][fwd.valid[:take]].cpu()  # (valid tokens, D)


def _reference_in_memory(session: ModelSession, data: InMemoryData, cfg: DecomposeConfig
                         ) -> torch.Tensor:
    rng = derive_rng(cfg.random_state, "decompose", "reference")
    idx = np.sort(rng.choice(data.n, size=min(cfg.n_reference, data.n), replace=False))
    rows = []
    for s in range(0, len(idx), 256):
        sub = torch.from_numpy(idx[s:s + 256])
        fwd = session.capture(index_inputs(data.inputs, sub))
        rows.append(_bank_rows(fwd, len(sub), cfg.local))
    return torch.cat(rows)


def build_modules(srv: Survey, cfg: DecomposeConfig) -> tuple[InfomaxCritic, nn.Module]:
    """Critic and mask, initialised from the seed, with the survey's statistics."""
    dim_local = srv.layer_shape[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.random_state, "decompose", "init"))
        critic = InfomaxCritic(srv.dim_z, dim_local, srv.n_positions, cfg.hidden, cfg.embed)
        mask = (ConvMask(*srv.layer_shape, hidden=cfg.mask_hidden) if cfg.local == "conv"
                else TokenMask(dim_local, cfg.mask_hidden))
    critic.x_norm.set_stats(srv.x_mean, srv.x_std)
    critic.z_norm.set_stats(srv.z_mean, srv.z_std)
    mask.norm.set_stats(srv.x_mean, srv.x_std)
    if cfg.resolved_fill in ("mean", "noise"):
        mask.baseline.copy_(srv.layer_mean)
    if cfg.resolved_fill == "noise":
        mask.noise_std.copy_(srv.layer_std)
        gen = torch.Generator().manual_seed(derive_seed(cfg.random_state, "decompose",
                                                        "noise-draws"))
        mask.noise_draws.copy_(torch.randn(mask.noise_draws.shape, generator=gen))
    return critic, mask


@dataclass
class _EpochStats:
    sums: dict[str, float] = field(default_factory=dict)
    weight: int = 0

    def add(self, weight: int, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + weight * float(v)
        self.weight += weight

    def means(self) -> dict[str, float]:
        return {k: v / max(self.weight, 1) for k, v in self.sums.items()}


def train(session: ModelSession, data: InMemoryData | IterableData, cfg: DecomposeConfig,
          critic: InfomaxCritic, mask: nn.Module, log: Any = None) -> list[dict[str, float]]:
    """Run the epochs (see module docstring); returns one row of mean statistics per epoch."""
    device = session.device
    critic.to(device)
    mask.to(device)
    # Adam moves each parameter by about lr per step; a per-position mask logit gets no help
    # from shared weights, so it gets a larger rate (else it moves ~1 unit over a whole fit)
    position = [p for n, p in mask.named_parameters() if n == "position"]
    shared = [p for n, p in mask.named_parameters() if n != "position"]
    groups = [{"params": [*critic.parameters(), *shared]}]
    if position:
        groups.append({"params": position, "lr": cfg.lr * POSITION_LR_SCALE})
    opt = torch.optim.Adam(groups, lr=cfg.lr)
    state_x, state_xp = BoundState(), BoundState()
    noise = torch.Generator(device=device).manual_seed(
        derive_seed(cfg.random_state, "decompose", "noise"))
    history = []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        order = None
        if isinstance(data, InMemoryData):
            order = derive_rng(cfg.random_state, "decompose", "epoch", epoch).permutation(data.n)
        stats = _EpochStats()
        for batch in data.batches(cfg.batch_size, order):
            fwd = session.capture(batch.inputs)
            b = fwd.x.shape[0]
            if b < 2:
                continue  # no negatives in a batch of one
            y = fwd.logits.argmax(1) if batch.labels is None else batch.labels.to(device)
            lam = mask(fwd.x)
            x_masked = apply_mask(fwd.x, lam, mask.replacement(fwd.x, generator=noise),
                                  cfg.local)
            logits_masked = session.substitute(batch.inputs, x_masked)
            gz = critic.embed_z(fwd.z)
            scores_x = critic.pair_scores(gz, critic.embed_local(fwd.positions))
            # I(Z; X') trains the critic only: X' enters it detached (see module docstring)
            scores_xp = critic.pair_scores(
                gz, critic.embed_local(to_positions(x_masked.detach(), cfg.local)))
            lam_positions = lam.flatten(1)
            obj_x, i_x = infomax_terms(scores_x, fwd.valid, cfg.local, cfg.bound, state_x)
            obj_xp, i_xp = infomax_terms(scores_xp, fwd.valid, cfg.local, cfg.bound, state_xp)
            loss, parts = total_loss(obj_x, obj_xp, logits_masked, y, lam_positions, fwd.valid,
                                     cfg.c)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            stats.add(b, loss=loss.detach(), i_zx=i_x, i_zx_masked=i_xp, ce=parts["ce"],
                      mean_lambda=parts["mean_lambda"],
                      masked_accuracy=(logits_masked.argmax(1) == y).float().mean())
        if stats.weight == 0:
            raise TooFewSamplesError(
                "no batch held two or more samples, so the critic had no negatives; use "
                "batch_size >= 2 and at least 2 samples."
            )
        row = {"epoch": epoch, **stats.means(), "seconds": time.perf_counter() - t0}
        history.append(row)
        if log is not None:
            log(row)
    critic.cpu()
    mask.cpu()
    return history
