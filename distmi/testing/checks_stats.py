"""Statistical conformance checks: Gaussian closed form, error bars and interval coverage.

All three read one batched run (cached per method and settings): ``distmi.pairwise_mi`` over
``2 * n_datasets_per_level`` independent bivariate-Gaussian datasets stacked as columns, half
at each MI level (see :mod:`distmi.testing.settings` for the tolerances and their reasons).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import lru_cache

import numpy as np

from distmi.api import pairwise_mi
from distmi.testing.case import SEED, MethodCase, fail
from distmi.testing.data import gaussian_columns


@lru_cache(maxsize=16)
def _batch(name: str, settings_json: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                     np.ndarray, np.ndarray]:
    cfg = json.loads(settings_json)
    m = cfg["n_datasets_per_level"]
    truth = np.repeat(np.asarray(cfg["mi_levels"], dtype=np.float64), m)  # (L * m,)
    X, Y = gaussian_columns(cfg["accuracy_n"], truth, SEED, name, "statistical")
    pairs = [(j, j) for j in range(truth.size)]
    table = pairwise_mi(X, Y, method=name, pairs=pairs, n_bootstrap=cfg["n_bootstrap"],
                        random_state=SEED, **{**cfg["params"], **cfg["accuracy_params"]})
    return (truth, table["estimate"].to_numpy(float), table["std"].to_numpy(float),
            table["ci_low"].to_numpy(float), table["ci_high"].to_numpy(float))


def gaussian_batch(case: MethodCase):
    """(truth, estimate, std, ci_low, ci_high), each (2 * n_datasets_per_level,)."""
    return _batch(case.name, json.dumps(asdict(case.settings), sort_keys=True, default=repr))


def check_gaussian_accuracy(case: MethodCase) -> None:
    """The mean estimate over >= 30 Gaussian datasets per MI level is within
    ``accuracy_tol`` nats of the closed form (one batched call)."""
    if not case.settings.statistical:
        return
    truth, est, *_ = gaussian_batch(case)
    low, high = case.settings.error_range
    lines = []
    for level in case.settings.mi_levels:
        sel = truth == level
        err = float(np.mean(est[sel] - level))
        if not (np.isfinite(err) and low <= err <= high):
            sd = float(np.std(est[sel], ddof=1))
            lines.append(f"MI {level} nats: mean estimate {level + err:.4f} over {sel.sum()} "
                         f"datasets, error {err:+.4f} (sd per dataset {sd:.4f}), allowed "
                         f"{low:+} to {high:+}")
    if lines:
        raise fail(case, "check_gaussian_accuracy", "; ".join(lines))


def check_error_bars(case: MethodCase) -> None:
    """The reported ``std`` matches the spread of estimates over datasets (within a factor
    ``std_ratio``) at every MI level."""
    if not case.settings.statistical or case.settings.n_bootstrap < 2:
        return
    truth, est, std, *_ = gaussian_batch(case)
    factor = case.settings.std_ratio
    for level in case.settings.mi_levels:
        sel = truth == level
        spread = float(np.std(est[sel], ddof=1))
        reported = float(np.mean(std[sel]))
        ratio = reported / spread if spread > 0 else np.inf
        if not (1.0 / factor <= ratio <= factor):
            raise fail(case, "check_error_bars",
                       f"MI {level} nats: mean reported std {reported:.4f} vs spread "
                       f"{spread:.4f} over {sel.sum()} datasets (ratio {ratio:.2f}, allowed "
                       f"{1 / factor:.2f}-{factor:.2f})")


def check_ci_coverage(case: MethodCase) -> None:
    """95% intervals cover the true MI in ``coverage_range`` of >= 40 datasets (for variational
    bounds: the lower ends lie at or below the truth at least that often)."""
    if not case.settings.statistical or case.settings.n_bootstrap < 2:
        return
    truth, _, _, low, high = gaussian_batch(case)
    lo, hi = case.settings.coverage_range
    if case.spec.ci_covers == "bound":
        share = float(np.mean(low <= truth))
        if share < lo:
            raise fail(case, "check_ci_coverage",
                       f"lower interval ends at or below the truth in {share:.2f} of "
                       f"{truth.size} datasets, need >= {lo}")
        return
    covered = (low <= truth) & (truth <= high)
    share = float(np.mean(covered))
    if not lo <= share <= hi:
        raise fail(case, "check_ci_coverage",
                   f"95% intervals covered the truth in {covered.sum()} of {truth.size} "
                   f"datasets ({share:.2f}), allowed {lo}-{hi}")


def summarize(case: MethodCase) -> list[dict[str, float]]:
    """Per MI level: datasets, mean error, sd of estimates, mean reported std, coverage."""
    truth, est, std, low, high = gaussian_batch(case)
    rows = []
    for level in case.settings.mi_levels:
        sel = truth == level
        rows.append({
            "mi": level, "datasets": int(sel.sum()),
            "mean_error": float(np.mean(est[sel] - level)),
            "sd": float(np.std(est[sel], ddof=1)),
            "mean_std": float(np.mean(std[sel])),
            "coverage": float(np.mean((low[sel] <= level) & (level <= high[sel]))),
            "lower_coverage": float(np.mean(low[sel] <= level)),
        })
    return rows
