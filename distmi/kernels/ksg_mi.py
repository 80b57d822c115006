"""KSG mutual information and its mixed continuous/discrete variant, for batches of problems.

Kraskov, Stoegbauer & Grassberger (2004), "Estimating mutual information", Phys. Rev. E 69,
066138. With eps_i the max-norm distance from z_i = (x_i, y_i) to its k-th neighbour,

- algorithm 1 (eq. 8):  I = psi(k) + psi(N) - < psi(n_x + 1) + psi(n_y + 1) >,
  n_x(i) = #{j != i : ||x_j - x_i|| < eps_i}  (n_y likewise);
- algorithm 2 (eq. 9):  I = psi(k) - 1/k + psi(N) - < psi(n_x) + psi(n_y) >,
  n_x(i) = #{j != i : ||x_j - x_i|| <= eps_x(i)},  eps_x(i) = max over the k neighbours of
  ||x_j - x_i||.

Continuous X and a discrete label Y (Ross 2014, "Mutual information between discrete and
continuous data sets", PLoS ONE 9, e87357, eq. 2): with d_i the distance from x_i to its k_i-th
neighbour among the points of its own class (k_i = min(k, N_c - 1)) and m_i the number of points
of any class strictly within d_i (x_i itself included),

    I = psi(N) + < psi(k_i) > - < psi(N_{c(i)}) > - < psi(m_i) >,

averaged over the points whose class has at least two members (N counts those points).

Averages are row sums of a digamma lookup table, so a problem gives bit-identical results
alone or inside any batch.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma

from distmi.kernels.knn import (
    TIE_RTOL,
    ball_counts,
    brute_ksg_counts,
    count_sorted,
    kdtree_ksg_counts,
    shrink,
)
from distmi.kernels.knn_grid import BIG, _insert, grid_knn_1d


def _psi_table(n: int) -> np.ndarray:
    """psi(0..n+1) with psi(0) = -inf."""
    table = np.empty(n + 2)
    table[0] = -np.inf
    table[1:] = digamma(np.arange(1, n + 2, dtype=np.float64))
    return table


def ksg_from_counts(n_x: np.ndarray, n_y: np.ndarray, k: int, algorithm: int) -> np.ndarray:
    """KSG estimate per row from marginal counts (G, n) -> (G,) nats."""
    n = n_x.shape[1]
    psi = _psi_table(n)
    if algorithm == 1:
        terms = psi[n_x + 1] + psi[n_y + 1]
        const = psi[k] + psi[n]
    else:
        terms = psi[np.maximum(n_x, 1)] + psi[np.maximum(n_y, 1)]
        const = psi[k] - 1.0 / k + psi[n]
    return const - terms.sum(axis=1) / n


def ksg_1d_batch(
    x: np.ndarray, y: np.ndarray, k: int, algorithm: int = 1, window: int | None = None
) -> tuple[np.ndarray, int]:
    """KSG for B 1-D/1-D problems with the exact grid search.

    Args:
        x, y: (B, n) float64, standardised.
    Returns:
        (values (B,), number of points that needed the fallback search)
    """
    radii = grid_knn_1d(
        x, y, k, marginal_radii=algorithm == 2, window=window if window else k + 6
    )
    ys_sorted = np.sort(radii.ys, axis=1)
    if algorithm == 1:
        n_x = count_sorted(radii.xs, radii.xs, radii.eps, strict=True)
        n_y = count_sorted(ys_sorted, radii.ys, radii.eps, strict=True)
    else:
        n_x = count_sorted(radii.xs, radii.xs, radii.eps_x, strict=False)
        n_y = count_sorted(ys_sorted, radii.ys, radii.eps_y, strict=False)
    return ksg_from_counts(n_x, n_y, k, algorithm), radii.n_fallback


def ksg_1d_compiled(x: np.ndarray, y: np.ndarray, k: int, algorithm: int = 1) -> np.ndarray:
    """KSG for B 1-D/1-D problems with the compiled column search
    (:mod:`distmi.kernels.knn_compiled`); same counts as :func:`ksg_1d_batch`.

    Args:
        x, y: (B, n) float64, standardised.
    Returns:
        (B,) estimates in nats.
    """
    from distmi.kernels.knn_compiled import ksg_counts_1d

    n_x, n_y = ksg_counts_1d(x, y, k, algorithm)
    return ksg_from_counts(n_x, n_y, k, algorithm)


def ksg_batch(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    algorithm: int = 1,
    backend: str = "kdtree",
    device: str = "cpu",
    workers: int = 1,
    memory_budget: float = 256e6,
) -> np.ndarray:
    """KSG for G problems of any dimension.

    Args:
        x: (G, n, dx); y: (G, n, dy) float64, standardised.
        backend: ``"kdtree"`` (scipy, one tree per problem) or ``"brute"`` (torch, batched).
    Returns:
        (G,) estimates in nats.
    """
    if backend == "brute":
        import torch

        xt = torch.as_tensor(x, dtype=torch.float64, device=device)
        yt = torch.as_tensor(y, dtype=torch.float64, device=device)
        n_x, n_y = brute_ksg_counts(xt, yt, k, algorithm, memory_budget)
        return ksg_from_counts(n_x.cpu().numpy(), n_y.cpu().numpy(), k, algorithm)
    counts = [kdtree_ksg_counts(x[g], y[g], k, algorithm, workers) for g in range(x.shape[0])]
    n_x = np.stack([c[0] for c in counts])
    n_y = np.stack([c[1] for c in counts])
    return ksg_from_counts(n_x, n_y, k, algorithm)


def _mixed_from_parts(
    d: np.ndarray, m: np.ndarray, k_i: np.ndarray, class_size: np.ndarray
) -> np.ndarray:
    """Ross (2014) eq. 2 per row; all inputs (G, n); points of singleton classes are dropped."""
    n = d.shape[1]
    psi = _psi_table(n)
    keep = class_size > 1
    n_keep = keep.sum(axis=1)
    terms = np.where(keep, psi[np.maximum(k_i, 1)] - psi[class_size] - psi[np.maximum(m, 1)], 0.0)
    return psi[n_keep] + terms.sum(axis=1) / n_keep


def _class_sizes(labels: np.ndarray) -> np.ndarray:
    """Size of each point's class, (G, n) int labels -> (G, n)."""
    out = np.empty_like(labels)
    for g in range(labels.shape[0]):
        out[g] = np.bincount(labels[g])[labels[g]]
    return out


def mixed_1d_batch(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Ross (2014) estimate for B problems with 1-D x.

    In 1-D the k nearest same-class points of x_i lie within k positions of it in the
    class-major, x-sorted order, so d_i is the k_i-th smallest of 2k gaps (exact).

    Args:
        x: (B, n) float64; labels: (B, n) int64 codes >= 0.
    Returns:
        (B,) nats.
    """
    order = np.argsort(x, axis=1)
    xs = np.take_along_axis(x, order, 1)
    lab = np.take_along_axis(labels, order, 1)
    by_class = np.argsort(lab, axis=1, kind="stable")  # class-major, x ascending inside
    xc = np.take_along_axis(xs, by_class, 1)
    lc = np.take_along_axis(lab, by_class, 1)
    b, n = xs.shape
    buf = [np.full((b, n), BIG) for _ in range(k)]
    for o in range(1, k + 1):
        gap = np.where(lc[:, o:] == lc[:, :-o], xc[:, o:] - xc[:, :-o], BIG)
        up = np.full((b, n), BIG)
        up[:, :-o] = gap
        down = np.full((b, n), BIG)
        down[:, o:] = gap
        _insert(buf, up)
        _insert(buf, down)
    size = _class_sizes(lc)
    k_i = np.minimum(k, size - 1)
    d = np.take_along_axis(np.stack(buf, axis=-1), np.maximum(k_i - 1, 0)[..., None], -1)[..., 0]
    m = count_sorted(xs, xc, d, strict=True) + 1  # + x_i itself
    return _mixed_from_parts(d, m, k_i, size)


def mixed_batch(
    x: np.ndarray,
    labels: np.ndarray,
    k: int,
    backend: str = "kdtree",
    device: str = "cpu",
    workers: int = 1,
    memory_budget: float = 256e6,
) -> np.ndarray:
    """Ross (2014) estimate for G problems of any x dimension.

    Args:
        x: (G, n, dx) float64; labels: (G, n) int64.
    Returns:
        (G,) nats.
    """
    g, n, _ = x.shape
    size = _class_sizes(labels)
    k_i = np.minimum(k, size - 1)
    if backend == "brute":
        d, m = _mixed_brute(x, labels, k, k_i, device, memory_budget)
    else:
        from scipy.spatial import cKDTree

        d = np.zeros((g, n))
        m = np.ones((g, n), dtype=np.int64)
        for p in range(g):
            for c in np.unique(labels[p]):
                members = np.flatnonzero(labels[p] == c)
                kc = min(k, members.size - 1)
                if kc < 1:
                    continue
                pts = x[p, members]
                dist, _ = cKDTree(pts).query(pts, k=kc + 1, p=np.inf, workers=workers)
                d[p, members] = dist[:, kc]
            r = shrink(d[p], np.abs(x[p]).max(1))
            m[p] = np.maximum(ball_counts(x[p], r, strict=True, workers=workers), 1)
    return _mixed_from_parts(d, m, k_i, size)


def _mixed_brute(x, labels, k, k_i, device, memory_budget):
    import torch

    g, n, dx = x.shape
    xt = torch.as_tensor(x, dtype=torch.float64, device=device)
    lt = torch.as_tensor(labels, device=device)
    rows = int(max(1, min(n, memory_budget // (8.0 * g * n * (dx + 4)))))
    d = torch.empty((g, n), dtype=torch.float64, device=device)
    m = torch.empty((g, n), dtype=torch.int64, device=device)
    kk = torch.as_tensor(np.maximum(k_i, 0), device=device)
    for start in range(0, n, rows):
        q = slice(start, min(start + rows, n))
        dist = (xt[:, q, None, :] - xt[:, None, :, :]).abs().amax(-1)  # (G, c, n)
        same = lt[:, q, None] == lt[:, None, :]
        near = torch.topk(torch.where(same, dist, BIG), k + 1, dim=-1, largest=False)
        dq = near.values.gather(-1, kk[:, q, None].clamp(max=k))[..., 0]  # index 0 is self
        r = dq - TIE_RTOL * (xt[:, q].abs().amax(-1) + dq)
        d[:, q] = dq
        m[:, q] = (dist < r[..., None]).sum(-1).clamp(min=1)
    return d.cpu().numpy(), m.cpu().numpy()
