"""Compiled nearest-neighbour kernels of the rank screen: copula KSG and copula Ross.

Inputs are rank vectors (permutations of 0..n-1), so the sample is a permutation matrix and the
KSG / Ross marginal counts are closed form (see :mod:`distmi.kernels.rank_screen` for the
estimators). Only the k-th neighbour distance needs a search:

- **copula KSG** (two rank vectors): the column layout of :mod:`distmi.kernels.knn_compiled` on
  integers. Columns hold ``s`` consecutive x ranks and are sorted by y rank (built in O(n) by
  dealing the points out in y order, no sort). From each point the search walks its column up
  and down in y, then the neighbouring columns, stopping in every direction once the y gap or
  the column's x gap reaches the current k-th distance, so eps_i is exact (ties resolved by
  value). s ~ sqrt(n k) (1 - rho^2)^(1/4) with rho the Spearman correlation (speed only).
- **copula Ross** (ranks and labels): in x-rank order the k_i nearest points of the same class
  are among the k class members on either side; d_i is the k_i-th smallest of those 2k gaps,
  found by merging the two sorted gap sequences. O(n k).

All functions are numba ``nogil``: callers run blocks of pairs on threads.
"""

from __future__ import annotations

import math

import numpy as np

try:  # numba is a dependency; rank_screen refuses to run without it
    import numba

    _jit = numba.njit(nogil=True, cache=True)
except ImportError:  # pragma: no cover - exercised only on installs without numba

    def _jit(func):
        return func


@_jit
def _insert(buf: np.ndarray, dist: np.int64) -> None:
    """Insert into the ascending buffer of the k smallest distances (largest falls out)."""
    t = dist
    for j in range(buf.size):
        b = buf[j]
        buf[j] = b if b < t else t
        t = t if b < t else b


@_jit
def _walk(cy: np.ndarray, cx: np.ndarray, a: int, e: int, up: int, down: int, xi: int, yi: int,
          buf: np.ndarray) -> None:
    """Offer entries of the y-sorted column [a, e) upwards from ``up`` and downwards from
    ``down``, each direction stopping once the y gap reaches the current k-th distance."""
    k1 = buf.size - 1
    for q in range(up, e):
        dy = cy[q] - yi
        if dy >= buf[k1]:
            break
        dx = abs(cx[q] - xi)
        _insert(buf, dx if dx > dy else dy)
    for q in range(down, a - 1, -1):
        dy = yi - cy[q]
        if dy >= buf[k1]:
            break
        dx = abs(cx[q] - xi)
        _insert(buf, dx if dx > dy else dy)


@_jit
def _lower_bound(a: np.ndarray, lo: int, hi: int, v: int) -> int:
    """First index in [lo, hi) with a[index] >= v (hi if none); a ascending."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def _copula_ksg_row(rx: np.ndarray, ry: np.ndarray, k: int, psi: np.ndarray,
                    x_at_y: np.ndarray, cy: np.ndarray, cx: np.ndarray,
                    fill: np.ndarray, buf: np.ndarray) -> float:
    """Copula KSG-1 of one pair of rank vectors (see module docstring)."""
    n = rx.size
    # Spearman correlation sets the column size (speed only): s ~ sqrt(n k) (1 - r^2)^(1/4)
    d2 = 0.0
    for j in range(n):
        x_at_y[ry[j]] = rx[j]
        d = float(rx[j] - ry[j])
        d2 += d * d
    rho = 1.0 - 6.0 * d2 / (float(n) * (float(n) * float(n) - 1.0))
    shrink = max(1.0 - rho * rho, 1e-8) ** 0.25
    s = math.floor(math.sqrt(n * k) * shrink + 0.5)
    s = max(min(s, n), min(2 * k + 2, n))
    nb = (n + s - 1) // s
    for c in range(nb):
        fill[c] = c * s
    for u in range(n):  # deal the points out in y order: every column ends up sorted by y
        t = x_at_y[u]
        c = t // s
        q = fill[c]
        fill[c] = q + 1
        cy[q] = u
        cx[q] = t
    big = np.int64(2 * n + 2)
    total = 0.0
    up_ptr = 0
    down_ptr = 0
    for p in range(n):
        c = p // s
        if p == c * s:
            up_ptr = (c + 1) * s
            down_ptr = (c - 1) * s
        xi = cx[p]
        yi = cy[p]
        buf[:] = big
        _walk(cy, cx, c * s, min(c * s + s, n), p + 1, p - 1, xi, yi, buf)
        if c + 1 < nb:
            e = min(c * s + 2 * s, n)
            while up_ptr < e and cy[up_ptr] < yi:
                up_ptr += 1
            if (c + 1) * s - xi < buf[k - 1]:
                _walk(cy, cx, (c + 1) * s, e, up_ptr, up_ptr - 1, xi, yi, buf)
                for c2 in range(c + 2, nb):
                    if c2 * s - xi >= buf[k - 1]:
                        break
                    a = c2 * s
                    e2 = min(a + s, n)
                    q = _lower_bound(cy, a, e2, yi)
                    _walk(cy, cx, a, e2, q, q - 1, xi, yi, buf)
        if c > 0:
            e = c * s
            while down_ptr < e and cy[down_ptr] < yi:
                down_ptr += 1
            if xi - (c * s - 1) < buf[k - 1]:
                _walk(cy, cx, e - s, e, down_ptr, down_ptr - 1, xi, yi, buf)
                for c2 in range(c - 2, -1, -1):
                    if xi - (c2 * s + s - 1) >= buf[k - 1]:
                        break
                    a = c2 * s
                    q = _lower_bound(cy, a, a + s, yi)
                    _walk(cy, cx, a, a + s, q, q - 1, xi, yi, buf)
        eps = buf[k - 1]
        n_x = min(xi + eps - 1, n - 1) - max(xi - eps + 1, 0)
        n_y = min(yi + eps - 1, n - 1) - max(yi - eps + 1, 0)
        total += psi[n_x + 1] + psi[n_y + 1]
    return psi[k] + psi[n] - total / n


@_jit
def copula_ksg_rows(rank_x: np.ndarray, rank_y: np.ndarray, pairs: np.ndarray, k: int,
                     psi: np.ndarray, out: np.ndarray) -> None:
    n = rank_x.shape[1]
    x_at_y = np.empty(n, dtype=np.int64)
    cy = np.empty(n, dtype=np.int64)
    cx = np.empty(n, dtype=np.int64)
    fill = np.empty(n + 1, dtype=np.int64)
    buf = np.empty(k, dtype=np.int64)
    for p in range(pairs.shape[0]):
        out[p] = _copula_ksg_row(rank_x[pairs[p, 0]], rank_y[pairs[p, 1]], k, psi, x_at_y, cy,
                                 cx, fill, buf)


@_jit
def copula_ross_rows(rank_x: np.ndarray, labels: np.ndarray, rows: np.ndarray, k: int,
                      psi: np.ndarray, out: np.ndarray) -> None:
    """Copula Ross (2014) per row of ``rank_x`` listed in ``rows``; labels (n,) codes 0..C-1."""
    n = rank_x.shape[1]
    n_classes = 0
    for j in range(n):
        if labels[j] + 1 > n_classes:
            n_classes = labels[j] + 1
    size = np.zeros(n_classes, dtype=np.int64)
    for j in range(n):
        size[labels[j]] += 1
    start = np.zeros(n_classes + 1, dtype=np.int64)
    for c in range(n_classes):
        start[c + 1] = start[c] + size[c]
    n_keep = 0
    const = 0.0  # sum over kept points of psi(k_i) - psi(N_c)
    for c in range(n_classes):
        if size[c] > 1:
            n_keep += size[c]
            const += size[c] * (psi[min(k, size[c] - 1)] - psi[size[c]])
    lab_at_x = np.empty(n, dtype=np.int64)
    pos = np.empty(n, dtype=np.int64)
    fill = np.empty(n_classes, dtype=np.int64)
    for p in range(rows.shape[0]):
        rx = rank_x[rows[p]]
        for j in range(n):
            lab_at_x[rx[j]] = labels[j]
        for c in range(n_classes):
            fill[c] = start[c]
        for t in range(n):  # class-major list of x ranks, ascending within each class
            c = lab_at_x[t]
            pos[fill[c]] = t
            fill[c] += 1
        total = 0.0
        for c in range(n_classes):
            a = start[c]
            m = size[c]
            if m < 2:
                continue
            kc = min(k, m - 1)
            for q in range(m):
                t = pos[a + q]
                # kc-th smallest of the gaps to the class members on either side (both sorted)
                lo = 1
                hi = 1
                d = 0
                for _ in range(kc):
                    left = t - pos[a + q - lo] if q - lo >= 0 else 2 * n
                    right = pos[a + q + hi] - t if q + hi < m else 2 * n
                    if left <= right:
                        d = left
                        lo += 1
                    else:
                        d = right
                        hi += 1
                m_i = min(t + d - 1, n - 1) - max(t - d + 1, 0) + 1
                total += psi[m_i]
        out[p] = psi[n_keep] + (const - total) / n_keep
