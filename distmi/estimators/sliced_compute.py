"""Per-slice MI for sliced-MI estimates: standardised projections of blocks of slices, the base
estimator on every slice of a block as one batch, and the nulls and half-sample replicates on
the same projections.

**Projections.** Slice j of X is theta_j^T X standardised (mean 0, sd 1) plus the role's
jitter vector (as KSG prepares a column, :mod:`distmi.estimators.ksg_config`). The data are
centred once, so one matrix product theta^T (X - mean)^T gives a whole block's projections,
already centred and in the (slices, n) layout the kernels read; they are scaled in place.
Blocks of ~2^18 points keep every array a few MB (fresh large arrays cost page faults on
every call; small ones are reused by the allocator) and are the unit of parallelism
(``n_jobs`` threads; the kernels and BLAS release the GIL).

Base estimators (all in nats), on rows (mb, s, n) per side:

- ``ksg``: KSG algorithm 1/2 (Ross 2014 for labels); 1-D slices use the batched exact 1-D/1-D
  kernel (compiled, or numpy without numba), k-dimensional slices a k-d tree per slice.
- ``wkl``: weighted Kozachenko-Leonenko entropies (:mod:`distmi.estimators.wkl_compute`):
  I = H(x) + H(y) - H(x, y) from sorted 1-D samples and the compiled 2-D column search.
- ``gaussian``: the closed form 1/2 log(det S_x det S_y / det S) of each slice's covariance
  (class-conditional Gaussian entropies for labels).
- ``gmm``: GMM-MI's batched ``estimate_pairs`` on the projected columns (1-D slices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from distmi.core.seeds import derive_rng
from distmi.estimators.ksg_config import KSGConfig, standardize_rows
from distmi.estimators.wkl_config import WKLConfig
from distmi.kernels.slicing import gaussian_mi, gaussian_mi_labels

BLOCK_POINTS = 1 << 18  # slice-rows x samples per block


class Projector:
    """Standardised, jittered projections of one data matrix onto frames.

    Args:
        data: (n, d) samples.
        seed, role: the jitter vector is ``derive_rng(seed, "ksg-jitter", role)``'s normals,
            as in :func:`distmi.estimators.ksg_config.prepare_rows`.
        jitter: its scale in standard deviations (0: none).
    """

    def __init__(self, data: np.ndarray, seed: int, role: str, jitter: float) -> None:
        data = np.asarray(data, dtype=np.float64)
        self.n, self.d = data.shape
        self.centred_t = np.ascontiguousarray((data - data.mean(axis=0)).T)  # (d, n)
        self._tiny = 1e-24 * max(float((self.centred_t * self.centred_t).sum()) / self.n, 1e-300)
        self.noise = (jitter * derive_rng(seed, "ksg-jitter", role).standard_normal(self.n)
                      if jitter > 0 else None)

    def rows(self, frames: np.ndarray) -> np.ndarray:
        """Standardised projections onto frames (mb, d, s) -> (mb, s, n) C-contiguous.

        Each row is theta^T (X - mean) (already mean 0) divided by its standard deviation
        (ddof 0; a constant row is left at 0), plus the jitter vector.
        """
        mb, d, s = frames.shape
        w = np.ascontiguousarray(frames.transpose(0, 2, 1).reshape(mb * s, d))  # (mb*s, d)
        out = w @ self.centred_t  # (mb*s, n)
        var = np.einsum("ij,ij->i", out, out) / self.n
        scale = np.where(var > self._tiny, 1.0 / np.sqrt(np.maximum(var, self._tiny)), 1.0)
        out *= scale[:, None]
        if self.noise is not None:
            out += self.noise
        return out.reshape(mb, s, self.n)


def restandardize(rows: np.ndarray) -> np.ndarray:
    """Re-standardise each coordinate row of (mb, s, r) (e.g. a half-sample of the rows)."""
    mb, s, r = rows.shape
    return standardize_rows(rows.reshape(mb * s, r)).reshape(mb, s, r)


@dataclass(frozen=True)
class SliceSolver:
    """The base estimator of every slice of a block: ``solve(xr, yr) -> (mb,)``.

    ``xr`` is (mb, s, n) standardised rows; ``yr`` is (mb, t, n), or labels (n,) when
    ``discrete_y``. :meth:`with_terms` also returns each slice's per-point terms (mb, n): the
    estimate is a constant plus their mean (KSG: -psi(n_x + 1) - psi(n_y + 1); WKL:
    :mod:`distmi.estimators.wkl_compute`), which the ``"slices"`` error bar needs.
    """

    base: str
    discrete_y: bool
    ksg: KSGConfig
    wkl: WKLConfig
    seed: int
    gmm_params: dict[str, Any]

    def __call__(self, xr: np.ndarray, yr: np.ndarray) -> np.ndarray:
        if self.base == "ksg":
            return self._ksg(xr, yr)
        if self.base == "wkl":
            return self._wkl(xr, yr)
        x3 = xr.transpose(0, 2, 1)
        if self.base == "gaussian":
            return gaussian_mi_labels(x3, yr) if self.discrete_y else gaussian_mi(
                x3, yr.transpose(0, 2, 1))
        return self._gmm(xr, yr)

    def supports_terms(self, slice_dim: int) -> bool:
        """Whether :meth:`with_terms` works: 1-D slices, WKL (compiled or sorted paths, any y)
        or KSG (compiled kernel, continuous y)."""
        from distmi.kernels.wkl_compiled import HAVE_NUMBA

        if slice_dim != 1 or not HAVE_NUMBA:
            return False
        if self.base == "wkl":
            return self.wkl.device == "cpu" and self.wkl.backend in ("auto", "compiled", "sorted")
        return (self.base == "ksg" and not self.discrete_y and self.ksg.device == "cpu"
                and self.ksg.backend in ("auto", "compiled"))

    def with_terms(self, xr: np.ndarray, yr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values (mb,), per-point terms (mb, n) in the original point order)."""
        if self.base == "wkl":
            from distmi.estimators.wkl_compute import mi_rows_labels_terms, mi_rows_terms

            if self.discrete_y:
                return mi_rows_labels_terms(xr[:, 0], yr, self.wkl)
            return mi_rows_terms(xr[:, 0], yr[:, 0], self.wkl)
        from scipy.special import digamma

        from distmi.kernels.knn_compiled import ksg_counts_1d
        from distmi.kernels.ksg_mi import ksg_from_counts

        x, y = xr[:, 0], yr[:, 0]
        k, algorithm = self.ksg.k, self.ksg.algorithm
        n_x, n_y = ksg_counts_1d(x, y, k, algorithm)  # each row's x-sorted order
        values = ksg_from_counts(n_x, n_y, k, algorithm)
        if algorithm == 1:
            sorted_terms = -(digamma(n_x + 1.0) + digamma(n_y + 1.0))
        else:
            sorted_terms = -(digamma(np.maximum(n_x, 1).astype(float))
                             + digamma(np.maximum(n_y, 1).astype(float)))
        terms = np.empty_like(sorted_terms)
        np.put_along_axis(terms, np.argsort(x, axis=1), sorted_terms, axis=1)
        return values, terms

    def _ksg(self, xr: np.ndarray, yr: np.ndarray) -> np.ndarray:
        from distmi.estimators.ksg import solve_1d, solve_nd

        mb, s, n = xr.shape
        if s == 1 and (self.discrete_y or yr.shape[1] == 1):
            py = np.broadcast_to(yr, (mb, n)) if self.discrete_y else yr[:, 0]
            return solve_1d(xr[:, 0], py, self.ksg, self.discrete_y)
        x3 = np.ascontiguousarray(xr.transpose(0, 2, 1))
        y3 = (np.ascontiguousarray(np.broadcast_to(yr, (mb, n))) if self.discrete_y
              else np.ascontiguousarray(yr.transpose(0, 2, 1)))
        return solve_nd(x3, y3, self.ksg, self.discrete_y)

    def _wkl(self, xr: np.ndarray, yr: np.ndarray) -> np.ndarray:
        from distmi.estimators.wkl_compute import mi_nd, mi_nd_labels, mi_rows, mi_rows_labels

        if xr.shape[1] == 1 and (self.discrete_y or yr.shape[1] == 1):
            if self.discrete_y:
                return mi_rows_labels(xr[:, 0], yr, self.wkl)
            return mi_rows(xr[:, 0], yr[:, 0], self.wkl)
        x3 = np.ascontiguousarray(xr.transpose(0, 2, 1))
        if self.discrete_y:
            return mi_nd_labels(x3, yr, self.wkl)
        return mi_nd(x3, np.ascontiguousarray(yr.transpose(0, 2, 1)), self.wkl)

    def _gmm(self, xr: np.ndarray, yr: np.ndarray) -> np.ndarray:
        from distmi.estimators.registry import get_method

        mb = xr.shape[0]
        cols_x = np.ascontiguousarray(xr[:, 0].T)  # (n, mb)
        if self.discrete_y:
            cols_y, pairs = yr, np.stack([np.arange(mb), np.zeros(mb, dtype=np.int64)], 1)
        else:
            cols_y, pairs = np.ascontiguousarray(yr[:, 0].T), np.stack([np.arange(mb)] * 2, 1)
        results = get_method("gmm").estimate_pairs(
            cols_x, cols_y, pairs.astype(np.int64), discrete_y=self.discrete_y, n_bootstrap=0,
            random_state=self.seed, **self.gmm_params,
        )
        return np.array([r.value for r in results])


@dataclass
class SliceOutput:
    """Values of the m slices (m,), of the null shuffles (P, m) and of the replicate groups;
    with ``influence``, the per-point sums of the slices' centred terms, sum_j c_ij and
    sum_j c_ij^2 (n,) each (``None`` otherwise)."""

    values: np.ndarray
    null_values: np.ndarray
    group_values: list[np.ndarray]
    point_sum: np.ndarray | None = None
    point_sumsq: np.ndarray | None = None


def block_size(n: int, s: int, base: str, memory_budget: float, m: int) -> int:
    """Slices per block: ~2^18 points for the k-NN bases, the memory budget for the others."""
    if base in ("ksg", "wkl"):
        return int(max(1, min(m, BLOCK_POINTS // max(n * s, 1))))
    return int(max(1, min(m, memory_budget // (8.0 * n * s * 6))))


def compute_slices(
    proj_x: Projector,
    proj_y: Projector | None,
    labels: np.ndarray | None,
    frames_x: np.ndarray,
    frames_y: np.ndarray | None,
    solve: SliceSolver,
    *,
    permutations: list[np.ndarray],
    groups: list[tuple[np.ndarray, np.ndarray]],
    step: int,
    n_jobs: int = 1,
    influence: bool = False,
) -> SliceOutput:
    """Every slice's MI, its value after each y shuffle, and the replicate groups' values.

    Args:
        proj_x, proj_y: projectors of x and y (``proj_y`` None and ``labels`` (n,) for labels).
        frames_x: (m, dx, s); frames_y: (m, dy, t) or None.
        solve: the base estimator on a block (:class:`SliceSolver`).
        permutations: row orders of y for the null values (same slices, same projections).
        groups: (slice indices, sorted row subset) per replicate: the slices are re-estimated
            on those rows (re-standardised), reusing the block's projections.
        step: slices per block; n_jobs: blocks run on that many threads.
        influence: also accumulate the per-point sums of centred terms (``solve.with_terms``).
    Returns:
        :class:`SliceOutput`; ``group_values[b]`` follows ``groups[b][0]``.
    """
    m = frames_x.shape[0]
    n = proj_x.n
    values = np.empty(m)
    null_values = np.empty((len(permutations), m))
    group_values = [np.empty(len(idx)) for idx, _ in groups]
    blocks = [slice(a, min(a + step, m)) for a in range(0, m, step)]

    def run(sl: slice) -> tuple[np.ndarray, np.ndarray] | None:
        xr = proj_x.rows(frames_x[sl])
        yr = labels if proj_y is None else proj_y.rows(frames_y[sl])
        sums = None
        if influence:
            values[sl], terms = solve.with_terms(xr, yr)
            terms -= terms.mean(axis=1, keepdims=True)
            sums = (terms.sum(axis=0), (terms * terms).sum(axis=0))
        else:
            values[sl] = solve(xr, yr)
        for p, perm in enumerate(permutations):
            null_values[p, sl] = solve(xr, yr[perm] if proj_y is None else yr[..., perm])
        for b, (idx, rows) in enumerate(groups):
            inside = np.flatnonzero((idx >= sl.start) & (idx < sl.stop))
            if inside.size == 0:
                continue
            local = idx[inside] - sl.start
            xs = restandardize(xr[local][..., rows])
            ys = yr[rows] if proj_y is None else restandardize(yr[local][..., rows])
            group_values[b][inside] = solve(xs, ys)
        return sums

    if n_jobs > 1 and len(blocks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            parts = list(pool.map(run, blocks))
    else:
        parts = [run(sl) for sl in blocks]
    out = SliceOutput(values, null_values, group_values)
    if influence:
        out.point_sum = np.sum([p[0] for p in parts], axis=0) if parts else np.zeros(n)
        out.point_sumsq = np.sum([p[1] for p in parts], axis=0) if parts else np.zeros(n)
    return out


def slices_error(values: np.ndarray, point_sum: np.ndarray, point_sumsq: np.ndarray
                 ) -> tuple[float, float]:
    """Standard error of the slice average from the slices' per-point terms; (std, common sd).

    Each slice's estimate is a constant plus the mean of its per-point terms t_ij, so the
    covariance of two slices' estimates over data sets is ~ (1/n) Cov(t_ij, t_ij') (the
    delta method: the terms are the estimated influence of point i). The part of the variance
    all slices share is their average covariance over pairs j != j',

        V = (1/n) mean_i [ (sum_j c_ij)^2 - sum_j c_ij^2 ] / (m (m - 1)),   c: centred terms,

    (the diagonal j = j' is left out: each slice's own noise averages out over slices and is
    counted by the second term), and Var(SMI) = V + slice_sd^2 / m. With one slice, V is the
    slice's own (1/n) mean_i c_i^2.
    """
    m = len(values)
    n = len(point_sum)
    if m == 1:
        return math.sqrt(float(point_sumsq.mean()) / n), math.nan
    common = float(np.mean(point_sum * point_sum - point_sumsq)) / (m * (m - 1)) / n
    common = max(common, 0.0)
    v_slices = float(values.var(ddof=1)) / m
    return math.sqrt(common + v_slices), math.sqrt(common)
