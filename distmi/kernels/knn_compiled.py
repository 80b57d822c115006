"""Compiled (numba) KSG neighbour counts for many 1-D/1-D problems: the CPU fast path.

For a 2-D sample z_i = (x_i, y_i), KSG needs the max-norm distance to the k-th neighbour

    eps_i = k-th smallest of  max(|x_j - x_i|, |y_j - y_i|)  over j != i

and the marginal counts n_x(i), n_y(i) within it (Kraskov, Stoegbauer & Grassberger 2004,
Phys. Rev. E 69, 066138, eqs. 8-9). Per problem (one row), in O(n log n) plus about ten
distance evaluations per point:

1. **Columns.** Cut the x-sorted order into columns of ``s`` consecutive points, each column
   sorted by y (built in O(n) by dealing the points out in y-order).
2. **Search.** For point i in column c, keep the k smallest max-norm distances in a sorted
   buffer. Walk column c up and down in y-order from i, stopping in each direction once
   |dy| >= the current k-th distance (every later entry is farther in y). Then visit columns
   c+1, c+2, ... while their x-gap to x_i (smallest x of the column minus x_i) is below the
   current k-th distance, and likewise c-1, c-2, ...; in each, start at y_i and walk the same
   way. Every skipped point is provably at distance >= the k-th one, so eps_i is exact; ties
   are resolved by value, so which tied point is "k-th" does not matter. Points are visited
   column by column in y-order, so y_i's position in columns c +- 1 only moves forward (two
   pointers); farther columns use a binary search.
3. **Counts** by binary search in the x- and y-sorted values of the whole row, with the tie
   rule of :mod:`distmi.kernels.knn` (``shrink`` / ``grow`` with ``TIE_RTOL``) in the same float64
   operations as :func:`distmi.kernels.knn.count_sorted`, so every backend counts alike.

Algorithm 2 needs eps_x(i) = max |x_j - x_i| and eps_y(i) over the neighbours of i: a second
pass over the same columns takes the maxima over all j with distance <= eps_i (ties included).

Column size: a column of s points spans about s / (n p_x) in x, and the x-strip |dx| < eps
holds about A = sqrt(n k) (1 - r^2)^(1/4) points (r: the row's Pearson correlation, which
concentrates the joint density). A point visits ~ 1 + A/s columns at a binary search (~log s)
plus ~ s k / A candidates each; s ~ 1.5 A balances the two terms.

Speed on these CPUs comes from avoiding mispredicted branches: searches compare through the
sign bit (:func:`_less`), interleave their four chains of loads (:func:`_interval_counts`), and
the k-buffer insert is a min/max pass. ``benchmarks/bench_sliced.py`` (n = 3000, k = 3, one
thread): ~0.4 us per point for the whole sliced call, against ~7 us per point for scikit-learn's
per-slice loop (BENCHMARKS.md).

Rows are independent and take nothing from the batch, so a row's counts are the same alone
or in any batch. The functions release the GIL (numba ``nogil``) so callers can run blocks of
rows on threads. Numba compiles on first use (a few seconds; cached on disk when the package
directory is writable).
"""

from __future__ import annotations

import math

import numpy as np

from distmi.kernels.knn import TIE_RTOL
from distmi.kernels.knn_grid import row_correlations

try:  # numba is a dependency; the numpy grid backend covers installs without it
    import numba

    HAVE_NUMBA = True
    _jit = numba.njit(nogil=True, cache=True)
except ImportError:  # pragma: no cover - exercised only on installs without numba
    HAVE_NUMBA = False

    def _jit(func):
        return func


@_jit
def _less(a: float, v: float) -> int:
    """1 if a < v else 0, without a branch.

    For finite operands a - v is negative exactly when a < v, except that -0.0 - 0.0 = -0.0;
    adding +0.0 turns that into +0.0 (IEEE round-to-nearest) and leaves every other value as it
    is. LLVM turns comparisons in search loops into unpredictable branches; the sign bit keeps
    the search a chain of arithmetic.
    """
    return np.int64(np.signbit((a - v) + 0.0))


@_jit
def _less_equal(a: float, v: float) -> int:
    """1 if a <= v else 0, without a branch (v - a + 0.0 is non-negative exactly then)."""
    return 1 - np.int64(np.signbit((v - a) + 0.0))


@_jit
def _below(a: float, v: float, inclusive: int) -> int:
    """``_less_equal(a, v)`` if ``inclusive`` else ``_less(a, v)``, as arithmetic (no branch)."""
    strict = _less(a, v)
    return strict + inclusive * (_less_equal(a, v) - strict)


@_jit
def deal_columns(x: np.ndarray, y: np.ndarray, order_x: np.ndarray, order_y: np.ndarray,
                 s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Column layout of a 2-D sample of n points: column c holds x-ranks [c s, c s + s), each
    column sorted by y, built by dealing the points out in y-order (no per-column sort).

    Args:
        x, y: (n,) coordinates; order_x, order_y: their argsorts; s: points per column.
    Returns:
        cy, cx (n,): the coordinates in column layout; origin (n,): the point at each place;
        rank_x (n,): each point's x-rank.
    """
    n = x.size
    rank_x = np.empty(n, dtype=np.int64)
    for t in range(n):
        rank_x[order_x[t]] = t
    fill = np.arange((n + s - 1) // s) * s
    cy = np.empty(n)
    cx = np.empty(n)
    origin = np.empty(n, dtype=np.int64)
    for t in range(n):
        j = order_y[t]
        c = rank_x[j] // s
        q = fill[c]
        fill[c] = q + 1
        cy[q] = y[j]
        cx[q] = x[j]
        origin[q] = j
    return cy, cx, origin, rank_x


@_jit
def _lower_bound(a: np.ndarray, lo: int, hi: int, v: float) -> int:
    """First index in [lo, hi) with a[index] >= v (hi if none); a ascending, branch-free."""
    size = hi - lo
    if size <= 0:
        return lo
    while size > 1:
        half = size >> 1
        lo += half & -_less(a[lo + half], v)
        size -= half
    return lo + _less(a[lo], v)


@_jit
def _interval_counts(xs: np.ndarray, ys: np.ndarray, xi: float, rx: float, yi: float,
                     ry: float, closed: bool) -> tuple[int, int]:
    """#{j : x_j in (xi - rx, xi + rx)} and the same in y (closed intervals if ``closed``),
    xs and ys ascending of equal length; the centre itself is counted when inside.

    The four binary searches run interleaved in one loop: each is a chain of dependent loads,
    so interleaving lets the processor overlap them (about 4x faster than one after another).
    """
    n = xs.size
    hi_incl = 1 if closed else 0  # closed: #(a <= hi) - #(a < lo); open: #(a < hi) - #(a <= lo)
    lo_incl = 1 - hi_incl
    x_hi = x_lo = y_hi = y_lo = 0  # number of entries below each bound
    v1 = xi + rx
    v2 = xi - rx
    v3 = yi + ry
    v4 = yi - ry
    size = n
    while size > 1:
        half = size >> 1
        x_hi += half & -_below(xs[x_hi + half], v1, hi_incl)
        x_lo += half & -_below(xs[x_lo + half], v2, lo_incl)
        y_hi += half & -_below(ys[y_hi + half], v3, hi_incl)
        y_lo += half & -_below(ys[y_lo + half], v4, lo_incl)
        size -= half
    x_hi += _below(xs[x_hi], v1, hi_incl)
    x_lo += _below(xs[x_lo], v2, lo_incl)
    y_hi += _below(ys[y_hi], v3, hi_incl)
    y_lo += _below(ys[y_lo], v4, lo_incl)
    return x_hi - x_lo, y_hi - y_lo


@_jit
def _insert(buf: np.ndarray, dist: float) -> None:
    """Insert ``dist`` into the ascending buffer of the k smallest distances (the largest falls
    out). A min/max pass with no data-dependent branch: whether a candidate enters, and where,
    is unpredictable, and mispredicted branches would cost more than the k min/max pairs."""
    t = dist
    for j in range(buf.size):
        b = buf[j]
        buf[j] = b if b < t else t
        t = t if b < t else b


@_jit
def _walk(cy: np.ndarray, cx: np.ndarray, a: int, e: int, up: int, down: int, xi: float,
          yi: float, buf: np.ndarray) -> None:
    """Offer entries of the y-sorted column [a, e) to ``buf``: upwards from ``up`` and downwards
    from ``down`` (inclusive), each direction stopping once |dy| >= the current k-th distance."""
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
def _marginal_walk(cy: np.ndarray, cx: np.ndarray, a: int, e: int, skip: int, xi: float,
                   yi: float, eps: float, radii: np.ndarray) -> None:
    """KSG-2: raise radii = (max |dx|, max |dy|) over column entries within max-norm ``eps``."""
    start = _lower_bound(cy, a, e, yi - eps)
    while start > a and yi - cy[start - 1] <= eps:  # yi - eps is rounded: step back to ties
        start -= 1
    for q in range(start, e):
        if cy[q] - yi > eps:
            break
        if q == skip:
            continue
        dx = abs(cx[q] - xi)
        dy = abs(cy[q] - yi)
        if dx <= eps and dy <= eps:
            if dx > radii[0]:
                radii[0] = dx
            if dy > radii[1]:
                radii[1] = dy


@_jit
def _row_counts(x: np.ndarray, y: np.ndarray, order_x: np.ndarray, order_y: np.ndarray, k: int,
                algorithm: int, s: int, n_x: np.ndarray, n_y: np.ndarray) -> None:
    """Counts of one problem (see module docstring); outputs in x-sorted order.

    ``order_x`` / ``order_y`` are the row's argsorts (numpy's vectorised sort is faster than a
    compiled one, so the caller sorts the whole batch).
    """
    n = x.size
    rtol = TIE_RTOL
    xs = x[order_x]
    ysorted = y[order_y]
    nb = (n + s - 1) // s
    cy, cx, origin, rank_x = deal_columns(x, y, order_x, order_y, s)
    rank_of = rank_x[origin]  # place in the column layout -> x-rank
    buf = np.empty(k)
    radii = np.zeros(2)
    up_ptr = 0
    down_ptr = 0
    # Points are visited column by column in y-order, so the position of y_i in the adjacent
    # columns only moves forward: two pointers replace their binary searches.
    for p in range(n):
        c = p // s
        if p == c * s:
            up_ptr = (c + 1) * s
            down_ptr = (c - 1) * s
        i = rank_of[p]
        xi = cx[p]
        yi = cy[p]
        buf[:] = np.inf
        _walk(cy, cx, c * s, min(c * s + s, n), p + 1, p - 1, xi, yi, buf)
        if c + 1 < nb:
            e = min(c * s + 2 * s, n)
            while up_ptr < e and cy[up_ptr] < yi:
                up_ptr += 1
            if xs[(c + 1) * s] - xi < buf[k - 1]:
                _walk(cy, cx, (c + 1) * s, e, up_ptr, up_ptr - 1, xi, yi, buf)
                for c2 in range(c + 2, nb):
                    if xs[c2 * s] - xi >= buf[k - 1]:
                        break
                    a = c2 * s
                    e = min(a + s, n)
                    q = _lower_bound(cy, a, e, yi)
                    _walk(cy, cx, a, e, q, q - 1, xi, yi, buf)
        if c > 0:
            e = c * s
            while down_ptr < e and cy[down_ptr] < yi:
                down_ptr += 1
            if xi - xs[c * s - 1] < buf[k - 1]:
                _walk(cy, cx, e - s, e, down_ptr, down_ptr - 1, xi, yi, buf)
                for c2 in range(c - 2, -1, -1):
                    if xi - xs[c2 * s + s - 1] >= buf[k - 1]:
                        break
                    a = c2 * s
                    e = a + s
                    q = _lower_bound(cy, a, e, yi)
                    _walk(cy, cx, a, e, q, q - 1, xi, yi, buf)
        eps = buf[k - 1]
        if algorithm == 1:
            rx = eps - rtol * (abs(xi) + eps)
            ry = eps - rtol * (abs(yi) + eps)
            cnt_x, cnt_y = _interval_counts(xs, ysorted, xi, rx, yi, ry, False)
            cnt_x -= 1 if rx > 0 else 0  # the open interval holds x_i itself when rx > 0
            cnt_y -= 1 if ry > 0 else 0
            n_x[i] = cnt_x if cnt_x > 0 else 0
            n_y[i] = cnt_y if cnt_y > 0 else 0
        else:
            radii[:] = 0.0
            for c2 in range(c, nb):
                if c2 > c and xs[c2 * s] - xi > eps:
                    break
                _marginal_walk(cy, cx, c2 * s, min(c2 * s + s, n), p, xi, yi, eps, radii)
            for c2 in range(c - 1, -1, -1):
                if xi - xs[c2 * s + s - 1] > eps:
                    break
                _marginal_walk(cy, cx, c2 * s, c2 * s + s, p, xi, yi, eps, radii)
            rx = radii[0] + rtol * (abs(xi) + radii[0])
            ry = radii[1] + rtol * (abs(yi) + radii[1])
            cnt_x, cnt_y = _interval_counts(xs, ysorted, xi, rx, yi, ry, True)
            n_x[i] = cnt_x - 1
            n_y[i] = cnt_y - 1


@_jit
def _batch_counts(x: np.ndarray, y: np.ndarray, order_x: np.ndarray, order_y: np.ndarray,
                  k: int, algorithm: int, sizes: np.ndarray, n_x: np.ndarray,
                  n_y: np.ndarray) -> None:
    for row in range(x.shape[0]):
        _row_counts(x[row], y[row], order_x[row], order_y[row], k, algorithm, sizes[row],
                    n_x[row], n_y[row])


def column_sizes(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Column size per row, ~1.5 sqrt(n k) (1 - r^2)^(1/4) (see module docstring), (B,) int64."""
    n = x.shape[1]
    corr = row_correlations(x, y)
    shrink = np.maximum(1.0 - corr * corr, 1e-8) ** 0.25
    size = np.round(1.5 * math.sqrt(n * k) * shrink).astype(np.int64)
    return np.clip(size, 2 * k + 2, n)


def ksg_counts_1d(x: np.ndarray, y: np.ndarray, k: int, algorithm: int = 1,
                  column_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """KSG marginal counts of B independent 1-D/1-D problems.

    Args:
        x, y: (B, n) float64 samples (standardised, finite, 1 <= k < n).
        k: neighbours.
        algorithm: KSG algorithm 1 (strict counts within eps) or 2 (counts within eps_x, eps_y).
        column_size: points per column for every row (default: per row, from its correlation);
            changes speed only.
    Returns:
        (n_x, n_y), each (B, n) int64, per point in each row's x-sorted order.
    """
    if not HAVE_NUMBA:
        raise ImportError("the compiled KSG backend needs numba: pip install numba")
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    # the compiled code does no bounds checks: guard its preconditions here
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must be (B, n) arrays of one shape, got {x.shape}, {y.shape}")
    if not 1 <= k < x.shape[1]:
        raise ValueError(f"need 1 <= k < n, got k={k}, n={x.shape[1]}")
    if algorithm not in (1, 2):
        raise ValueError(f"algorithm must be 1 or 2, got {algorithm}")
    if column_size is None:
        sizes = column_sizes(x, y, k)
    else:
        sizes = np.full(x.shape[0], max(1, min(int(column_size), x.shape[1])), dtype=np.int64)
    n_x = np.empty(x.shape, dtype=np.int64)
    n_y = np.empty(x.shape, dtype=np.int64)
    order_x = np.argsort(x, axis=1)
    order_y = np.argsort(y, axis=1)
    _batch_counts(x, y, order_x, order_y, int(k), int(algorithm), sizes, n_x, n_y)
    return n_x, n_y
