"""Compiled (numba) nearest-neighbour distances for weighted Kozachenko-Leonenko entropies.

Both kernels return, per problem (row), the mean over points of log rho_(j),i for a few
neighbour orders j (the support of the WKL weights, :mod:`distmi.kernels.wkl`), never the
(n, k) distance matrix, so thousands of slices of 10^4 points fit in cache-sized memory.

**1-D** (:func:`mean_log_knn_1d_sorted`, rows sorted ascending). The j nearest others of x_i
together with x_i are j + 1 consecutive sorted points, a window [lo, lo + j] with
max(0, i - j) <= lo <= min(i, n - 1 - j), and rho_(j),i = min over lo of
max(x_i - x_lo, x_{lo+j} - x_i). The first term falls and the second rises with lo, so the
minimum sits where g(lo) = x_{lo+j} + x_lo first reaches 2 x_i (g is non-decreasing); that
place never moves back as i grows, so for j >= 4 one pointer sweeps each row per order (O(n);
at n = 10^4, 18 against 33 ns per point for j = 25 with the branch-free binary search of
log2(j) steps per point, which is kept for j < 4; `benchmarks/bench_wkl_kernels.py`).

**2-D** (:func:`mean_log_knn_2d_compiled`, z_i = (x_i, y_i), max-norm or Euclidean). The exact
column search of :mod:`distmi.kernels.knn_compiled`, written for the k nearest distances: cut
the x-sorted order into columns of s points, each column sorted by y; for point i walk its own
column up and down in y from i, stopping in each direction once |dy| reaches the current k-th
distance, then visit the columns to the right (left) while their x-gap to x_i is below it,
entering each at y_i. Every skipped point is provably no closer than the k-th, for both norms
(each is >= |dx| and >= |dy|), so the distances are exact. The buffer of the k smallest
distances is a sorted array with an early reject (a candidate farther than the k-th is
dropped with one comparison), which is what larger k (the 25 of information-plane work)
needs. Column size s ~ sqrt(n k) (1 - r^2)^(1/4) (r: the row's correlation), the fastest of
0.25-3 sqrt(n k) measured at n = 10^4, k = 3, 5, 25.

For a single order k >= 8 :mod:`distmi.kernels.wkl_select` drops the buffer (selection by
counting): at n = 10^4 it costs 0.26 / 0.27 / 0.36 us per point at k = 8 / 10 / 25 against the
buffer's 0.31 / 0.37 / 0.99 (`benchmarks/bench_wkl_kernels.py`); at k = 5 both cost 0.22.

Rows are independent; the functions release the GIL so blocks of rows can run on threads.
"""

from __future__ import annotations

import math

import numpy as np

from distmi.kernels.knn_compiled import HAVE_NUMBA, _jit, _less, _lower_bound, deal_columns
from distmi.kernels.knn_grid import row_correlations

SWEEP_J = 4  # 1-D orders at least this large find their windows by a sweep, not a search
SELECT_K = 8  # a single order at least this large uses distmi.kernels.wkl_select


@_jit
def _row_1d(xs: np.ndarray, orders: np.ndarray, weights: np.ndarray, out: np.ndarray,
            point_out: np.ndarray) -> None:
    """Mean log distances per order into ``out`` (J,); if ``point_out`` has n entries, each
    point's weighted sum sum_t weights[t] log rho_(orders[t]),i too (sorted order).

    The window start is found by a sweep rather than a search per point: with g(s) =
    x_{s+j} + x_s non-decreasing, the first s with g(s) >= 2 x_i never moves back as x_i
    grows, and neither do the admissible bounds max(0, i - j) and min(i, n - 1 - j); so one
    pointer crosses the row once per order (the clamp of that first s to the bounds is the
    start a binary search over the bounds would find). For j < SWEEP_J the binary search over
    the j + 1 admissible starts is cheaper and is kept.
    """
    n = xs.size
    per_point = point_out.size == n
    if per_point:
        point_out[:] = 0.0
    for t in range(orders.size):
        j = orders[t]
        wt = weights[t]
        acc = 0.0
        first = 0  # first s in [0, n - 1 - j] with x[s + j] + x[s] >= 2 x_i (n - j if none)
        for i in range(n):
            xi = xs[i]
            target = xi + xi
            lo = i - j if i - j > 0 else 0
            hi = n - 1 - j if n - 1 - j < i else i  # last admissible window start
            if j >= SWEEP_J:
                while first <= n - 1 - j and xs[first + j] + xs[first] < target:
                    first += 1
                start = first if first > lo else lo
                if start > hi + 1:
                    start = hi + 1
            else:  # a few candidates: a branch-free binary search over [lo, hi]
                start = lo
                size = hi - lo + 1
                while size > 1:
                    half = size >> 1
                    mid = start + half
                    start += half & -_less(xs[mid + j] + xs[mid], target)
                    size -= half
                start += _less(xs[start + j] + xs[start], target)
            best = np.inf
            if start <= hi:
                best = xs[start + j] - xi
            if start - 1 >= 0 and start - 1 >= i - j:
                left = xi - xs[start - 1]
                if left < best:
                    best = left
            lg = math.log(best)
            acc += lg
            if per_point:
                point_out[i] += wt * lg
        out[t] = acc / n


@_jit
def _batch_1d(xs: np.ndarray, orders: np.ndarray, weights: np.ndarray, out: np.ndarray,
              point_out: np.ndarray) -> None:
    for row in range(xs.shape[0]):
        _row_1d(xs[row], orders, weights, out[row], point_out[row])


def mean_log_knn_1d_sorted(xs: np.ndarray, orders: np.ndarray, weights: np.ndarray | None = None
                           ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Mean log j-th neighbour distance of B sorted 1-D samples.

    Args:
        xs: (B, n) float64, each row ascending. orders: (J,) int64 in [1, n - 1].
        weights: (J,) if given, also return each point's sum_t w_t log rho_(orders[t]),i.
    Returns:
        (B, J); -inf where a point has j exact duplicates. With ``weights``: that and the
        per-point sums (B, n) in each row's sorted order.
    """
    xs = np.ascontiguousarray(xs, dtype=np.float64)
    orders = np.ascontiguousarray(orders, dtype=np.int64)
    if xs.ndim != 2 or orders.ndim != 1 or orders.min() < 1 or orders.max() >= xs.shape[1]:
        raise ValueError(f"need xs (B, n) and 1 <= orders < n, got {xs.shape}, {orders}")
    out = np.empty((xs.shape[0], orders.size))
    w = np.zeros(orders.size) if weights is None else np.ascontiguousarray(weights, np.float64)
    points = np.empty((xs.shape[0], xs.shape[1] if weights is not None else 0))
    _batch_1d(xs, orders, w, out, points)
    return out if weights is None else (out, points)


@_jit
def _offer(buf: np.ndarray, dist: float) -> None:
    """Insert ``dist`` into the ascending buffer of the k smallest distances if it belongs."""
    k1 = buf.size - 1
    if dist < buf[k1]:
        j = k1
        while j > 0 and buf[j - 1] > dist:
            buf[j] = buf[j - 1]
            j -= 1
        buf[j] = dist


@_jit
def _walk(cy: np.ndarray, cx: np.ndarray, a: int, e: int, up: int, down: int, xi: float,
          yi: float, buf: np.ndarray, euclid: bool) -> None:
    """Offer entries of the y-sorted column [a, e): upwards from ``up``, downwards from ``down``,
    each direction stopping once |dy| >= the current k-th distance."""
    k1 = buf.size - 1
    for q in range(up, e):
        dy = cy[q] - yi
        if dy >= buf[k1]:
            break
        dx = abs(cx[q] - xi)
        _offer(buf, math.sqrt(dx * dx + dy * dy) if euclid else (dx if dx > dy else dy))
    for q in range(down, a - 1, -1):
        dy = yi - cy[q]
        if dy >= buf[k1]:
            break
        dx = abs(cx[q] - xi)
        _offer(buf, math.sqrt(dx * dx + dy * dy) if euclid else (dx if dx > dy else dy))


@_jit
def _row_2d(x: np.ndarray, y: np.ndarray, order_x: np.ndarray, order_y: np.ndarray, s: int,
            orders: np.ndarray, weights: np.ndarray, euclid: bool, out: np.ndarray,
            point_out: np.ndarray) -> None:
    """Mean log distances per order into ``out`` (J,); if ``point_out`` has n entries, each
    point's sum_t weights[t] log rho_(orders[t]),i too (original point order)."""
    n = x.size
    per_point = point_out.size == n
    k = orders[orders.size - 1]
    k1 = k - 1
    xs = x[order_x]
    nb = (n + s - 1) // s
    cy, cx, origin, _ = deal_columns(x, y, order_x, order_y, s)  # columns, each y-sorted
    buf = np.empty(k)
    acc = np.zeros(orders.size)
    up_ptr = 0
    down_ptr = 0
    for p in range(n):
        c = p // s
        if p == c * s:
            up_ptr = (c + 1) * s
            down_ptr = (c - 1) * s
        xi = cx[p]
        yi = cy[p]
        buf[:] = np.inf
        _walk(cy, cx, c * s, min(c * s + s, n), p + 1, p - 1, xi, yi, buf, euclid)
        if c + 1 < nb:
            e = min(c * s + 2 * s, n)
            while up_ptr < e and cy[up_ptr] < yi:  # y_i's place in column c + 1 only grows
                up_ptr += 1
            if xs[(c + 1) * s] - xi < buf[k1]:
                _walk(cy, cx, (c + 1) * s, e, up_ptr, up_ptr - 1, xi, yi, buf, euclid)
                for c2 in range(c + 2, nb):
                    if xs[c2 * s] - xi >= buf[k1]:
                        break
                    a = c2 * s
                    e2 = min(a + s, n)
                    q = _lower_bound(cy, a, e2, yi)
                    _walk(cy, cx, a, e2, q, q - 1, xi, yi, buf, euclid)
        if c > 0:
            e = c * s
            while down_ptr < e and cy[down_ptr] < yi:
                down_ptr += 1
            if xi - xs[c * s - 1] < buf[k1]:
                _walk(cy, cx, e - s, e, down_ptr, down_ptr - 1, xi, yi, buf, euclid)
                for c2 in range(c - 2, -1, -1):
                    if xi - xs[c2 * s + s - 1] >= buf[k1]:
                        break
                    a = c2 * s
                    q = _lower_bound(cy, a, a + s, yi)
                    _walk(cy, cx, a, a + s, q, q - 1, xi, yi, buf, euclid)
        total = 0.0
        for t in range(orders.size):
            lg = math.log(buf[orders[t] - 1])
            acc[t] += lg
            total += weights[t] * lg
        if per_point:
            point_out[origin[p]] = total
    for t in range(orders.size):
        out[t] = acc[t] / n


@_jit
def _batch_2d(x: np.ndarray, y: np.ndarray, order_x: np.ndarray, order_y: np.ndarray,
              sizes: np.ndarray, orders: np.ndarray, weights: np.ndarray, euclid: bool,
              out: np.ndarray, point_out: np.ndarray) -> None:
    for row in range(x.shape[0]):
        _row_2d(x[row], y[row], order_x[row], order_y[row], sizes[row], orders, weights, euclid,
                out[row], point_out[row])


def column_sizes(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Points per column for each row: ~sqrt(n k) (1 - r^2)^(1/4), clipped to [2k + 2, n]."""
    n = x.shape[1]
    r = row_correlations(x, y)
    shrink = np.maximum(1.0 - r * r, 1e-8) ** 0.25
    return np.clip(np.round(math.sqrt(n * k) * shrink), 2 * k + 2, n).astype(np.int64)


def mean_log_knn_2d_compiled(x: np.ndarray, y: np.ndarray, orders: np.ndarray,
                             euclid: bool = False, order_x: np.ndarray | None = None,
                             order_y: np.ndarray | None = None,
                             weights: np.ndarray | None = None
                             ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Mean log j-th neighbour distance of B 2-D samples (x_i, y_i).

    Args:
        x, y: (B, n) float64 finite. orders: (J,) int64 ascending in [1, n - 1].
        euclid: Euclidean instead of max-norm distances.
        order_x, order_y: the rows' argsorts if known (B, n) int64.
        weights: (J,) if given, also return each point's sum_t w_t log rho_(orders[t]),i.
    Returns:
        (B, J); with ``weights`` also the per-point sums (B, n) in the rows' original order.
    """
    if not HAVE_NUMBA:
        raise ImportError("the compiled WKL backend needs numba: pip install numba")
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    orders = np.ascontiguousarray(orders, dtype=np.int64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must be (B, n) arrays of one shape, got {x.shape}, {y.shape}")
    if orders.ndim != 1 or orders.min() < 1 or orders.max() >= x.shape[1]:
        raise ValueError(f"need 1 <= orders < n = {x.shape[1]}, got {orders}")
    if np.any(np.diff(orders) <= 0):
        raise ValueError(f"orders must be strictly ascending, got {orders}")
    ox = np.argsort(x, axis=1) if order_x is None else np.ascontiguousarray(order_x, np.int64)
    oy = np.argsort(y, axis=1) if order_y is None else np.ascontiguousarray(order_y, np.int64)
    sizes = column_sizes(x, y, int(orders[-1]))
    out = np.empty((x.shape[0], orders.size))
    w = np.zeros(orders.size) if weights is None else np.ascontiguousarray(weights, np.float64)
    points = np.empty((x.shape[0], x.shape[1] if weights is not None else 0))
    if orders.size == 1 and orders[0] >= SELECT_K:  # one large order: selection, no buffer
        from distmi.kernels.wkl_select import batch_2d_kth

        batch_2d_kth(x, y, ox, oy, sizes, int(orders[0]), bool(euclid), out, points)
        if weights is not None:
            points *= w[0]
    else:
        _batch_2d(x, y, ox, oy, sizes, orders, w, bool(euclid), out, points)
    return out if weights is None else (out, points)
