"""Rank statistics for screening many (x, y) pairs: copula KSG, Gaussian copula, Chatterjee's xi.

A screen tests H0: X independent of Y for every pair of a sweep. Every statistic here is a
function of the *ranks* of the sample only, so under H0 its distribution depends on the sample
size n, the neighbour count k and (for a categorical y) the class counts, never on the
marginal distributions: one table of permutation statistics serves every pair of that shape.

**Ranks.** Each variable is replaced by its ranks 0..n-1, ties broken at random
(:func:`rank_rows`). Ranks are a monotone map of the data plus an independent tie-break, so
they carry the same mutual information (I(F(X) + U P(X); Y) = I(X; Y) for the distributional
transform), and under H0 the pair of rank vectors is a uniformly random permutation pair.

**Copula KSG** (``"ksg"``, continuous y; nats). KSG algorithm 1 (Kraskov, Stoegbauer &
Grassberger 2004, Phys. Rev. E 69, 066138, eq. 8) on the rank sample z_i = (r_i, s_i):

    I = psi(k) + psi(n) - < psi(n_x(i) + 1) + psi(n_y(i) + 1) >.

The rank sample is a permutation matrix, so with eps_i the max-norm distance to the k-th
neighbour the marginal counts are closed form,
n_x(i) = min(r_i + eps_i - 1, n - 1) - max(r_i - eps_i + 1, 0) (self excluded), and only
eps_i needs a search (:mod:`distmi.kernels.copula_knn`). It detects non-monotone dependence
(y = x^2, |x|, periodic); its power for weak dependence grows with k.

**Copula Ross** (``"ksg"``, categorical y; nats). Ross (2014, PLoS ONE 9, e87357, eq. 2) on x
ranks: d_i the rank distance to the k_i-th nearest point of the same class
(k_i = min(k, N_c - 1)), m_i = min(r_i + d_i - 1, n - 1) - max(r_i - d_i + 1, 0) + 1 points
of any class strictly within d_i (self included), and

    I = psi(N) + < psi(k_i) > - < psi(N_c(i)) > - < psi(m_i) >

over the N points of classes with at least two members.

**Gaussian copula** (``"gaussian"``; nats; Ince et al. 2017, Human Brain Mapping 38). Ranks to
normal scores g(r) = Phi^{-1}((r + 1) / (n + 1)) (unit variance), then Gaussian MI in closed
form: -0.5 log(1 - rho^2) with rho = < g(r_i) g(s_i) > for continuous y, and
0.5 log var(g) - sum_c p_c 0.5 log var_c(g) for labels. A lower bound of MI, exact for Gaussian
copulas, powerful for weak monotone dependence and blind to non-monotone dependence.

**Chatterjee's xi** (``"xi"``; Chatterjee 2021, JASA 116). Sorted by x, with s_t the y rank of
the t-th point, xi(X -> Y) = 1 - 3 sum_t |s_{t+1} - s_t| / (n^2 - 1); the screen uses the
symmetric max(xi(X -> Y), xi(Y -> X)). For labels the coding-invariant form compares
neighbours in x order (Azadkia & Chatterjee 2021): (matches / (n - 1) - sum_c p_c^2) /
(1 - sum_c p_c^2), matches = #{t : y_t = y_{t+1}}. Not an MI (no unit); O(n) per pair.

Rows are independent: a pair's value is the same alone or in any batch. The compiled functions
release the GIL, so :func:`screen_statistics` runs blocks of pairs on threads.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma

from distmi.kernels.copula_knn import copula_ksg_rows, copula_ross_rows
from distmi.kernels.screen_methods import SCREEN_METHODS, SCREEN_STATISTICS

__all__ = ["SCREEN_METHODS", "SCREEN_STATISTICS", "normal_scores", "psi_table", "rank_rows",
           "screen_statistics"]

try:  # numba is a dependency; without it the screen is unavailable (clear error below)
    import numba

    HAVE_NUMBA = True
    _jit = numba.njit(nogil=True, cache=True)
except ImportError:  # pragma: no cover - exercised only on installs without numba
    HAVE_NUMBA = False

    def _jit(func):
        return func




def psi_table(n: int) -> np.ndarray:
    """digamma(0..n+1) with digamma(0) = -inf, shape (n + 2,)."""
    table = np.empty(n + 2)
    table[0] = -np.inf
    table[1:] = digamma(np.arange(1, n + 2, dtype=np.float64))
    return table


@_jit
def _radix_ranks(keys: np.ndarray, ranks: np.ndarray, tied: np.ndarray) -> None:
    """Ranks of each row of float32 ``keys`` (B, n) by a stable LSD radix sort (11 + 11 + 10
    bits of the order-preserving unsigned image of the float), and whether the row has ties.

    The image of a float f with bits u is u | 2^31 for f >= 0 and ~u for f < 0, so unsigned
    order is float order (-0.0 is read as +0.0; NaN is excluded by the callers).
    """
    b, n = keys.shape
    bits = keys.view(np.uint32)
    key = np.empty(n, dtype=np.uint32)
    key2 = np.empty(n, dtype=np.uint32)
    idx = np.empty(n, dtype=np.int32)
    idx2 = np.empty(n, dtype=np.int32)
    c0 = np.empty(2048, dtype=np.int64)
    c1 = np.empty(2048, dtype=np.int64)
    c2 = np.empty(1024, dtype=np.int64)
    for row in range(b):
        c0[:] = 0
        c1[:] = 0
        c2[:] = 0
        for j in range(n):  # keys and all three digit histograms in one pass
            u = bits[row, j]
            if u == np.uint32(0x80000000):  # -0.0 equals +0.0
                u = np.uint32(0)
            k = ~u if u >> np.uint32(31) else u | np.uint32(0x80000000)
            key[j] = k
            idx[j] = j
            c0[k & np.uint32(2047)] += 1
            c1[(k >> np.uint32(11)) & np.uint32(2047)] += 1
            c2[k >> np.uint32(22)] += 1
        for counts in (c0, c1, c2):  # exclusive prefix sums: bucket starts
            total = 0
            for d in range(counts.size):
                c = counts[d]
                counts[d] = total
                total += c
        for j in range(n):
            d = key[j] & np.uint32(2047)
            q = c0[d]
            c0[d] = q + 1
            key2[q] = key[j]
            idx2[q] = idx[j]
        for j in range(n):
            d = (key2[j] >> np.uint32(11)) & np.uint32(2047)
            q = c1[d]
            c1[d] = q + 1
            key[q] = key2[j]
            idx[q] = idx2[j]
        for j in range(n):
            d = key[j] >> np.uint32(22)
            q = c2[d]
            c2[d] = q + 1
            key2[q] = key[j]
            idx2[q] = idx[j]
        has_tie = False
        for t in range(n):
            ranks[row, idx2[t]] = t
            if t > 0 and key2[t] == key2[t - 1]:
                has_tie = True
        tied[row] = has_tie


@_jit
def _resolve_ties(values: np.ndarray, ranks: np.ndarray, tie_key: np.ndarray) -> None:
    """Reorder runs of equal values (in rank order) by ``tie_key`` (insertion sort per run)."""
    n = values.size
    order = np.empty(n, dtype=np.int64)
    for j in range(n):
        order[ranks[j]] = j
    start = 0
    while start < n:
        stop = start + 1
        while stop < n and values[order[stop]] == values[order[start]]:
            stop += 1
        if stop - start > 1:
            for t in range(start + 1, stop):
                cur = order[t]
                q = t - 1
                while q >= start and tie_key[order[q]] > tie_key[cur]:
                    order[q + 1] = order[q]
                    q -= 1
                order[q + 1] = cur
            for t in range(start, stop):
                ranks[order[t]] = t
        start = stop


def rank_rows(values: np.ndarray, tie_keys: list[np.ndarray | None] | None = None,
              tie_source=None) -> np.ndarray:
    """Ranks 0..n-1 of each row with ties broken by a random key.

    Rows whose values are all exactly representable in float32 (activations usually are) are
    ranked by a compiled radix sort; others by ``numpy.argsort``. Within every run of tied
    values the order is that of the row's random key, so the ranks equal those of a sort by
    (value, key).

    Args:
        values: shape (B, n) finite floats (or integer codes).
        tie_keys: optional per-row keys (n,) ordering tied values; ``None`` entries, or rows
            without ties, need none.
        tie_source: callable ``row -> (n,) keys``, asked only for rows that have ties (so the
            random keys are drawn only where they matter).

    Returns:
        shape (B, n) int32 ranks (each row a permutation of 0..n-1).
    """
    vals = np.asarray(values)
    b, n = vals.shape
    ranks = np.empty((b, n), dtype=np.int32)
    as32 = vals.astype(np.float32) if vals.dtype != np.float32 else vals
    exact = vals.dtype == np.float32 or (vals.dtype.kind == "f" and np.array_equal(as32, vals))
    if HAVE_NUMBA and exact and n > 0:
        tied = np.zeros(b, dtype=np.bool_)
        _radix_ranks(np.ascontiguousarray(as32), ranks, tied)
    else:
        order = np.argsort(vals, axis=1)
        srt = np.take_along_axis(vals, order, axis=1)
        tied = (srt[:, 1:] == srt[:, :-1]).any(axis=1) if n > 1 else np.zeros(b, bool)
        np.put_along_axis(ranks, order, np.arange(n, dtype=np.int32)[None, :].repeat(b, 0),
                          axis=1)
    for row in np.flatnonzero(tied):
        key = tie_keys[row] if tie_keys is not None else None
        if key is None:
            if tie_source is None:
                raise ValueError("row has tied values but no tie-break keys were given")
            key = tie_source(int(row))
        key = np.ascontiguousarray(key, dtype=np.float64)
        if HAVE_NUMBA:
            _resolve_ties(np.ascontiguousarray(vals[row], dtype=np.float64), ranks[row], key)
        else:  # pragma: no cover - installs without numba
            ranks[row, np.lexsort((key, vals[row]))] = np.arange(n, dtype=np.int32)
    return ranks


@_jit
def _xi_rows(rank_x: np.ndarray, rank_y: np.ndarray, pairs: np.ndarray, out: np.ndarray) -> None:
    """Symmetric Chatterjee xi, max(xi(X->Y), xi(Y->X)), per pair."""
    n = rank_x.shape[1]
    y_at_x = np.empty(n, dtype=np.int64)
    x_at_y = np.empty(n, dtype=np.int64)
    scale = 3.0 / (float(n) * float(n) - 1.0)
    for p in range(pairs.shape[0]):
        rx = rank_x[pairs[p, 0]]
        ry = rank_y[pairs[p, 1]]
        for j in range(n):
            y_at_x[rx[j]] = ry[j]
            x_at_y[ry[j]] = rx[j]
        sx = 0
        sy = 0
        for t in range(n - 1):
            sx += abs(y_at_x[t + 1] - y_at_x[t])
            sy += abs(x_at_y[t + 1] - x_at_y[t])
        out[p] = 1.0 - scale * min(sx, sy)


@_jit
def _xi_label_rows(rank_x: np.ndarray, labels: np.ndarray, rows: np.ndarray,
                   out: np.ndarray) -> None:
    """Categorical xi (neighbour label matches in x order, normalised), per row."""
    n = rank_x.shape[1]
    n_classes = 0
    for j in range(n):
        if labels[j] + 1 > n_classes:
            n_classes = labels[j] + 1
    size = np.zeros(n_classes, dtype=np.int64)
    for j in range(n):
        size[labels[j]] += 1
    gini = 0.0
    for c in range(n_classes):
        share = size[c] / n
        gini += share * share
    lab_at_x = np.empty(n, dtype=np.int64)
    for p in range(rows.shape[0]):
        rx = rank_x[rows[p]]
        for j in range(n):
            lab_at_x[rx[j]] = labels[j]
        matches = 0
        for t in range(n - 1):
            matches += lab_at_x[t + 1] == lab_at_x[t]
        out[p] = (matches / (n - 1) - gini) / (1.0 - gini) if gini < 1.0 else 0.0


@_jit
def _gauss_rows(rank_x: np.ndarray, rank_y: np.ndarray, pairs: np.ndarray, scores: np.ndarray,
                out: np.ndarray) -> None:
    """Gaussian-copula MI -0.5 log(1 - rho^2), rho = mean of normal-score products, per pair."""
    n = rank_x.shape[1]
    for p in range(pairs.shape[0]):
        rx = rank_x[pairs[p, 0]]
        ry = rank_y[pairs[p, 1]]
        acc = 0.0
        for j in range(n):
            acc += scores[rx[j]] * scores[ry[j]]
        rho = acc / n
        rho = min(rho * rho, 1.0 - 1e-15)
        out[p] = -0.5 * math.log1p(-rho)


@_jit
def _gauss_label_rows(rank_x: np.ndarray, labels: np.ndarray, rows: np.ndarray,
                      scores: np.ndarray, out: np.ndarray) -> None:
    """Gaussian-copula MI of normal scores and labels, per row (classes of >= 2 members):

    I = 0.5 log var(g) - sum_c p_c 0.5 log var_c(g)  (Gaussian entropies, ML variances)."""
    n = rank_x.shape[1]
    n_classes = 0
    for j in range(n):
        if labels[j] + 1 > n_classes:
            n_classes = labels[j] + 1
    size = np.zeros(n_classes, dtype=np.int64)
    for j in range(n):
        size[labels[j]] += 1
    s1 = np.zeros(n_classes)
    s2 = np.zeros(n_classes)
    for p in range(rows.shape[0]):
        rx = rank_x[rows[p]]
        s1[:] = 0.0
        s2[:] = 0.0
        for j in range(n):
            g = scores[rx[j]]
            c = labels[j]
            s1[c] += g
            s2[c] += g * g
        n_keep = 0
        t1 = 0.0
        t2 = 0.0
        within = 0.0
        for c in range(n_classes):
            if size[c] < 2:
                continue
            n_keep += size[c]
            t1 += s1[c]
            t2 += s2[c]
            mean = s1[c] / size[c]
            var = max(s2[c] / size[c] - mean * mean, 1e-300)
            within += size[c] * math.log(var)
        mean = t1 / n_keep
        total = max(t2 / n_keep - mean * mean, 1e-300)
        out[p] = 0.5 * math.log(total) - 0.5 * within / n_keep


def normal_scores(n: int) -> np.ndarray:
    """Normal scores Phi^{-1}((r + 1) / (n + 1)) of ranks r = 0..n-1, scaled to unit variance."""
    from scipy.special import ndtri

    g = ndtri(np.arange(1, n + 1, dtype=np.float64) / (n + 1.0))
    return g / np.sqrt(np.mean(g * g))


def _check_ranks(rank: np.ndarray, what: str) -> np.ndarray:
    arr = np.ascontiguousarray(rank, dtype=np.int32)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a (rows, n) array of ranks, got shape {arr.shape}")
    return arr


def _blocks(n_items: int, threads: int, run) -> None:
    """Run ``run(slice)`` over ~equal blocks of items on ``threads`` threads (GIL released)."""
    if threads <= 1 or n_items < 2:
        run(slice(0, n_items))
        return
    from concurrent.futures import ThreadPoolExecutor

    step = math.ceil(n_items / threads)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(run, [slice(a, min(a + step, n_items)) for a in range(0, n_items, step)]))


def screen_statistics(components: tuple[str, ...], rank_x: np.ndarray, partner: np.ndarray,
                      pairs: np.ndarray, k: int = 5, discrete: bool = False,
                      threads: int = 1) -> np.ndarray:
    """Rank statistics of many pairs (see module docstring).

    Args:
        components: statistics to compute, each one of :data:`SCREEN_STATISTICS`: ``"ksg"``
            (copula KSG, or copula Ross for labels; nats), ``"gaussian"`` (Gaussian-copula MI;
            nats; monotone dependence only), ``"xi"`` (Chatterjee's xi).
        rank_x: shape (A, n) int ranks (rows: x variables, permutations of 0..n-1).
        partner: shape (C, n) int ranks of the y variables, or, with ``discrete``, shape (n,)
            int64 class codes 0..C-1 shared by every pair.
        pairs: shape (P, 2) int64 (row of rank_x, row of partner); with ``discrete`` only
            column 0 is used.
        k: neighbours of ``"ksg"``, 1 <= k < n.
        threads: threads over blocks of pairs.

    Returns:
        shape (P, len(components)) float64.
    """
    if not HAVE_NUMBA:
        raise ImportError("the rank screen needs numba: pip install numba")
    comps = tuple(components)
    bad = [c for c in comps if c not in SCREEN_STATISTICS]
    if bad or not comps:
        raise ValueError(f"components must be a non-empty subset of {SCREEN_STATISTICS}, "
                         f"got {comps}")
    rx = _check_ranks(rank_x, "rank_x")
    n = rx.shape[1]
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < n, got k={k}, n={n}")
    idx = np.ascontiguousarray(pairs, dtype=np.int64).reshape(-1, 2)
    if idx.size and (idx[:, 0].min() < 0 or idx[:, 0].max() >= rx.shape[0]):
        raise ValueError(f"pair rows must index rank_x's {rx.shape[0]} rows")
    out = np.empty((len(comps), len(idx)))
    psi = psi_table(n) if "ksg" in comps else np.empty(0)
    scores = normal_scores(n) if "gaussian" in comps else np.empty(0)
    if discrete:
        labels = np.ascontiguousarray(partner, dtype=np.int64)
        if labels.shape != (n,) or (labels.size and labels.min() < 0):
            raise ValueError(f"labels must be (n,) = ({n},) codes >= 0, got shape {labels.shape}")
        rows = np.ascontiguousarray(idx[:, 0])

        def run(sl: slice) -> None:
            for c, name in enumerate(comps):
                if name == "ksg":
                    copula_ross_rows(rx, labels, rows[sl], int(k), psi, out[c, sl])
                elif name == "gaussian":
                    _gauss_label_rows(rx, labels, rows[sl], scores, out[c, sl])
                else:
                    _xi_label_rows(rx, labels, rows[sl], out[c, sl])
    else:
        ry = _check_ranks(partner, "partner")
        if ry.shape[1] != n:
            raise ValueError(f"rank_x has n={n} columns, partner has {ry.shape[1]}")
        if idx.size and (idx[:, 1].min() < 0 or idx[:, 1].max() >= ry.shape[0]):
            raise ValueError(f"pair partners must index the partner's {ry.shape[0]} rows")

        def run(sl: slice) -> None:
            for c, name in enumerate(comps):
                if name == "ksg":
                    copula_ksg_rows(rx, ry, idx[sl], int(k), psi, out[c, sl])
                elif name == "gaussian":
                    _gauss_rows(rx, ry, idx[sl], scores, out[c, sl])
                else:
                    _xi_rows(rx, ry, idx[sl], out[c, sl])

    _blocks(len(idx), threads, run)
    return np.ascontiguousarray(out.T)
