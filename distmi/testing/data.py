"""Ground-truth data for the conformance suite (pure numpy, seeded).

Bivariate Gaussians with correlation rho have I(X; Y) = -1/2 log(1 - rho^2) nats, so the
correlation of a dataset with mutual information I is rho = sqrt(1 - e^{-2 I}).
"""

from __future__ import annotations

import math

import numpy as np

from distmi.core.seeds import derive_rng


def rho_for_mi(mi: float) -> float:
    """Correlation of the bivariate Gaussian whose MI is ``mi`` nats."""
    return math.sqrt(1.0 - math.exp(-2.0 * mi))


def gaussian_mi(rho: float) -> float:
    """I(X; Y) of a bivariate Gaussian with correlation ``rho``, nats."""
    return -0.5 * math.log1p(-rho * rho)


def gaussian_columns(n: int, mis: np.ndarray, seed: int, *key: str | int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Independent datasets as columns: X[:, j], Y[:, j] bivariate Gaussian with MI ``mis[j]``.

    Args:
        n: rows of every dataset.
        mis: (m,) true MI of each dataset, nats.
    Returns:
        X, Y: (n, m) each.
    """
    mis = np.asarray(mis, dtype=np.float64)
    rng = derive_rng(seed, "conformance-gaussian", n, *key)
    rho = np.sqrt(1.0 - np.exp(-2.0 * mis))  # (m,)
    x = rng.standard_normal((n, mis.size))
    y = rho * x + np.sqrt(1.0 - rho * rho) * rng.standard_normal((n, mis.size))
    return x, y


def gaussian_pair(n: int, mi: float, seed: int, *key: str | int) -> tuple[np.ndarray, np.ndarray]:
    """One bivariate Gaussian dataset with MI ``mi``: x (n,), y (n,)."""
    x, y = gaussian_columns(n, np.array([mi]), seed, *key)
    return x[:, 0], y[:, 0]


def labelled(n: int, seed: int, *key: str | int) -> tuple[np.ndarray, np.ndarray]:
    """x (n, 2) whose first column depends on three classes, and the labels (n,)."""
    rng = derive_rng(seed, "conformance-labels", n, *key)
    labels = rng.integers(0, 3, size=n)
    x = rng.standard_normal((n, 2))
    x[:, 0] += 1.5 * labels
    return x, labels
