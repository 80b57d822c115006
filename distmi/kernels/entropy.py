"""Kozachenko-Leonenko k-nearest-neighbour entropy, for batches of samples.

Kozachenko & Leonenko (1987); in the form of Kraskov et al. (2004), eq. 20: with r_i the
distance from x_i to its k-th nearest neighbour among N points in R^d,

    H(X) = psi(N) - psi(k) + log V_d + (d / N) sum_i log r_i      (nats),

where V_d is the volume of the unit ball of the norm: 2^d for the max-norm ("chebyshev"),
pi^(d/2) / Gamma(d/2 + 1) for the Euclidean norm. Duplicated points give r_i = 0 and an
entropy of -inf; jitter the data (``distmi`` estimators do by default) or drop duplicates.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma, gammaln

from distmi.kernels.knn_grid import BIG, _insert


def log_unit_ball_volume(d: int, metric: str) -> float:
    """log V_d of the unit ball of the max-norm or the Euclidean norm."""
    if metric == "chebyshev":
        return d * math.log(2.0)
    return 0.5 * d * math.log(math.pi) - float(gammaln(0.5 * d + 1.0))


def kth_distance_1d(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each point to its k-th nearest other point, B 1-D samples (exact).

    In sorted order the k nearest points lie within k positions, so r is the k-th smallest
    of 2k gaps. Args: x (B, n). Returns: (B, n) in sorted order.
    """
    xs = np.sort(x, axis=1)
    b, n = xs.shape
    buf = [np.full((b, n), BIG) for _ in range(k)]
    for o in range(1, k + 1):
        gap = xs[:, o:] - xs[:, :-o]
        up = np.full((b, n), BIG)
        up[:, :-o] = gap
        down = np.full((b, n), BIG)
        down[:, o:] = gap
        _insert(buf, up)
        _insert(buf, down)
    return buf[-1]


def kth_distance(
    x: np.ndarray, k: int, metric: str = "chebyshev", backend: str = "kdtree",
    device: str = "cpu", memory_budget: float = 256e6,
) -> np.ndarray:
    """k-th neighbour distances of G samples x (G, n, d) -> (G, n)."""
    g, n, d = x.shape
    if d == 1 and backend != "brute":
        return kth_distance_1d(x[..., 0], k)
    p = np.inf if metric == "chebyshev" else 2.0
    if backend == "brute":
        import torch

        xt = torch.as_tensor(x, dtype=torch.float64, device=device)
        rows = int(max(1, min(n, memory_budget // (8.0 * g * n * (d + 2)))))
        out = []
        for start in range(0, n, rows):
            q = xt[:, start : start + rows]
            diff = q[:, :, None, :] - xt[:, None, :, :]
            dist = diff.abs().amax(-1) if p == np.inf else diff.pow(2).sum(-1).sqrt()
            out.append(torch.topk(dist, k + 1, dim=-1, largest=False).values[..., k])
        return torch.cat(out, dim=1).cpu().numpy()
    from scipy.spatial import cKDTree

    return np.stack([cKDTree(x[i]).query(x[i], k=k + 1, p=p)[0][:, k] for i in range(g)])


def kl_entropy(
    x: np.ndarray, k: int = 3, metric: str = "chebyshev", backend: str = "kdtree",
    device: str = "cpu",
) -> np.ndarray:
    """Kozachenko-Leonenko entropy of G samples x (G, n, d) -> (G,) nats."""
    _, n, d = x.shape
    r = kth_distance(x, k, metric, backend, device)
    with np.errstate(divide="ignore"):
        mean_log = np.log(r).mean(axis=1)
    return float(digamma(n)) - float(digamma(k)) + log_unit_ball_volume(d, metric) + d * mean_log
