"""The shared structure of batched GMM fitting: settings, problems and random structure.

A *problem* is one mixture to fit: a data row (P, N, D) and a base weight row (ones for a joint
fit, a class mask for a class-conditional fit). Folds, bootstrap replicates, jackknife groups
and the selection subsample are weight rows over the same data. Their random numbers depend
only on (seed, purpose) and N, never on which problems share a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from distmi.core.seeds import derive_rng


@dataclass(frozen=True)
class GMMFitConfig:
    """Numerical settings of a GMM-MI fit (validated by the estimator layer)."""

    n_components: int | None = None
    max_components: int = 50
    select: str = "cv"
    n_folds: int = 2
    n_inits: int = 3
    init: str = "split"
    threshold: float = 1e-5
    patience: int = 1
    reg_covar: float = 1e-6
    tol: float = 1e-5
    max_iter: int = 10_000
    select_samples: int | None = 5000
    probe_iter: int = 5
    stop_hopeless: bool = True
    bootstrap_init: str = "warm"
    backend: str = "auto"
    memory_budget: float = 256e6


@dataclass
class Problems:
    """Q mixture-fitting problems over shared data.

    Attributes:
        data: (P, N, D) float64 (standardised).
        problem_data: (Q,) long, data row per problem.
        base_weights: (R, N) float64, base weight rows (ones or class masks).
        problem_base: (Q,) long, base row per problem.
    """

    data: torch.Tensor
    problem_data: torch.Tensor
    base_weights: torch.Tensor
    problem_base: torch.Tensor

    @property
    def n_problems(self) -> int:
        return int(self.problem_data.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.data.shape[1])

    @property
    def dim(self) -> int:
        return int(self.data.shape[2])


def _uniforms(seed: int, k: int, n_inits: int, n: int, init: str, device) -> torch.Tensor:
    rng = derive_rng(seed, "gmm-init", init, k)
    shape = (n_inits, n, k) if init == "random" else (n_inits, k)
    return torch.as_tensor(rng.random(shape), dtype=torch.float64, device=device)


def selection_rows(seed: int, n: int, select_samples: int | None) -> np.ndarray:
    """Rows used to choose K: all of them, or a fixed random subset of ``select_samples``."""
    if select_samples is None or n <= select_samples:
        return np.arange(n)
    return np.sort(derive_rng(seed, "gmm-select-rows").permutation(n)[:select_samples])


def fold_masks(seed: int, n: int, n_folds: int, device, rows: np.ndarray | None = None) -> torch.Tensor:
    """Held-out masks (F, N) of one fixed shuffled K-fold split of ``rows`` (default: all)."""
    perm = derive_rng(seed, "gmm-folds").permutation(n)
    if rows is not None and len(rows) < n:
        keep = np.zeros(n, dtype=bool)
        keep[rows] = True
        perm = perm[keep[perm]]
    masks = np.zeros((n_folds, n))
    for f, chunk in enumerate(np.array_split(perm, n_folds)):
        masks[f, chunk] = 1.0
    return torch.as_tensor(masks, dtype=torch.float64, device=device)


def bootstrap_counts(seed: int, n: int, n_bootstrap: int, device) -> torch.Tensor:
    """Multinomial resampling counts (B, N): replicate b draws row i counts[b, i] times."""
    rng = derive_rng(seed, "bootstrap")
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap)
    return torch.as_tensor(counts, dtype=torch.float64, device=device)


def jackknife_masks(seed: int, n: int, n_groups: int, device) -> torch.Tensor:
    """Delete-a-group jackknife weights (J, N): row j is 0 on group j and 1 elsewhere."""
    perm = derive_rng(seed, "gmm-jackknife").permutation(n)
    masks = np.ones((n_groups, n))
    for j, chunk in enumerate(np.array_split(perm, n_groups)):
        masks[j, chunk] = 0.0
    return torch.as_tensor(masks, dtype=torch.float64, device=device)


def _n_free_params(k: int, d: int) -> int:
    return (k - 1) + k * d + k * d * (d + 1) // 2


def _per_problem(values: torch.Tensor, groups: int) -> torch.Tensor:
    """Sum consecutive groups of ``groups`` entries: (A * groups,) -> (A,)."""
    return values.view(-1, groups).sum(1)
