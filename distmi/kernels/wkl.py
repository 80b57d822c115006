"""Weighted Kozachenko-Leonenko (WKL) entropy: the weights, and entropies of batches of samples.

Berrett, Samworth & Yuan (2019), "Efficient multivariate entropy estimation via k-nearest
neighbour distances", Annals of Statistics 47(1), 288-318. With rho_(j),i the distance from x_i
to its j-th nearest neighbour among n points in R^d and V_d the volume of the unit ball of the
norm, the Kozachenko-Leonenko estimate with the j-th neighbour is

    H_j = psi(n) - psi(j) + log V_d + (d / n) sum_i log rho_(j),i          (nats)

(the paper writes log(n - 1) for psi(n); psi(n) makes H_j exact for a locally uniform density,
where the ball mass of the j-th neighbour is Beta(j, n - j) with E log = psi(j) - psi(n)), and
the weighted estimate is H_w = sum_j w_j H_j with sum_j w_j = 1.

**The constraints.** For a smooth density the bias of H_j expands in powers of the neighbour
ball's radius,

    E[H_j] - H = sum_{l>=1} c_l(f) n^{-2l/d} Gamma(j + 2l/d) / Gamma(j) + smaller terms,

because the ball mass U_(j) of the j-th neighbour is ~ Gamma(j, 1) / n and a Taylor expansion
of f over the ball gives a correction in (radius)^{2l} ~ U_(j)^{2l/d}, whose mean is
Gamma(j + 2l/d) / Gamma(j) n^{-2l/d} (the paper's section 3). The c_l(f) are unknown, but the
dependence on j is known, so weights with

    sum_j w_j = 1,     sum_j w_j Gamma(j + 2l/d) / Gamma(j) = 0   for l = 1, ..., floor(d/4)

cancel every term of order n^{-2l/d} with 2l/d <= 1/2, i.e. every bias term larger than the
n^{-1/2} sampling noise: the estimator is then efficient (the paper's Theorem 7). For d <= 3
there is no constraint besides the sum, and the unweighted w = e_k is efficient (the paper's
Theorem 1); distmi uses w = e_k there.

**Which solution.** For d >= 4 the constraints leave a family of weight vectors. Two schemes:

- ``"paper"``: w_j != 0 only for j in {floor(k/d), floor(2k/d), ..., k} (the paper's set
  W^(k), :func:`wkl_support`), the solution of minimum Euclidean norm (``lstsq`` of the
  underdetermined system), as the paper's authors recommend for practice.
- ``"min-variance"`` (distmi's default): any j in 1..k, minimising the variance of H_w under
  the local Poisson approximation. There, log rho_(j),i = (log Gamma_j - log(n f V_d)) / d with
  Gamma_j a sum of j standard exponentials, and Gamma_j / Gamma_j' ~ Beta independent of
  Gamma_j' (j < j'), so Cov(log Gamma_j, log Gamma_j') = psi'(max(j, j')) =: C_jj'. The variance
  of H_w is then ~ w^T C w / n (plus the efficient term Var log f(X) / n, the same for every w),
  and the minimiser subject to A w = e_1 (A: the constraint rows) is
  w = C^{-1} A^T (A C^{-1} A^T)^{-1} e_1. With no constraint it is e_k, as above.

Measured on Gaussian MI in d = 5 + 5 (n = 3000, 16 data sets, k = 20 for the 10-D joint): the
paper scheme has bias +0.03 and sd 0.15 nats, min-variance -0.02 and 0.11; KSG -0.24 and 0.025
(docs/infoplane.md). Both schemes satisfy the constraints to rounding (tested).

**Growth with d.** The weights grow fast with d: ||w|| is ~2 for d = 4..7, ~10-30 for
d = 8..10 and 10^2-10^4 beyond 12, and the variance with them. ``orders`` cancels fewer terms
(0 gives the unweighted estimator).

Kernels (B problems at once; rows are independent, so a row gives the same value alone or in
any batch):

- 1-D: :func:`mean_log_knn_1d` on sorted samples (the j nearest others of x_i form a window of
  j + 1 consecutive sorted points holding i: a binary search over its start);
- 2-D (a pair of 1-D projections): the compiled column search of
  :mod:`distmi.kernels.wkl_compiled`, a k-d tree per problem where numba is missing;
- any d: a k-d tree per problem (scipy), or batched brute force in torch (CPU or CUDA).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma, gammaln, polygamma

from distmi.kernels.entropy import log_unit_ball_volume

METRICS = ("chebyshev", "euclidean")


def wkl_support(d: int, k: int) -> np.ndarray:
    """Neighbour orders allowed a non-zero weight: distinct {floor(l k / d) : l = 1..d} minus 0.

    Returns (J,) int64, ascending, always ending with k.
    """
    js = {(step * k) // d for step in range(1, d + 1)}
    js.discard(0)
    return np.array(sorted(js), dtype=np.int64)


def bias_matrix(d: int, js: np.ndarray, orders: int) -> np.ndarray:
    """Rows [1, Gamma(j + 2l/d) / Gamma(j) for l = 1..orders] over the support js: (orders+1, J)."""
    js = np.asarray(js, dtype=np.float64)
    rows = [np.ones_like(js)]
    for order in range(1, orders + 1):
        rows.append(np.exp(gammaln(js + 2.0 * order / d) - gammaln(js)))
    return np.stack(rows)


def min_neighbours(d: int, orders: int | None = None) -> int:
    """Smallest k whose support holds at least floor(d/4) + 1 (or ``orders`` + 1) orders."""
    orders = d // 4 if orders is None else orders
    k = 1
    while len(wkl_support(d, k)) < orders + 1:
        k += 1
    return k


WEIGHT_SCHEMES = ("min-variance", "paper")


def poisson_log_covariance(js: np.ndarray) -> np.ndarray:
    """C_jj' = psi'(max(j, j')): covariance of log Gamma_j, log Gamma_j' (see module docstring)."""
    js = np.asarray(js, dtype=np.float64)
    return polygamma(1, np.maximum.outer(js, js))


def wkl_weights(d: int, k: int, orders: int | None = None,
                scheme: str = "min-variance") -> np.ndarray:
    """WKL weights w (k,) for dimension d and k neighbours (see module docstring).

    Args:
        d: dimension of the samples (>= 1).
        k: largest neighbour order (>= 1).
        orders: bias terms to cancel, default floor(d/4) (the paper's choice); 0 gives e_k.
        scheme: ``"min-variance"`` (all orders 1..k, least variance under the local Poisson
            approximation) or ``"paper"`` (the paper's support, least Euclidean norm).
    Returns:
        (k,) float64; ``w[j - 1]`` is the weight of the j-th neighbour. It sums to 1 and
        satisfies the constraints to rounding.
    Raises:
        ValueError: bad arguments, or k too small for the constraints (the message gives the
        smallest k that works).
    """
    if d < 1 or k < 1:
        raise ValueError(f"need d >= 1 and k >= 1, got d={d}, k={k}")
    if scheme not in WEIGHT_SCHEMES:
        raise ValueError(f"scheme must be one of {WEIGHT_SCHEMES}, got {scheme!r}")
    orders = d // 4 if orders is None else int(orders)
    if orders < 0:
        raise ValueError(f"orders must be >= 0, got {orders}")
    w = np.zeros(k)
    if orders == 0:
        w[k - 1] = 1.0
        return w
    js = wkl_support(d, k) if scheme == "paper" else np.arange(1, k + 1)
    if len(js) < orders + 1:
        least = min_neighbours(d, orders) if scheme == "paper" else orders + 1
        raise ValueError(
            f"k={k} leaves {len(js)} neighbour orders {js.tolist()} for {orders + 1} constraints "
            f"in d={d}; use k >= {least}"
        )
    a = bias_matrix(d, js, orders)
    rhs = np.zeros(orders + 1)
    rhs[0] = 1.0
    if scheme == "paper":
        w_support = np.linalg.lstsq(a, rhs, rcond=None)[0]  # minimum-norm solution
    else:
        c_inv_at = np.linalg.solve(poisson_log_covariance(js), a.T)  # C^-1 A^T, (J, orders+1)
        w_support = c_inv_at @ np.linalg.solve(a @ c_inv_at, rhs)
    w[js - 1] = w_support
    return w


def entropy_from_mean_logs(mean_logs: np.ndarray, orders: np.ndarray, weights: np.ndarray,
                           n: int | np.ndarray, d: int, metric: str) -> np.ndarray:
    """H_w from per-problem mean log distances.

    Args:
        mean_logs: (..., J) mean over points of log rho_(j),i for the orders j in ``orders``.
        orders: (J,) neighbour orders; weights: (J,) their weights (sum 1).
        n: sample size of each problem (int or array broadcasting against ``mean_logs[..., 0]``).
    Returns:
        (...) nats.
    """
    orders = np.asarray(orders)
    psi_n = digamma(np.asarray(n, dtype=np.float64))
    per_order = (np.asarray(psi_n)[..., None] - digamma(orders.astype(np.float64))
                 + log_unit_ball_volume(d, metric) + d * mean_logs)
    return per_order @ np.asarray(weights, dtype=np.float64)


# ---- 1-D ---------------------------------------------------------------------------------------

def mean_log_knn_1d_sorted_numpy(xs: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Mean log j-th neighbour distance of B sorted 1-D samples (numpy; exact).

    The j nearest others of x_i are a window [lo, lo + j] of sorted points holding i, so
    rho_(j),i = min over lo of max(x_i - x_lo, x_{lo+j} - x_i); all j + 1 windows are scanned.

    Args:
        xs: (B, n) ascending rows. orders: (J,) with max < n.
    Returns:
        (B, J).
    """
    out = np.empty((xs.shape[0], len(orders)))
    for t, j in enumerate(np.asarray(orders)):
        with np.errstate(divide="ignore"):
            out[:, t] = np.log(_kth_1d_numpy(xs, int(j))).mean(axis=1)
    return out


def mean_log_knn_1d(x: np.ndarray, orders: np.ndarray, *, presorted: bool = False,
                    weights: np.ndarray | None = None
                    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Mean log j-th neighbour distance of B 1-D samples x (B, n) -> (B, J), compiled if possible.

    With ``weights`` (J,) also each point's sum_t w_t log rho_(orders[t]),i, (B, n) in each row's
    sorted order.
    """
    from distmi.kernels.wkl_compiled import HAVE_NUMBA, mean_log_knn_1d_sorted

    xs = np.ascontiguousarray(x if presorted else np.sort(x, axis=1), dtype=np.float64)
    orders = np.ascontiguousarray(orders, dtype=np.int64)
    _check_orders(orders, xs.shape[1])
    if HAVE_NUMBA:
        return mean_log_knn_1d_sorted(xs, orders, weights)
    ml = mean_log_knn_1d_sorted_numpy(xs, orders)
    if weights is None:
        return ml
    points = sum(w * np.log(_kth_1d_numpy(xs, int(j))) for j, w in zip(orders, weights,
                                                                         strict=True))
    return ml, points


def _kth_1d_numpy(xs: np.ndarray, j: int) -> np.ndarray:
    """j-th neighbour distance of every point of sorted rows (B, n) (numpy fallback)."""
    b, n = xs.shape
    idx = np.arange(n)
    best = np.full((b, n), np.inf)
    for shift in range(j + 1):
        lo = idx - shift
        hi = lo + j
        ok = (lo >= 0) & (hi < n)
        cand = np.maximum(xs - xs[:, np.clip(lo, 0, n - 1)], xs[:, np.clip(hi, 0, n - 1)] - xs)
        np.minimum(best, np.where(ok, cand, np.inf), out=best)
    return best


def mean_log_knn_1d_classes(x: np.ndarray, labels: np.ndarray, orders: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class mean log distances of B 1-D samples that share one label vector.

    Args:
        x: (B, n); labels: (n,) int codes; orders: (J,).
    Returns:
        (mean_logs (C, B, J), class sizes (C,), class codes (C,)) for the classes with more than
        max(orders) members; smaller classes are left out (their entropy is not estimable).
    """
    codes, sizes = np.unique(labels, return_counts=True)
    keep = sizes > int(np.max(orders))
    out = []
    for c in codes[keep]:
        out.append(mean_log_knn_1d(x[:, labels == c], orders))
    stacked = np.stack(out) if out else np.empty((0, x.shape[0], len(orders)))
    return stacked, sizes[keep], codes[keep]


# ---- 2-D and any d -----------------------------------------------------------------------------

def mean_log_knn_2d(x: np.ndarray, y: np.ndarray, orders: np.ndarray, metric: str = "chebyshev",
                    order_x: np.ndarray | None = None, order_y: np.ndarray | None = None,
                    weights: np.ndarray | None = None
                    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Mean log j-th neighbour distance of B 2-D samples z_i = (x_i, y_i) -> (B, J).

    Args:
        x, y: (B, n) float64. ``order_x`` / ``order_y``: their row argsorts when already known
            (e.g. a projection shared by many problems); computed otherwise.
        metric: ``"chebyshev"`` (max-norm) or ``"euclidean"``.
        weights: (J,) if given, also each point's sum_t w_t log rho_(orders[t]),i, (B, n) in the
            original point order.
    """
    from distmi.kernels.wkl_compiled import HAVE_NUMBA, mean_log_knn_2d_compiled

    orders = np.ascontiguousarray(orders, dtype=np.int64)
    _check_orders(orders, x.shape[1])
    if HAVE_NUMBA:
        return mean_log_knn_2d_compiled(x, y, orders, metric == "euclidean", order_x, order_y,
                                        weights)
    z = np.stack([x, y], axis=-1)
    return mean_log_knn_nd(z, orders, metric, weights=weights)


def mean_log_knn_nd(z: np.ndarray, orders: np.ndarray, metric: str = "chebyshev",
                    backend: str = "kdtree", device: str = "cpu", workers: int = 1,
                    memory_budget: float = 256e6, weights: np.ndarray | None = None
                    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Mean log j-th neighbour distance of G samples z (G, n, d) -> (G, J).

    ``backend="kdtree"``: one scipy k-d tree per problem; ``"brute"``: batched torch (CPU/CUDA).
    With ``weights`` (J,) (k-d tree only) also each point's weighted log sum, (G, n).
    """
    orders = np.asarray(orders, dtype=np.int64)
    g, n, _ = z.shape
    _check_orders(orders, n)
    kmax = int(orders.max())
    p = np.inf if metric == "chebyshev" else 2.0
    out = np.empty((g, len(orders)))
    if backend == "brute":
        if weights is not None:
            raise ValueError("per-point sums need backend='kdtree'")
        import torch

        zt = torch.as_tensor(z, dtype=torch.float64, device=device)
        rows = int(max(1, min(n, memory_budget // (8.0 * g * n * (z.shape[2] + 2)))))
        sums = torch.zeros((g, len(orders)), dtype=torch.float64, device=device)
        sel = torch.as_tensor(orders, device=device)
        for start in range(0, n, rows):
            q = zt[:, start : start + rows]
            diff = q[:, :, None, :] - zt[:, None, :, :]
            dist = diff.abs().amax(-1) if p == np.inf else diff.pow(2).sum(-1).sqrt()
            near = torch.topk(dist, kmax + 1, dim=-1, largest=False).values  # self at 0
            sums += torch.log(near[..., sel]).sum(1)
        return (sums / n).cpu().numpy()
    from scipy.spatial import cKDTree

    points = np.empty((g, n)) if weights is not None else None
    for i in range(g):
        dist, _ = cKDTree(z[i]).query(z[i], k=orders + 1, p=p, workers=workers)  # self first
        with np.errstate(divide="ignore"):
            logs = np.log(dist)  # (n, J)
        out[i] = logs.mean(axis=0)
        if points is not None:
            points[i] = logs @ np.asarray(weights, dtype=np.float64)
    return out if points is None else (out, points)


def _check_orders(orders: np.ndarray, n: int) -> None:
    if orders.ndim != 1 or orders.size == 0 or orders.min() < 1 or orders.max() >= n:
        raise ValueError(f"neighbour orders must be in [1, n - 1] = [1, {n - 1}], got {orders}")


def gaussian_entropy(cov: np.ndarray) -> float:
    """Differential entropy of N(mu, cov) in nats: 1/2 log det(2 pi e cov) (test helper)."""
    cov = np.atleast_2d(cov)
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:
        raise ValueError("covariance must be positive definite")
    return 0.5 * (cov.shape[0] * math.log(2 * math.pi * math.e) + logdet)
