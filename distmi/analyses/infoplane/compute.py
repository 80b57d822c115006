"""The numbers of one plane work unit: I(X; L) and I(L; Y) with error bars and nulls.

Sliced method (per unit): X and L are projected on m random directions each (X's directions
shared by every unit, L's by every epoch of the layer), standardised and jittered
(:class:`distmi.estimators.sliced_compute.Projector`), and the base estimator runs on every
slice as one batch:

    I(X; L) ~ mean_j I(theta_j^T X; phi_j^T L),     I(L; Y) ~ mean_j I(phi_j^T L; Y).

Error bars come from the slices' per-point terms (``resample="slices"`` of sliced MI: the
shared part of the slices' sampling covariance plus the slice-average noise), where the base
gives per-point terms (WKL, and KSG for I(X; L)); KSG's label estimator (Ross 2014) has none,
so I(L; Y) with the KSG base uses half-samples on slice groups. The null is the same
statistic after shuffling the rows of L against X (and the labels against L).

PCA method: X and L are replaced by their first p principal components, and a registry
estimator (``"ksg"`` with half-sample CIs, ``"gmm"`` with bootstrap CIs) estimates
I(X_p; L_p) and I(L_p; Y); its null shuffles the rows likewise.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from distmi.core.seeds import derive_rng
from distmi.estimators.sliced import SlicedConfig, slice_group_error, slice_groups
from distmi.estimators.sliced_compute import (
    Projector,
    SliceSolver,
    block_size,
    slices_error,
)
from distmi.kernels.slicing import random_frames

QUANTITIES = ("i_xl", "i_ly")


@dataclass
class Estimate:
    """One quantity of one unit: value, std, interval, null and how the error was obtained."""

    value: float
    std: float
    ci_low: float
    ci_high: float
    null: float
    error: str
    extra: dict[str, Any] = field(default_factory=dict)


def _interval(value: float, std: float, level: float = 0.95) -> tuple[float, float]:
    z = float(norm.ppf(0.5 + level / 2))
    return value - z * std, value + z * std


@dataclass
class _Acc:
    """Per-slice values of one quantity, its null values and per-point term sums."""

    values: np.ndarray
    nulls: np.ndarray
    point_sum: np.ndarray
    point_sumsq: np.ndarray
    groups: list[np.ndarray] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def empty(cls, m: int, n: int, n_perm: int, group_sizes: list[int]) -> _Acc:
        return cls(np.empty(m), np.empty((n_perm, m)), np.zeros(n), np.zeros(n),
                   [np.empty(g) for g in group_sizes])

    def add_terms(self, terms: np.ndarray) -> None:
        """Accumulate a block's per-point terms (mb, n) (centred per slice)."""
        c = terms - terms.mean(axis=1, keepdims=True)
        total, total_sq = c.sum(axis=0), (c * c).sum(axis=0)
        with self.lock:  # numpy's in-place add releases the GIL: blocks may run on threads
            self.point_sum += total
            self.point_sumsq += total_sq


class SlicedPlane:
    """Sliced-MI plane numbers for one probe set: X (n, d_x) and labels (n,) stay fixed.

    Slices are processed in blocks; per block the layer is projected once and serves both
    quantities and their nulls. With the WKL base the X side of every block (standardised
    projections, their order, H(theta^T X) and its per-point terms) is kept for all units, so
    a unit pays only for the layer's 1-D entropies, the class-conditional ones and the joint
    2-D term: I(X; L)_j = H(theta_j^T X) + H(phi_j^T L) - H(theta_j^T X, phi_j^T L) and
    I(L; Y)_j = H(phi_j^T L) - sum_c p_c H(phi_j^T L | c).

    Args:
        x: the input layer; labels: integer class codes; cfg: sliced settings (``base``,
            ``n_slices``, ``k``, ``n_jobs``...); seed: the job's root seed (slices);
            n_bootstrap: replicates of the slice-group scheme (KSG's I(L; Y)); n_permutations:
            shuffles for the nulls.
    """

    def __init__(self, x: np.ndarray, labels: np.ndarray, cfg: SlicedConfig, seed: int,
                 n_bootstrap: int, n_permutations: int) -> None:
        from distmi.estimators.wkl_compute import class_groups

        self.cfg = cfg
        self.seed = seed
        self.labels = labels
        self.n = len(labels)
        self.n_bootstrap = n_bootstrap
        self.n_permutations = n_permutations
        self.proj_x = Projector(x, seed, "x", cfg.jitter)
        self.frames_x = random_frames(x.shape[1], cfg.n_slices, 1, seed, "infoplane", "x")
        m = cfg.n_slices
        step = block_size(self.n, 1, cfg.base, cfg.memory_budget, m)
        self.blocks = [slice(a, min(a + step, m)) for a in range(0, m, step)]
        self._x_side: dict[int, tuple] = {}
        self._frames: dict[tuple[str, int], np.ndarray] = {}
        self.wkl = cfg.wkl_config()
        self.solve_xl = SliceSolver(cfg.base, False, cfg.ksg_config(), self.wkl, seed, {})
        self.solve_ly = SliceSolver(cfg.base, True, cfg.ksg_config(), self.wkl, seed, {})
        self.groups_y = class_groups(labels)
        self.codes_y = _class_codes(labels)

    def frames(self, layer: str, d: int) -> np.ndarray:
        """The layer's slices (the same at every epoch)."""
        key = (layer, d)
        if key not in self._frames:
            self._frames[key] = random_frames(d, self.cfg.n_slices, 1, self.seed, "infoplane",
                                              "layer", layer)
        return self._frames[key]

    def _x_block(self, b: int) -> tuple:
        """X side of block b: rows (mb, n) [, order, H, per-point terms for WKL] (kept)."""
        if b not in self._x_side:
            rows = self.proj_x.rows(self.frames_x[self.blocks[b]])[:, 0]
            if self.cfg.base == "wkl":
                from distmi.estimators.wkl_compute import entropy_rows_1d_terms

                order = np.argsort(rows, axis=1)
                h, e = entropy_rows_1d_terms(rows, self.wkl, order)
                self._x_side[b] = (rows, order, h, e)
            else:
                self._x_side[b] = (rows,)
        return self._x_side[b]

    def estimate(self, layer: str, acts: np.ndarray, unit_seed: int) -> dict[str, Estimate]:
        """I(X; L) and I(L; Y) of one unit; ``acts`` (n, d_l) are the layer's activations."""
        m, n = self.cfg.n_slices, self.n
        proj_l = Projector(acts, self.seed, "y", self.cfg.jitter)
        frames_l = self.frames(layer, acts.shape[1])
        perms = [derive_rng(unit_seed, "null", p).permutation(n)
                 for p in range(self.n_permutations)]
        wkl = self.cfg.base == "wkl"
        groups = ([] if wkl or self.n_bootstrap < 2
                  else slice_groups(m, self.n_bootstrap, n, unit_seed))
        acc_xl = _Acc.empty(m, n, len(perms), [])
        acc_ly = _Acc.empty(m, n, len(perms), [len(g) for g, _ in groups])

        def run(b: int) -> None:
            sl = self.blocks[b]
            lr = proj_l.rows(frames_l[sl])[:, 0]  # (mb, n)
            if wkl:
                self._wkl_block(b, sl, lr, perms, acc_xl, acc_ly)
            else:
                self._ksg_block(b, sl, lr, perms, groups, acc_xl, acc_ly)

        if self.cfg.n_jobs > 1 and len(self.blocks) > 1:
            from concurrent.futures import ThreadPoolExecutor

            # blocks write disjoint slices of the values; term sums are added under a lock
            with ThreadPoolExecutor(max_workers=self.cfg.n_jobs) as pool:
                list(pool.map(run, range(len(self.blocks))))
        else:
            for b in range(len(self.blocks)):
                run(b)
        return {"i_xl": self._summary(acc_xl, "slices", []),
                "i_ly": self._summary(acc_ly, "slices" if wkl else "slice-groups", groups)}

    def _wkl_block(self, b: int, sl: slice, lr: np.ndarray, perms: list, acc_xl: _Acc,
                   acc_ly: _Acc) -> None:
        from distmi.estimators.wkl_compute import entropy_rows_1d_terms
        from distmi.kernels.wkl import entropy_from_mean_logs, mean_log_knn_2d

        xr, ox, hx, ex = self._x_block(b)
        cfg = self.wkl
        ol = np.argsort(lr, axis=1)
        hl, el = entropy_rows_1d_terms(lr, cfg, ol)
        plan = cfg.plan(2, self.n)

        def joint(rows_l: np.ndarray, order_l: np.ndarray, terms: bool):
            out = mean_log_knn_2d(xr, rows_l, plan.orders, cfg.metric, ox, order_l,
                                  weights=plan.weights if terms else None)
            ml = out[0] if terms else out
            h = entropy_from_mean_logs(ml, plan.orders, plan.weights, self.n, 2, cfg.metric)
            return (h, 2.0 * out[1]) if terms else h

        hxy, exy = joint(lr, ol, True)
        acc_xl.values[sl] = hx + hl - hxy
        acc_xl.add_terms(ex + el - exy)
        value, terms = self._class_part(lr, ol, self.labels, hl, el)
        acc_ly.values[sl] = value
        acc_ly.add_terms(terms)
        for p, perm in enumerate(perms):
            inverse = np.empty_like(perm)
            inverse[perm] = np.arange(len(perm))
            acc_xl.nulls[p, sl] = hx + hl - joint(lr[:, perm], inverse[ol], False)
            acc_ly.nulls[p, sl] = self._class_part(lr, ol, self.labels[perm], hl, None)[0]

    def _class_part(self, lr: np.ndarray, order: np.ndarray, labels: np.ndarray,
                    hl: np.ndarray, el: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """H(L) - sum_c p_c H(L | c) per slice, and its per-point terms when ``el`` is given.

        ``order``: the rows' argsorts. A stable sort of the class codes along each sorted row
        lays the classes out one after the other, each still sorted, so no class is sorted
        again: class c holds columns [start_c, start_c + n_c) of every row.
        """
        from distmi.estimators.wkl_compute import entropy_rows_1d, entropy_sorted_rows_1d_terms

        keep, members, weights = (self.groups_y if labels is self.labels
                                  else _class_groups(labels))
        if not keep.all():  # single-member classes are left out of H(L) too
            from distmi.estimators.wkl_compute import mi_rows_labels_terms

            if el is None:
                from distmi.estimators.wkl_compute import mi_rows_labels

                return mi_rows_labels(lr, labels, self.wkl), None
            return mi_rows_labels_terms(lr, labels, self.wkl)
        codes = self.codes_y if labels is self.labels else _class_codes(labels)
        by_class = np.take_along_axis(order, np.argsort(codes[order], axis=1, kind="stable"), 1)
        grouped = np.take_along_axis(lr, by_class, 1)
        value = hl.copy()
        terms = None if el is None else el.copy()
        rows = np.arange(len(lr))[:, None]
        start = 0
        for idx, p in zip(members, weights, strict=True):
            cols = slice(start, start + idx.size)
            start += idx.size
            sub = np.ascontiguousarray(grouped[:, cols])
            if terms is None:
                value -= p * entropy_rows_1d(sub, self.wkl, presorted=True)
            else:
                h_c, e_c = entropy_sorted_rows_1d_terms(sub, self.wkl)
                value -= p * h_c
                terms[rows, by_class[:, cols]] -= e_c
        return value, terms

    def _ksg_block(self, b: int, sl: slice, lr: np.ndarray, perms: list, groups: list,
                   acc_xl: _Acc, acc_ly: _Acc) -> None:
        from distmi.estimators.sliced_compute import restandardize

        (xr,) = self._x_block(b)
        x3, l3 = xr[:, None, :], lr[:, None, :]
        acc_xl.values[sl], terms = self.solve_xl.with_terms(x3, l3)
        acc_xl.add_terms(terms)
        acc_ly.values[sl] = self.solve_ly(l3, self.labels)
        for p, perm in enumerate(perms):
            acc_xl.nulls[p, sl] = self.solve_xl(x3, l3[..., perm])
            acc_ly.nulls[p, sl] = self.solve_ly(l3, self.labels[perm])
        for g, (idx, rows) in enumerate(groups):
            inside = np.flatnonzero((idx >= sl.start) & (idx < sl.stop))
            if inside.size:
                sub = restandardize(l3[idx[inside] - sl.start][..., rows])
                acc_ly.groups[g][inside] = self.solve_ly(sub, self.labels[rows])

    def _summary(self, acc: _Acc, error: str, groups: list) -> Estimate:
        m = self.cfg.n_slices
        value = float(acc.values.mean())
        if self.n_bootstrap == 0:
            std, error = float(acc.values.std(ddof=1)) / math.sqrt(m), "slice_se"
        elif error == "slices":
            std, _ = slices_error(acc.values, acc.point_sum, acc.point_sumsq)
        elif groups:
            std = slice_group_error(value, acc.values, [g for g, _ in groups], acc.groups,
                                    self.n, self.cfg.ci_level)["std"]
        else:
            std, error = float(acc.values.std(ddof=1)) / math.sqrt(m), "slice_se"
        low, high = _interval(value, std, self.cfg.ci_level)
        null = float(acc.nulls.mean()) if self.n_permutations else math.nan
        return Estimate(value, std, low, high, null, error,
                        {"slice_sd": float(acc.values.std(ddof=1))})


def _class_codes(labels: np.ndarray) -> np.ndarray:
    """Each point's class index 0..C-1 in sorted class order (int16 where it fits, so numpy's
    stable argsort of the codes is a radix sort)."""
    codes = np.unique(labels, return_inverse=True)[1].reshape(-1)
    return codes.astype(np.int16 if codes.max(initial=0) < 2**15 else np.int64)


def _class_groups(labels: np.ndarray):
    from distmi.estimators.wkl_compute import class_groups

    return class_groups(labels)


def pca_scores(data: np.ndarray, p: int) -> np.ndarray:
    """The first p principal-component scores of data (n, d) (exact SVD, sign-fixed so the
    largest loading of each component is positive: deterministic)."""
    centred = data - data.mean(axis=0)
    keep = np.ptp(centred, axis=0) > 0
    centred = centred[:, keep]
    if centred.shape[1] == 0:
        return np.zeros((len(data), 1))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[: min(p, vt.shape[0])]
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    return centred @ (vt * signs[:, None]).T


class PCAPlane:
    """Plane numbers of PCA-compressed X and L with a registry estimator (``ksg`` or ``gmm``)."""

    def __init__(self, x: np.ndarray, labels: np.ndarray, n_components: int, estimator: str,
                 params: dict[str, Any], n_bootstrap: int, n_permutations: int) -> None:
        from distmi.estimators.registry import get_method

        self.spec = get_method(estimator)
        self.x = pca_scores(x, n_components)
        self.labels = labels
        self.p = n_components
        self.params = dict(params)
        self.n_bootstrap = n_bootstrap
        self.n_permutations = n_permutations

    def _run(self, a: np.ndarray, b: np.ndarray, discrete: bool, seed: int) -> Estimate:
        res = self.spec.estimate(a, b, discrete_y=discrete, n_bootstrap=self.n_bootstrap,
                                 random_state=seed, **self.params)
        nulls = [
            self.spec.estimate(a, b[derive_rng(seed, "null", k).permutation(len(b))],
                               discrete_y=discrete, n_bootstrap=0, random_state=seed,
                               **self.params).value
            for k in range(self.n_permutations)
        ]
        std = res.std if np.isfinite(res.std) else math.nan
        return Estimate(res.value, std, res.ci[0], res.ci[1],
                        float(np.mean(nulls)) if nulls else math.nan,
                        str(res.diagnostics.get("error_method", self.spec.name)),
                        {"dims": [int(a.shape[1]), int(b.shape[1]) if b.ndim == 2 else 0]})

    def estimate(self, layer: str, acts: np.ndarray, unit_seed: int) -> dict[str, Estimate]:
        lp = pca_scores(acts, self.p)
        seeds = [int(derive_rng(unit_seed, q).integers(2**31)) for q in QUANTITIES]
        return {"i_xl": self._run(self.x, lp, False, seeds[0]),
                "i_ly": self._run(lp, self.labels, True, seeds[1])}
