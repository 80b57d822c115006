"""The registry method ``"nif-link"``: a base estimator plus NIF's replicates and rank statistic.

NIF's link estimation runs as ordinary engine jobs (``adjacent-layers``, ``unit-unit`` and
``unit-target`` pairs), so its numbers are the same in this process and on Ray actors. What a
job's worker computes for a batch of pairs is this method:

1. the **estimate** of every pair with the base estimator (``base``, e.g. ``"ksg"``), seeded by
   the engine's seed of the pair's group;
2. ``n_bootstrap`` **half-sample replicates**: the base estimate on r = n // 2 rows drawn
   without replacement. The row subsets come from ``replicate_seed`` and the replicate index
   only, so replicate b uses the same rows for every link of the network: propagating
   replicate b through the chain of link matrices (eq. 4) is a replicate of the attribution.
   Half-samples (the delete-d jackknife, Shao & Wu 1989) are used instead of resampling with
   replacement because duplicated rows are zero-distance neighbours that bias k-NN estimators
   upwards. With d = n - r = r the jackknife variance is the plain variance of the replicates,
   and the 95 % interval is the estimate plus the centred replicate percentiles, exactly as
   KSG's own error bars (:func:`distmi.estimators.ksg_config.half_sample_error`). (The basic
   interval 2 theta - q would also shift by the half-sample mean's distance to theta, which
   for k-NN estimators is noise, not bias: it covered 83 % instead of 94 % in the tests.);
3. with ``rank_test``, the **rank statistic** of the zero-flow test: KSG (Ross's estimator for a
   class indicator) on the ranks of both columns, ties broken in a random order drawn from
   ``tie_seed`` and the column (:func:`tie_key`). Under independence the two rank vectors are
   independent uniform permutations whatever the columns' distributions (ReLU zeros
   included), so one permutation
   null table per sample size (and class count) serves every link
   (:mod:`distmi.analyses.nif.zeroflow`).

Replicates travel through the engine's result table as a JSON list in the diagnostics. A
column that is constant on a half-sample has MI 0 with everything on that replicate.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import partial
from typing import Any

import numpy as np

from distmi.core.errors import InvalidParameterError
from distmi.core.results import MIResult
from distmi.core.seeds import derive_rng
from distmi.estimators.registry import MethodSpec, get_method, register_method

METHOD_NAME = "nif-link"
_RANK_K = 3


def half_sample_rows(seed: int, replicate: int, n: int) -> np.ndarray:
    """Sorted row indices of replicate ``replicate``: n // 2 rows without replacement."""
    return np.sort(derive_rng(seed, "nif", "half-sample", replicate).permutation(n)[: n // 2])


def tie_key(seed: int, role: str, column: np.ndarray) -> np.ndarray:
    """The random key (n,) that orders the tied values of one column.

    It is drawn from the seed, the role and a hash of the column's values, so it is the same
    for the same column in any batch or process, and independent between different columns:
    every link gets its own tie-breaking (one key shared by all columns would give heavily
    tied pairs, e.g. two mostly-zero ReLU units, nearly the same statistic whatever the data).
    """
    digest = hashlib.blake2b(np.ascontiguousarray(column, np.float64).tobytes(),
                             digest_size=8).hexdigest()
    return derive_rng(seed, "nif", "rank-ties", role, digest).random(len(column))


def rank_columns(values: np.ndarray, seed: int, role: str) -> np.ndarray:
    """Ranks 0..n-1 (float64) of each column of ``values`` (n, k), ties in random order
    (:func:`tie_key`)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty(values.shape, dtype=np.float64)
    ar = np.arange(values.shape[0], dtype=np.float64)
    for j in range(values.shape[1]):
        col = values[:, j]
        order = np.lexsort((tie_key(seed, role, col), col))
        out[order, j] = ar
    return out


def half_sample_intervals(values: np.ndarray, reps: np.ndarray, n: int, level: float = 0.95
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(std, low, high), each (P,), from half-sample replicates (P, B) of estimates (P,).

    The delete-d jackknife error of :func:`distmi.estimators.ksg_config.half_sample_error`
    per estimate; NaN where fewer than 2 finite replicates exist.
    """
    from distmi.estimators.ksg_config import half_sample_error

    values = np.asarray(values, dtype=np.float64)
    reps = np.asarray(reps, dtype=np.float64)
    std = np.full(values.shape, math.nan)
    low, high = std.copy(), std.copy()
    for p in range(values.size):
        r = reps[p][np.isfinite(reps[p])]
        if r.size >= 2 and np.isfinite(values[p]):
            std[p], (low[p], high[p]) = half_sample_error(float(values[p]), r, n, level)
    return std, low, high


def _constant(col: np.ndarray) -> bool:
    """The engine's rule for a unit that cannot be estimated (distmi.engine.worker)."""
    return bool(np.ptp(col) <= 1e-12 * max(float(np.abs(col).max()), 1.0))


def _usable_labels(labels: np.ndarray) -> bool:
    counts = np.bincount(labels)
    return int((counts > 0).sum()) >= 2 and int(counts.max()) >= 2


def _estimate_masked(spec: MethodSpec, X: np.ndarray, Y: np.ndarray, pairs: np.ndarray,
                     discrete_y: bool, seed: int, params: dict[str, Any]) -> np.ndarray:
    """Base estimates (P,) on these rows; pairs with a constant column get exactly 0."""
    x_ok = np.array([not _constant(X[:, i]) for i in range(X.shape[1])])
    if discrete_y:
        y_ok = np.full(1, _usable_labels(Y))
        ok = x_ok[pairs[:, 0]] & y_ok[0]
    else:
        y_ok = np.array([not _constant(Y[:, j]) for j in range(Y.shape[1])])
        ok = x_ok[pairs[:, 0]] & y_ok[pairs[:, 1]]
    out = np.zeros(len(pairs))
    if ok.any():
        res = spec.estimate_pairs(X, Y, pairs[ok], discrete_y=discrete_y, n_bootstrap=0,
                                  random_state=seed, **params)
        out[ok] = [r.value for r in res]
    return out


def rank_statistics(X: np.ndarray, Y: np.ndarray, pairs: np.ndarray, discrete_y: bool,
                    tie_seed: int) -> np.ndarray:
    """KSG (k=3) on ranks for each pair (see module docstring), shape (P,)."""
    ksg = get_method("ksg")
    rx = rank_columns(X, tie_seed, "x")
    ry = Y if discrete_y else rank_columns(Y, tie_seed, "y")
    res = ksg.estimate_pairs(rx, ry, pairs, discrete_y=discrete_y, n_bootstrap=0,
                             random_state=tie_seed, k=_RANK_K)
    return np.array([r.value for r in res])


def estimate_pairs(
    X: np.ndarray, Y: np.ndarray, pairs: np.ndarray, *, discrete_y: bool, n_bootstrap: int,
    random_state: int, base: str = "ksg", base_params: dict[str, Any] | None = None,
    replicate_seed: int = 0, rank_test: bool = False, tie_seed: int = 0,
    data_sha256: str | None = None,
) -> list[MIResult]:
    """Estimates, common half-sample replicates and rank statistics of column pairs.

    Args:
        X: (n, p) x columns; Y: (n, q) y columns, or (n,) label codes when ``discrete_y``.
        pairs: (P, 2) column indices into X and Y.
        n_bootstrap: number of half-sample replicates.
        random_state: seed of the base estimator (the engine's seed of this pair group).
        base, base_params: the registry method of the links and its parameters.
        replicate_seed: seed of the half-sample row subsets, shared by every link.
        rank_test: also compute the rank statistic of the zero-flow test.
        tie_seed: seed of the rank tie-breaking keys.
        data_sha256: identity of the data (recorded in the job so results never go stale).
    """
    del data_sha256  # part of the job's identity only
    params = dict(base_params or {})
    if base == METHOD_NAME:
        raise InvalidParameterError(f"base must be another registry method, not {METHOD_NAME!r}.")
    spec = get_method(base)
    if spec.estimate_pairs is None:
        raise InvalidParameterError(
            f"method {base!r} has no batched estimate_pairs; NIF needs a batched estimator "
            "(ksg, gmm, mine, nwj, smile, infonce)."
        )
    pairs = np.asarray(pairs, dtype=np.int64)
    n = X.shape[0]
    res = spec.estimate_pairs(X, Y, pairs, discrete_y=discrete_y, n_bootstrap=0,
                              random_state=random_state, **params)
    reps = np.zeros((len(pairs), n_bootstrap))
    for b in range(n_bootstrap):
        rows = half_sample_rows(replicate_seed, b, n)
        reps[:, b] = _estimate_masked(spec, X[rows], Y[rows], pairs, discrete_y,
                                      random_state, params)
    ranks = rank_statistics(X, Y, pairs, discrete_y, tie_seed) if rank_test else None
    values = np.array([r.value for r in res])
    std, low, high = half_sample_intervals(values, reps, n)
    out = []
    for p, r in enumerate(res):
        diag = {k: v for k, v in r.diagnostics.items()
                if isinstance(v, bool | int | float | str | np.number | np.bool_)}
        diag.update(base=base, replicates=json.dumps([float(v) for v in reps[p]]))
        if ranks is not None:
            diag["rank_mi"] = float(ranks[p])
        out.append(MIResult(
            value=float(values[p]), std=float(std[p]), ci=(float(low[p]), float(high[p])),
            n_samples=int(n), method=METHOD_NAME,
            params={"base": base, **params, "n_bootstrap": n_bootstrap,
                    "random_state": random_state},
            diagnostics=diag,
        ))
    return out


def estimate(x: np.ndarray, y: np.ndarray, *, discrete_y: bool, n_bootstrap: int,
             random_state: int, **params: Any) -> MIResult:
    """One pair (x (n, 1), y (n, 1) or labels) through :func:`estimate_pairs`."""
    if x.shape[1] != 1 or (not discrete_y and y.shape[1] != 1):
        raise InvalidParameterError(f"{METHOD_NAME!r} estimates scalar pairs only.")
    return estimate_pairs(x, y, np.zeros((1, 2), np.int64), discrete_y=discrete_y,
                          n_bootstrap=n_bootstrap, random_state=random_state, **params)[0]


NIF_LINK_METHOD = MethodSpec(
    name=METHOD_NAME,
    estimate=estimate,
    estimate_pairs=partial(estimate_pairs),
    supports_discrete_y=True,
    supports_multivariate=False,
    description="NIF links: a base estimator with shared half-sample replicates and rank tests",
)


def ensure_registered() -> None:
    """Register ``"nif-link"`` in this process (idempotent)."""
    register_method(NIF_LINK_METHOD, overwrite=True)


ensure_registered()
