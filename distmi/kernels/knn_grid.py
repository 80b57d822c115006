"""Exact max-norm k-nearest-neighbour radii for many 1-D/1-D problems at once (numpy, CPU).

KSG on a random slice, or on one (neuron, target) pair, needs for every point i of a 2-D sample
z_i = (x_i, y_i) the max-norm distance to its k-th nearest neighbour

    eps_i = k-th smallest of  max(|x_j - x_i|, |y_j - y_i|)  over j != i

(Kraskov, Stoegbauer & Grassberger 2004, Phys. Rev. E 69, 066138, section II). A k-d tree per
problem costs a Python call and a tree per slice; here B problems are solved by a fixed sequence
of whole-array numpy operations:

1. **Columns.** Sort each problem by x and cut the order into columns of ``s`` points. Adjacent
   columns l, l+1 are merged into a *list* sorted by y. Every point lies in two lists: as the
   *left* member of (b, b+1) and as the *right* member of (b-1, b).
2. **Windows.** In a list, the points nearest in y are neighbours in list order, so candidate
   pairs are the list entries ``o = 1..c`` positions apart: contiguous shifted views, no gathers.
   A pair of two right-column points is masked (the same pair is seen in the next list), so every
   point sees each candidate once. A running sorted buffer keeps the k smallest distances.
3. **Certificate.** A point outside the candidate set either lies in a list window's complement
   (|dy| >= the y-gap to the first entry outside the window), or in column b-1 outside the window
   (|dy| >= that gap and |dx| >= the x-gap to column b-1), or in a column at least two away
   (|dx| >= the x-gap to columns b-2 / b+2). If the candidate k-th distance is within all these
   bounds it is exact; otherwise it is still an upper bound ``eps_hat``.
4. **Fallback.** Uncertified points are solved exactly by brute force over the x-strip
   |x_j - x_i| <= eps_hat or the y-strip |y_j - y_i| <= eps_hat (the shorter), which must contain
   the true neighbours.

Every result is exact (tested against brute force); batching only changes speed. The column size
follows the slice's correlation r: s ~ sqrt(n (c + 1) / 2) (1 - r^2)^(1/4), which keeps the
window and column bounds balanced when the joint density concentrates.

With ``marginal_radii`` the KSG algorithm-2 radii are returned too:
eps_x(i) = max |x_j - x_i| and eps_y(i) = max |y_j - y_i| over the k neighbours j of i.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BIG = 1e300  # sentinel coordinate: farther than any standardised sample, finite (no inf - inf)


@dataclass
class GridRadii:
    """Neighbour radii of B problems, all arrays (B, n) in each problem's x-sorted order.

    Attributes:
        xs: x sorted ascending.
        ys: y of the same points.
        eps: max-norm distance to the k-th nearest neighbour.
        eps_x, eps_y: KSG-2 marginal radii (``None`` unless requested).
        n_fallback: points that needed the exact strip search.
    """

    xs: np.ndarray
    ys: np.ndarray
    eps: np.ndarray
    eps_x: np.ndarray | None
    eps_y: np.ndarray | None
    n_fallback: int


def _insert(buf: list[np.ndarray], v: np.ndarray) -> None:
    """Insert candidates ``v`` into sorted buffers ``buf[0] <= ... <= buf[k-1]`` (k smallest)."""
    t = v
    for j in range(len(buf) - 1):
        low = np.minimum(buf[j], t)
        t = np.maximum(buf[j], t)
        buf[j] = low
    np.minimum(buf[-1], t, out=buf[-1])


def _pair_distances(
    pad_x: np.ndarray, pad_y: np.ndarray, pad_r: np.ndarray, o: int
) -> np.ndarray:
    """max(|dx|, |dy|) of list entries o apart; BIG for pairs of two right-column entries.

    Shapes: inputs (..., L), output (..., L - o); element q is the pair (q, q + o).
    """
    dist = np.subtract(pad_y[..., o:], pad_y[..., :-o])
    np.abs(dist, out=dist)
    tmp = np.subtract(pad_x[..., o:], pad_x[..., :-o])
    np.abs(tmp, out=tmp)
    np.maximum(dist, tmp, out=dist)
    np.minimum(pad_r[..., o:], pad_r[..., :-o], out=tmp)  # right-right pairs: next list
    np.maximum(dist, tmp, out=dist)
    return dist


def row_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair, (B, n) x2 -> (B,) (0 for a constant row)."""
    xc = x - x.mean(1, keepdims=True)
    yc = y - y.mean(1, keepdims=True)
    return (xc * yc).sum(1) / np.sqrt((xc * xc).sum(1) * (yc * yc).sum(1) + 1e-300)


def choose_column_size(n: int, corr: float, window: int) -> int:
    """Column size s for n points with Pearson correlation ``corr`` (see module docstring)."""
    s = math.sqrt(0.5 * n * (window + 1)) * (max(1.0 - corr * corr, 1e-8)) ** 0.25
    return int(min(max(round(s), 2 * window + 2, 8), max(n, 8)))


def _column_pass(
    xs: np.ndarray, ys: np.ndarray, k: int, s: int, c: int, marginal: bool
) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """Candidate k-th distances and their certificates for (B, n) x-sorted problems.

    Returns:
        eps_hat: (B, n) k-th smallest candidate distance (an upper bound of the true one).
        bound: (B, n) distance below which no non-candidate point can lie.
        lists: the list layout, kept for the KSG-2 pass (``None`` unless ``marginal``).
    """
    b, n = xs.shape
    nb = -(-n // s)
    ncol = nb + 2  # a sentinel column on each side
    cols_x = np.full((b, ncol * s), BIG)
    cols_y = np.full((b, ncol * s), BIG)
    cols_x[:, :s] = -BIG
    cols_x[:, s : s + n] = xs
    cols_y[:, s : s + n] = ys
    cols_x = cols_x.reshape(b, ncol, s)
    cols_y = cols_y.reshape(b, ncol, s)

    # Lists l = 0..nb merge columns (l, l+1); sort each by y.  shape (b, nb+1, 2s)
    list_y = np.concatenate([cols_y[:, :-1], cols_y[:, 1:]], axis=2)
    perm = np.argsort(list_y, axis=2)
    list_y = np.take_along_axis(list_y, perm, 2)
    list_x = np.take_along_axis(np.concatenate([cols_x[:, :-1], cols_x[:, 1:]], axis=2), perm, 2)
    right = perm >= s  # entry comes from the right column of its list
    p, w = c + 1, 2 * s
    pad_y = np.empty((b, nb + 1, w + 2 * p))
    pad_y[..., :p] = -BIG
    pad_y[..., p : p + w] = list_y
    pad_y[..., p + w :] = BIG
    pad_x = np.zeros_like(pad_y)
    pad_x[..., p : p + w] = list_x
    pad_r = np.full(pad_y.shape, BIG)  # BIG on right-column entries and padding, else 0
    pad_r[..., p : p + w] = np.where(right, BIG, 0.0)

    buf = [np.full((b, nb + 1, w), BIG) for _ in range(k)]
    for o in range(1, c + 1):
        dist = _pair_distances(pad_x, pad_y, pad_r, o)
        _insert(buf, dist[..., p : p + w])  # partner o positions above
        _insert(buf, dist[..., p - o : p - o + w])  # partner o positions below
    centre = pad_y[..., p : p + w]
    gap = np.minimum(centre - pad_y[..., : w], pad_y[..., 2 * p : 2 * p + w] - centre)

    # Back to points: slot q < s of list l is column l's q-th point (left role), slot s + q is
    # column l+1's q-th point (right role).  inv[slot] = sorted position of that slot.
    inv = np.empty_like(perm)
    np.put_along_axis(inv, perm, np.arange(w)[None, None, :], axis=2)
    left_pos = inv[:, 1 : nb + 1, :s]  # real columns 1..nb as left members of lists 1..nb
    right_pos = inv[:, 0:nb, s:]  # real columns 1..nb as right members of lists 0..nb-1

    def to_points(arr: np.ndarray, pos: np.ndarray, lists: slice) -> np.ndarray:
        return np.take_along_axis(arr[:, lists], pos, 2).reshape(b, nb * s)[:, :n]

    left = [to_points(v, left_pos, slice(1, nb + 1)) for v in buf]
    for v in buf:
        _insert(left, to_points(v, right_pos, slice(0, nb)))
    eps_hat = left[-1]

    gap_left = to_points(gap, left_pos, slice(1, nb + 1))
    gap_right = to_points(gap, right_pos, slice(0, nb))
    first = cols_x[:, :, 0]  # (b, ncol) smallest x of each column
    last = cols_x[:, :, s - 1]
    col = np.arange(n) // s + 1  # padded column of each point
    two_before = np.where(col >= 2, last[:, np.maximum(col - 2, 0)], -BIG)
    two_after = np.where(col + 2 <= nb + 1, first[:, np.minimum(col + 2, nb + 1)], BIG)
    outer = np.minimum(xs - two_before, two_after - xs)
    bound = np.minimum(gap_left, np.maximum(gap_right, xs - last[:, col - 1]))
    np.minimum(bound, outer, out=bound)
    lists = None
    if marginal:
        lists = dict(pad_x=pad_x, pad_y=pad_y, pad_r=pad_r, perm=perm, left_pos=left_pos,
                     right_pos=right_pos, nb=nb, s=s, c=c)
    return eps_hat, bound, lists


def _marginal_from_lists(lists: dict, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KSG-2 radii from the candidate windows: max |dx|, |dy| over candidates within eps."""
    pad_x, pad_y, pad_r, perm = lists["pad_x"], lists["pad_y"], lists["pad_r"], lists["perm"]
    nb, s, c = lists["nb"], lists["s"], lists["c"]
    b, n = eps.shape
    p, w = c + 1, 2 * s
    # eps of every list entry (sentinel/padding entries get -1: they accept nothing)
    eps_cols = np.full((b, (nb + 2) * s), -1.0)
    eps_cols[:, s : s + n] = eps
    eps_cols = eps_cols.reshape(b, nb + 2, s)
    eps_list = np.take_along_axis(np.concatenate([eps_cols[:, :-1], eps_cols[:, 1:]], 2), perm, 2)
    eps_pad = np.full(pad_y.shape, -1.0)
    eps_pad[..., p : p + w] = eps_list
    ex = np.zeros(pad_y.shape)
    ey = np.zeros(pad_y.shape)
    for o in range(1, c + 1):
        dx = np.abs(pad_x[..., o:] - pad_x[..., :-o])
        dy = np.abs(pad_y[..., o:] - pad_y[..., :-o])
        dist = _pair_distances(pad_x, pad_y, pad_r, o)
        for lo in (slice(None, -o), slice(o, None)):
            # the lower / upper entry of each pair accepts its partner if within its own eps
            take = dist <= eps_pad[..., lo]
            np.maximum(ex[..., lo], np.where(take, dx, 0.0), out=ex[..., lo])
            np.maximum(ey[..., lo], np.where(take, dy, 0.0), out=ey[..., lo])
    out = []
    for arr in (ex, ey):
        centre = arr[..., p : p + w]
        a = np.take_along_axis(centre[:, 1 : nb + 1], lists["left_pos"], 2)
        r = np.take_along_axis(centre[:, 0:nb], lists["right_pos"], 2)
        out.append(np.maximum(a, r).reshape(b, nb * s)[:, :n])
    return out[0], out[1]


def _strip_fallback(
    xs: np.ndarray,
    ys: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    eps_hat: np.ndarray,
    k: int,
    marginal: bool,
    max_elements: int,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Exact radii of the points (rows, cols) by brute force over their shorter strip.

    The true k-th neighbour lies within ``eps_hat`` (an upper bound) in both coordinates, so the
    x-strip |x_j - x_i| <= eps_hat and the y-strip both contain it.
    """
    m = rows.size
    n = xs.shape[1]
    eps = np.empty(m)
    ex = np.empty(m) if marginal else None
    ey = np.empty(m) if marginal else None
    x0 = xs[rows, cols]
    y0 = ys[rows, cols]
    urows, rank = np.unique(rows, return_inverse=True)
    oy = np.argsort(ys[urows], axis=1)
    ys_sorted = np.take_along_axis(ys[urows], oy, 1)  # (u, n)
    xs_by_y = np.take_along_axis(xs[urows], oy, 1)
    lo_x, hi_x, lo_y, hi_y = (np.empty(m, dtype=np.int64) for _ in range(4))
    # widen by a few ulps: x0 - eps_hat is rounded, and the neighbour defining eps_hat sits
    # exactly on the strip's edge.  A wider strip only adds candidates.
    rx = eps_hat + 1e-12 * (np.abs(x0) + eps_hat)
    ry = eps_hat + 1e-12 * (np.abs(y0) + eps_hat)
    for u, r in enumerate(urows):
        sel = rank == u
        lo_x[sel] = np.searchsorted(xs[r], x0[sel] - rx[sel], "left")
        hi_x[sel] = np.searchsorted(xs[r], x0[sel] + rx[sel], "right")
        lo_y[sel] = np.searchsorted(ys_sorted[u], y0[sel] - ry[sel], "left")
        hi_y[sel] = np.searchsorted(ys_sorted[u], y0[sel] + ry[sel], "right")
    use_y = (hi_y - lo_y) < (hi_x - lo_x)
    length = np.where(use_y, hi_y - lo_y, hi_x - lo_x)
    flat_x = np.concatenate([xs.ravel(), xs_by_y.ravel()])
    flat_y = np.concatenate([ys.ravel(), ys_sorted.ravel()])
    base = np.where(use_y, xs.size + rank * n + lo_y, rows * n + lo_x)
    order = np.argsort(length, kind="stable")
    start = 0
    while start < m:  # blocks of similar strip length, at most max_elements each
        count = max(1, max_elements // max(int(length[order[start]]), k + 1))
        width = max(int(length[order[min(start + count, m) - 1]]), k + 1)
        count = max(1, min(count, max_elements // width))
        idx = order[start : start + count]
        width = max(int(length[idx].max()), k + 1)
        offs = np.arange(width)
        valid = offs[None, :] < length[idx, None]
        gather = base[idx, None] + offs[None, :]  # past a strip's end: masked below
        dx = np.take(flat_x, gather, mode="clip")
        dx -= x0[idx, None]
        np.abs(dx, out=dx)
        dy = np.take(flat_y, gather, mode="clip")
        dy -= y0[idx, None]
        np.abs(dy, out=dy)
        dist = np.maximum(dx, dy)
        dist[~valid] = BIG
        if marginal:
            part = np.argpartition(dist, k, axis=1)[:, : k + 1]  # self (distance 0) included
            eps[idx] = np.take_along_axis(dist, part, 1).max(axis=1)
            ex[idx] = np.take_along_axis(dx, part, 1).max(axis=1)
            ey[idx] = np.take_along_axis(dy, part, 1).max(axis=1)
        else:
            eps[idx] = np.partition(dist, k, axis=1)[:, k]
        start += idx.size
    return eps, ex, ey


def grid_knn_1d(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    *,
    marginal_radii: bool = False,
    window: int = 5,
    column_size: int | None = None,
    max_elements: int = 1 << 20,
) -> GridRadii:
    """Max-norm k-th neighbour radii of B independent 2-D samples.

    Args:
        x, y: (B, n) float64 coordinates (standardised; finite).
        k: neighbours, 1 <= k < n.
        marginal_radii: also return the KSG-2 radii ``eps_x``, ``eps_y``.
        window: list window half-width c (candidate pairs per point ~ 4c).
        column_size: points per column; default from the correlation of the batch.
        max_elements: bound on the elements of one fallback block (memory).
    Returns:
        :class:`GridRadii` with (B, n) arrays in x-sorted order.
    """
    n = x.shape[1]
    order = np.argsort(x, axis=1)
    xs = np.take_along_axis(x, order, 1)
    ys = np.take_along_axis(y, order, 1)
    if column_size is None:
        corr = row_correlations(xs, ys)
        column_size = choose_column_size(n, float(np.median(np.abs(corr))), window)
    eps, bound, lists = _column_pass(xs, ys, k, column_size, window, marginal_radii)
    eps_x = eps_y = None
    if marginal_radii:
        eps_x, eps_y = _marginal_from_lists(lists, eps)
    rows, cols = np.nonzero(eps > bound)
    if rows.size:
        fe, fx, fy = _strip_fallback(
            xs, ys, rows, cols, eps[rows, cols], k, marginal_radii, max_elements
        )
        eps[rows, cols] = fe
        if marginal_radii:
            eps_x[rows, cols] = fx
            eps_y[rows, cols] = fy
    return GridRadii(xs, ys, eps, eps_x, eps_y, int(rows.size))
