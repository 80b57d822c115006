"""Batched WKL entropies and mutual informations on prepared samples.

Inputs are already standardised and jittered (:func:`distmi.estimators.ksg_config.prepare_rows`)
where MI is wanted: MI is invariant to rescaling each variable, entropies are not, so
:func:`distmi.estimators.wkl.wkl_entropy` jitters without standardising.

    I(X; Y)     = H_w(X) + H_w(Y) - H_w(X, Y)              (continuous Y)
    I(X; Y)     = H_w(X) - sum_c p_c H_w(X | Y = c)        (labels; empirical class prior)

Each entropy term gets its own neighbours and weights for its dimension
(:meth:`distmi.estimators.wkl_config.WKLConfig.plan`). Points of classes with a single member
are left out (their conditional entropy is undefined), as the Ross (2014) KSG variant does.

Shapes: "rows" are B problems of n points in one dimension, (B, n); "nd" problems are
(G, n, d). Every problem's value is independent of the batch it is solved in.

**Per-point terms.** Every estimate here is a constant plus a mean over points,
H_w = c + (1/n) sum_i e_i with e_i = d sum_j w_j log rho_(j),i, so MI = c' + (1/n) sum_i t_i
with t_i = e_i(X) + e_i(Y) - e_i(X, Y) (labels: t_i = e_i(X) - e_i(X | class of i)). The
``*_terms`` functions return t (B, n) in the original point order; sliced MI uses them for its
error bar (:mod:`distmi.estimators.sliced_compute`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from distmi.estimators.wkl_config import WKLConfig
from distmi.kernels.wkl import (
    entropy_from_mean_logs,
    mean_log_knn_1d,
    mean_log_knn_2d,
    mean_log_knn_nd,
)

_ROWS_BUDGET = 1 << 17  # points per kernel call (keeps arrays cache-sized)


def run_row_blocks(fn: Callable[[slice], np.ndarray], n_rows: int, n: int, n_jobs: int
                   ) -> np.ndarray:
    """Concatenate ``fn(rows)`` over blocks of about 2^17 points, on ``n_jobs`` threads.

    The compiled kernels release the GIL, so threads run blocks in parallel; a row's value does
    not depend on the blocking.
    """
    step = max(1, _ROWS_BUDGET // max(n, 1))
    blocks = [slice(s, min(s + step, n_rows)) for s in range(0, n_rows, step)]
    if n_jobs > 1 and len(blocks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            parts = list(pool.map(fn, blocks))
    else:
        parts = [fn(sl) for sl in blocks]
    if parts and isinstance(parts[0], tuple):
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))
    return np.concatenate(parts) if parts else np.empty(0)


def _use_compiled(cfg: WKLConfig) -> bool:
    from distmi.kernels.wkl_compiled import HAVE_NUMBA

    if cfg.backend == "compiled" and not HAVE_NUMBA:
        from distmi.core.errors import InvalidParameterError

        raise InvalidParameterError(
            "backend='compiled' needs numba, which is not installed; install it "
            "(pip install numba) or use backend='kdtree'."
        )
    return cfg.device == "cpu" and cfg.backend in ("auto", "compiled", "sorted") and HAVE_NUMBA


def entropy_rows_1d(rows: np.ndarray, cfg: WKLConfig, *, presorted: bool = False) -> np.ndarray:
    """H_w of B one-dimensional samples, (B, n) -> (B,) nats."""
    b, n = rows.shape
    plan = cfg.plan(1, n)
    if cfg.backend in ("kdtree", "brute"):
        ml = mean_log_knn_nd(rows[..., None], plan.orders, cfg.metric, cfg.backend, cfg.device,
                             cfg.workers, cfg.memory_budget)
    else:
        ml = run_row_blocks(
            lambda sl: mean_log_knn_1d(rows[sl], plan.orders, presorted=presorted), b, n,
            cfg.n_jobs)
    return entropy_from_mean_logs(ml, plan.orders, plan.weights, n, 1, cfg.metric)


def entropy_rows_2d(x: np.ndarray, y: np.ndarray, cfg: WKLConfig,
                    order_x: np.ndarray | None = None, order_y: np.ndarray | None = None
                    ) -> np.ndarray:
    """H_w of B two-dimensional samples (x_i, y_i), x and y (B, n) -> (B,) nats."""
    b, n = x.shape
    plan = cfg.plan(2, n)
    if _use_compiled(cfg):
        def block(sl: slice) -> np.ndarray:
            return mean_log_knn_2d(x[sl], y[sl], plan.orders, cfg.metric,
                                   None if order_x is None else order_x[sl],
                                   None if order_y is None else order_y[sl])

        ml = run_row_blocks(block, b, n, cfg.n_jobs)
    else:
        ml = mean_log_knn_nd(np.stack([x, y], axis=-1), plan.orders, cfg.metric,
                             "brute" if cfg.backend == "brute" or cfg.device != "cpu" else "kdtree",
                             cfg.device, cfg.workers, cfg.memory_budget)
    return entropy_from_mean_logs(ml, plan.orders, plan.weights, n, 2, cfg.metric)


def entropy_nd(z: np.ndarray, cfg: WKLConfig) -> np.ndarray:
    """H_w of G samples z (G, n, d) -> (G,) nats, with the fastest kernel for d."""
    _, n, d = z.shape
    if d == 1:
        return entropy_rows_1d(np.ascontiguousarray(z[..., 0]), cfg)
    if d == 2 and _use_compiled(cfg):
        return entropy_rows_2d(np.ascontiguousarray(z[..., 0]), np.ascontiguousarray(z[..., 1]),
                               cfg)
    plan = cfg.plan(d, n)
    backend = "brute" if cfg.backend == "brute" or cfg.device != "cpu" else "kdtree"
    ml = mean_log_knn_nd(z, plan.orders, cfg.metric, backend, cfg.device, cfg.workers,
                         cfg.memory_budget)
    return entropy_from_mean_logs(ml, plan.orders, plan.weights, n, d, cfg.metric)


def mi_rows(x: np.ndarray, y: np.ndarray, cfg: WKLConfig) -> np.ndarray:
    """I(x_b; y_b) of B pairs of one-dimensional samples, (B, n) each -> (B,) nats."""
    ox = np.argsort(x, axis=1)
    oy = np.argsort(y, axis=1)
    hx = entropy_rows_1d(np.take_along_axis(x, ox, 1), cfg, presorted=True)
    hy = entropy_rows_1d(np.take_along_axis(y, oy, 1), cfg, presorted=True)
    return hx + hy - entropy_rows_2d(x, y, cfg, ox, oy)


def _unsort(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    out = np.empty_like(values)
    np.put_along_axis(out, order, values, axis=1)
    return out


def entropy_rows_1d_terms(rows: np.ndarray, cfg: WKLConfig, order: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """H_w of B 1-D samples (B, n) and the per-point terms e (B, n), original order.

    ``order``: the rows' argsorts if known. Needs the compiled or numpy sorted path.
    """
    order = np.argsort(rows, axis=1) if order is None else order
    h, pts = entropy_sorted_rows_1d_terms(np.take_along_axis(rows, order, 1), cfg)
    return h, _unsort(pts, order)


def entropy_sorted_rows_1d_terms(xs: np.ndarray, cfg: WKLConfig
                                 ) -> tuple[np.ndarray, np.ndarray]:
    """H_w of B 1-D samples whose rows are sorted ascending (B, n), and the per-point terms
    e (B, n) in that sorted order."""
    b, n = xs.shape
    plan = cfg.plan(1, n)
    ml, pts = run_row_blocks(
        lambda sl: mean_log_knn_1d(xs[sl], plan.orders, presorted=True, weights=plan.weights),
        b, n, cfg.n_jobs)
    return entropy_from_mean_logs(ml, plan.orders, plan.weights, n, 1, cfg.metric), pts


def mi_rows_terms(x: np.ndarray, y: np.ndarray, cfg: WKLConfig) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mi_rows` and the per-point terms t (B, n) (see module docstring)."""
    b, n = x.shape
    ox = np.argsort(x, axis=1)
    oy = np.argsort(y, axis=1)
    hx, ex = entropy_rows_1d_terms(x, cfg, ox)
    hy, ey = entropy_rows_1d_terms(y, cfg, oy)
    plan = cfg.plan(2, n)
    if not _use_compiled(cfg):
        raise ValueError("per-point WKL terms of 2-D samples need the compiled backend")
    ml, pts = run_row_blocks(
        lambda sl: mean_log_knn_2d(x[sl], y[sl], plan.orders, cfg.metric, ox[sl], oy[sl],
                                   weights=plan.weights), b, n, cfg.n_jobs)
    hxy = entropy_from_mean_logs(ml, plan.orders, plan.weights, n, 2, cfg.metric)
    return hx + hy - hxy, ex + ey - 2.0 * pts


def class_groups(labels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(kept points mask (n,), member indices per kept class, class weights p_c) for labels (n,).

    Classes with a single member are dropped; p_c = n_c / (number of kept points).
    """
    codes, counts = np.unique(labels, return_counts=True)
    kept_codes = codes[counts >= 2]
    keep = np.isin(labels, kept_codes)
    members = [np.flatnonzero(labels == c) for c in kept_codes]
    total = max(int(keep.sum()), 1)
    weights = np.array([m.size / total for m in members])
    return keep, members, weights


def mi_rows_labels(x: np.ndarray, labels: np.ndarray, cfg: WKLConfig) -> np.ndarray:
    """I(x_b; Y) of B one-dimensional samples (B, n) with one shared label vector (n,)."""
    keep, members, weights = class_groups(labels)
    xk = x if keep.all() else x[:, keep]
    value = entropy_rows_1d(xk, cfg)
    for idx, p in zip(members, weights, strict=True):
        value = value - p * entropy_rows_1d(np.ascontiguousarray(x[:, idx]), cfg)
    return value


def mi_rows_labels_terms(x: np.ndarray, labels: np.ndarray, cfg: WKLConfig
                         ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mi_rows_labels` and the per-point terms t (B, n); points of single-member
    classes (left out of the estimate) get their row's mean term."""
    b, n = x.shape
    keep, members, weights = class_groups(labels)
    kept = np.flatnonzero(keep)
    value, e_all = entropy_rows_1d_terms(np.ascontiguousarray(x[:, kept]), cfg)
    terms = np.empty((b, n))
    terms[:, kept] = e_all
    for idx, p in zip(members, weights, strict=True):
        h_c, e_c = entropy_rows_1d_terms(np.ascontiguousarray(x[:, idx]), cfg)
        value = value - p * h_c
        terms[:, idx] -= e_c
    if kept.size < n:
        terms[:, ~keep] = terms[:, kept].mean(axis=1, keepdims=True)
    return value, terms


def mi_nd(x: np.ndarray, y: np.ndarray, cfg: WKLConfig) -> np.ndarray:
    """I(X_g; Y_g) of G problems, x (G, n, dx), y (G, n, dy) -> (G,) nats."""
    if x.shape[2] == 1 and y.shape[2] == 1:
        return mi_rows(np.ascontiguousarray(x[..., 0]), np.ascontiguousarray(y[..., 0]), cfg)
    return entropy_nd(x, cfg) + entropy_nd(y, cfg) - entropy_nd(np.concatenate([x, y], -1), cfg)


def mi_nd_labels(x: np.ndarray, labels: np.ndarray, cfg: WKLConfig) -> np.ndarray:
    """I(X_g; Y) of G problems x (G, n, dx) sharing one label vector (n,) -> (G,) nats."""
    if x.shape[2] == 1:
        return mi_rows_labels(np.ascontiguousarray(x[..., 0]), labels, cfg)
    keep, members, weights = class_groups(labels)
    value = entropy_nd(x if keep.all() else x[:, keep], cfg)
    for idx, p in zip(members, weights, strict=True):
        value = value - p * entropy_nd(np.ascontiguousarray(x[:, idx]), cfg)
    return value
