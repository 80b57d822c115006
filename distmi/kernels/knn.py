"""Nearest-neighbour radii and neighbour counts for KSG-type estimators, any dimension.

All distances are max-norm (Chebyshev), as in KSG: for z = (x, y),
||z_i - z_j|| = max(||x_i - x_j||_inf, ||y_i - y_j||_inf) (Kraskov et al. 2004, sec. II).

Two exact backends, same numbers:

- **brute** (torch, batched): G problems at once, query rows in chunks so that the (G, chunk, n)
  distance blocks stay within ``memory_budget`` bytes. Runs on CPU or CUDA.
- **kdtree** (scipy ``cKDTree``, CPU): one tree per problem, O(n log n); for large n.

1-D counts are binary searches in sorted columns (:func:`count_sorted`).

Ties: a neighbour is "strictly inside" radius r when its distance is below r - tau with
tau = 1e-12 (|coordinate| + r). The k-th neighbour lies exactly at r in one coordinate and
floating-point rounding would otherwise decide whether it is counted; tau makes the rule the same
for sorted searches, trees and brute force.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIE_RTOL = 1e-12


@dataclass
class Radii:
    """Per-point radii of G problems (numpy, shape (G, n)); ``eps_x``/``eps_y`` for KSG-2."""

    eps: np.ndarray
    eps_x: np.ndarray | None = None
    eps_y: np.ndarray | None = None


def shrink(radius: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Radius for a strict comparison ``d < radius`` that is robust to rounding (see module)."""
    return radius - TIE_RTOL * (np.abs(scale) + radius)


def grow(radius: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Radius for an inclusive comparison ``d <= radius`` that is robust to rounding."""
    return radius + TIE_RTOL * (np.abs(scale) + radius)


def count_sorted(sorted_vals: np.ndarray, centres: np.ndarray, radius: np.ndarray,
                 strict: bool) -> np.ndarray:
    """Neighbours of each centre within ``radius`` in a sorted 1-D sample, self excluded.

    Args:
        sorted_vals: (B, n) ascending.
        centres: (B, m) sample points (each occurs in its row of ``sorted_vals``).
        radius: (B, m).
        strict: count |v - c| < radius (KSG-1) instead of <= radius (KSG-2).
    Returns:
        (B, m) int64 counts.
    """
    out = np.empty(centres.shape, dtype=np.int64)
    if strict:
        r = shrink(radius, centres)
        for b in range(sorted_vals.shape[0]):
            hi = np.searchsorted(sorted_vals[b], centres[b] + r[b], "left")
            lo = np.searchsorted(sorted_vals[b], centres[b] - r[b], "right")
            out[b] = hi - lo
        # the open interval holds the centre itself only when r > 0
        out -= r > 0
        np.maximum(out, 0, out=out)
    else:
        r = grow(radius, centres)
        for b in range(sorted_vals.shape[0]):
            hi = np.searchsorted(sorted_vals[b], centres[b] + r[b], "right")
            lo = np.searchsorted(sorted_vals[b], centres[b] - r[b], "left")
            out[b] = hi - lo - 1
    return out


def _chunk_rows(g: int, n: int, width: int, memory_budget: float) -> int:
    per_row = 8.0 * g * n * (width + 4)
    return int(max(1, min(n, memory_budget // max(per_row, 1.0))))


def brute_ksg_counts(
    x, y, k: int, algorithm: int, memory_budget: float = 256e6
) -> tuple[object, object]:
    """KSG marginal counts of G problems by brute force (torch; CPU or CUDA).

    Args:
        x: (G, n, dx) tensor; y: (G, n, dy) tensor (same dtype/device).
        k: neighbours; algorithm: 1 (strict counts within eps) or 2 (within eps_x / eps_y).
    Returns:
        (n_x, n_y): (G, n) int64 tensors, self excluded.
    """
    import torch

    g, n, _ = x.shape
    rows = _chunk_rows(g, n, x.shape[2] + y.shape[2], memory_budget)
    n_x = torch.empty((g, n), dtype=torch.int64, device=x.device)
    n_y = torch.empty_like(n_x)
    for start in range(0, n, rows):
        q = slice(start, min(start + rows, n))
        dx = (x[:, q, None, :] - x[:, None, :, :]).abs().amax(-1)  # (G, c, n)
        dy = (y[:, q, None, :] - y[:, None, :, :]).abs().amax(-1)
        dist = torch.maximum(dx, dy)
        near = torch.topk(dist, k + 1, dim=-1, largest=False).indices  # self included
        sx = x[:, q].abs().amax(-1)
        sy = y[:, q].abs().amax(-1)
        if algorithm == 1:
            eps = dist.gather(-1, near).amax(-1)
            rx = eps - TIE_RTOL * (sx + eps)
            ry = eps - TIE_RTOL * (sy + eps)
            n_x[:, q] = (dx < rx[..., None]).sum(-1) - (rx > 0).long()
            n_y[:, q] = (dy < ry[..., None]).sum(-1) - (ry > 0).long()
        else:
            ex = dx.gather(-1, near).amax(-1)
            ey = dy.gather(-1, near).amax(-1)
            rx = ex + TIE_RTOL * (sx + ex)
            ry = ey + TIE_RTOL * (sy + ey)
            n_x[:, q] = (dx <= rx[..., None]).sum(-1) - 1
            n_y[:, q] = (dy <= ry[..., None]).sum(-1) - 1
    return n_x.clamp_(min=0), n_y.clamp_(min=0)


def kdtree_ksg_counts(
    x: np.ndarray, y: np.ndarray, k: int, algorithm: int, workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """KSG marginal counts of one problem with k-d trees (scipy, CPU).

    Args:
        x: (n, dx); y: (n, dy) float64.
    Returns:
        (n_x, n_y): (n,) int64, self excluded.
    """
    from scipy.spatial import cKDTree

    z = np.concatenate([x, y], axis=1)
    _, idx = cKDTree(z).query(z, k=k + 1, p=np.inf, workers=workers)  # (n, k+1), self first
    nb_x = np.abs(x[idx] - x[:, None, :]).max(-1)  # (n, k+1)
    nb_y = np.abs(y[idx] - y[:, None, :]).max(-1)
    sx = np.abs(x).max(1)
    sy = np.abs(y).max(1)
    if algorithm == 1:
        eps = np.maximum(nb_x, nb_y).max(1)
        rx, ry = shrink(eps, sx), shrink(eps, sy)
        n_x = ball_counts(x, rx, strict=True, workers=workers) - (rx > 0)
        n_y = ball_counts(y, ry, strict=True, workers=workers) - (ry > 0)
    else:
        rx, ry = grow(nb_x.max(1), sx), grow(nb_y.max(1), sy)
        n_x = ball_counts(x, rx, strict=False, workers=workers) - 1
        n_y = ball_counts(y, ry, strict=False, workers=workers) - 1
    return np.maximum(n_x, 0), np.maximum(n_y, 0)


def ball_counts(v: np.ndarray, radius: np.ndarray, *, strict: bool, workers: int = 1) -> np.ndarray:
    """Points of v (n, d) within max-norm distance ``radius`` (n,) of each point, self included.

    For the strict rule the radius was already shrunk by tau, so ``d < r`` is ``d <= r`` here;
    a strict radius <= 0 contains nothing (the count is then 0, as for sorted and brute counts).
    """
    from scipy.spatial import cKDTree

    out = np.zeros(len(v), dtype=np.int64)
    ok = radius > 0 if strict else radius >= 0
    if ok.any():
        tree = cKDTree(v)
        out[ok] = tree.query_ball_point(
            v[ok], r=radius[ok], p=np.inf, return_length=True, workers=workers
        )
    return out


def kdtree_kth_distance(v: np.ndarray, k: int, workers: int = 1) -> np.ndarray:
    """Max-norm distance of each point of v (n, d) to its k-th nearest other point."""
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(v).query(v, k=k + 1, p=np.inf, workers=workers)
    return dist[:, k]
