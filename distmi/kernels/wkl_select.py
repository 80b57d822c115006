"""k-th neighbour distances of 2-D samples by threshold collection and selection (numba).

For a single large order k (>= 16, e.g. the k = 25 of information-plane work) the sorted
buffer of :mod:`distmi.kernels.wkl_compiled` costs O(k) per accepted candidate. This kernel
drops it: with a threshold t of 1.3 times the previous point's k-th distance
(points are visited in y-order, so neighbours have similar distances) it collects every
candidate closer than t and selects the k-th smallest (quickselect); if fewer than k were
found, t doubles. Measured at n = 10^4: 0.93 against 1.10 us per point at k = 25 (the buffer is
faster below k ~ 16).

Columns, their y-order and the walk are those of :mod:`distmi.kernels.wkl_compiled`; the
result is exact (tested against a k-d tree), whatever the threshold's first guess.
"""

from __future__ import annotations

import math

import numpy as np

from distmi.kernels.wkl_compiled import _jit, _less, _lower_bound


@_jit
def _select(a: np.ndarray, count: int, kth: int) -> float:
    """The kth smallest (0-based) of a[:count], partially reordering a (quickselect)."""
    lo = 0
    hi = count - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        # median of three as pivot
        x0, x1, x2 = a[lo], a[mid], a[hi]
        if x0 > x1:
            x0, x1 = x1, x0
        if x1 > x2:
            x1 = x2
            if x0 > x1:
                x1 = x0
        pivot = x1
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if kth <= j:
            hi = j
        elif kth >= i:
            lo = i
        else:
            return a[kth]
    return a[kth]


@_jit
def _collect(cy: np.ndarray, cx: np.ndarray, a: int, e: int, up: int, down: int, xi: float,
             yi: float, t: float, cand: np.ndarray, count: int, euclid: bool) -> int:
    """Append to ``cand`` every distance below t of the y-sorted column [a, e), walking up from
    ``up`` and down from ``down`` while |dy| < t; return the new count (branch-free append)."""
    for q in range(up, e):
        dy = cy[q] - yi
        if dy >= t:
            break
        dx = abs(cx[q] - xi)
        dist = math.sqrt(dx * dx + dy * dy) if euclid else (dx if dx > dy else dy)
        cand[count] = dist
        count += _less(dist, t)
    for q in range(down, a - 1, -1):
        dy = yi - cy[q]
        if dy >= t:
            break
        dx = abs(cx[q] - xi)
        dist = math.sqrt(dx * dx + dy * dy) if euclid else (dx if dx > dy else dy)
        cand[count] = dist
        count += _less(dist, t)
    return count


@_jit
def _row_2d_kth(x: np.ndarray, y: np.ndarray, order_x: np.ndarray, order_y: np.ndarray, s: int,
                k: int, euclid: bool, out: np.ndarray, point_out: np.ndarray) -> None:
    """Mean log k-th neighbour distance (one order) by threshold collection and selection.

    Within a column, points are visited in y-order, and neighbouring points have similar k-th
    distances: with t = 1.3 x the previous point's distance, collect every candidate closer than
    t (columns whose x-gap is below t, each walked while |dy| < t) and select the k-th smallest;
    every point closer than t is collected, so if at least k were found the result is exact,
    otherwise t doubles and the point is collected again. No sorted buffer is kept, which is
    what makes large k cheap.
    """
    n = x.size
    per_point = point_out.size == n
    xs = x[order_x]
    nb = (n + s - 1) // s
    rank_x = np.empty(n, dtype=np.int64)
    for r in range(n):
        rank_x[order_x[r]] = r
    fill = np.arange(nb) * s
    cy = np.empty(n)
    cx = np.empty(n)
    origin = np.empty(n, dtype=np.int64)
    for r in range(n):
        j = order_y[r]
        c = rank_x[j] // s
        q = fill[c]
        fill[c] = q + 1
        cy[q] = y[j]
        cx[q] = x[j]
        origin[q] = j
    cand = np.empty(n)
    acc = 0.0
    prev = math.sqrt(k / n)  # ~ the k-th distance of standardised data near the centre
    for p in range(n):
        c = p // s
        xi = cx[p]
        yi = cy[p]
        t = 1.3 * prev
        while True:
            count = _collect(cy, cx, c * s, min(c * s + s, n), p + 1, p - 1, xi, yi, t, cand, 0,
                             euclid)
            for c2 in range(c + 1, nb):
                if xs[c2 * s] - xi >= t:
                    break
                a = c2 * s
                e = min(a + s, n)
                q = _lower_bound(cy, a, e, yi)
                count = _collect(cy, cx, a, e, q, q - 1, xi, yi, t, cand, count, euclid)
            for c2 in range(c - 1, -1, -1):
                if xi - xs[c2 * s + s - 1] >= t:
                    break
                a = c2 * s
                q = _lower_bound(cy, a, a + s, yi)
                count = _collect(cy, cx, a, a + s, q, q - 1, xi, yi, t, cand, count, euclid)
            if count >= k:
                break
            t *= 2.0
        kth = _select(cand, count, k - 1)
        prev = kth
        lg = math.log(kth)
        acc += lg
        if per_point:
            point_out[origin[p]] = lg
    out[0] = acc / n


@_jit
def batch_2d_kth(x: np.ndarray, y: np.ndarray, order_x: np.ndarray, order_y: np.ndarray,
                  sizes: np.ndarray, k: int, euclid: bool, out: np.ndarray,
                  point_out: np.ndarray) -> None:
    for row in range(x.shape[0]):
        _row_2d_kth(x[row], y[row], order_x[row], order_y[row], sizes[row], k, euclid, out[row],
                    point_out[row])
