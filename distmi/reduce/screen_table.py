"""Two-stage sweep tables: p-values and q-values of screened pairs, refine selection, merge.

Screen rows carry one column ``screen_<statistic>`` per rank statistic of the screen method and
the ``null_key`` of their null table. A row's p-value is the min-P combination of its
statistics against its table (:func:`distmi.kernels.significance.min_p_pvalues`, a plain
permutation p-value for one statistic); q-values are Benjamini-Hochberg (or -Yekutieli) within
each family (one per layer and target, or one per job). Constant and non-finite pairs are not
tests: their p- and q-values are NaN and they do not count in a family's size.

The merged table has one row per pair with both stages (see :data:`TWO_STAGE_COLUMNS`):
``stage`` is ``"refined"`` where the precise estimator ran and ``"screen"`` elsewhere, where
``estimate``, ``std``, ``ci_low``, ``ci_high`` and ``null_mean`` are NaN (constant pairs keep
their exact estimate 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from distmi.core.errors import InvalidParameterError
from distmi.kernels.significance import FDR_METHODS, adjust_pvalues, min_p_pvalues
from distmi.reduce.attribution import KEY

if TYPE_CHECKING:
    import pandas as pd

TWO_STAGE_COLUMNS = (
    "layer", "unit", "target", "target_unit", "stage", "screen_estimate", "p_value", "q_value",
    "significant", "estimate", "std", "ci_low", "ci_high", "null_mean", "n_samples", "method",
    "screen_method", "status", "diagnostics", "null_key", "batch_id",
)
REFINED_VALUES = ("estimate", "std", "ci_low", "ci_high", "null_mean")


def statistic_columns(components: tuple[str, ...]) -> list[str]:
    """Column names of the screen statistics: ``screen_<statistic>``."""
    return [f"screen_{c}" for c in components]


def null_columns(components: tuple[str, ...]) -> list[str]:
    """Column names of a null table's statistics: ``null_<statistic>``."""
    return [f"null_{c}" for c in components]


def screen_pvalues(rows: pd.DataFrame, null: pd.DataFrame,
                   components: tuple[str, ...]) -> np.ndarray:
    """p-value of every screen row against the null table of its ``null_key``.

    Args:
        rows: screen rows with ``null_key`` and ``screen_<c>`` columns.
        null: null tables (``null_key``, ``permutation``, ``null_<c>`` columns).
        components: the screen method's statistics, in column order.

    Returns:
        shape (len(rows),); NaN for rows whose status is not ``ok``.
    """
    p = np.full(len(rows), np.nan)
    ok = (rows["status"] == "ok").to_numpy()
    stats = rows[statistic_columns(components)].to_numpy(np.float64)
    keys = rows["null_key"].to_numpy()
    tables = {k: g[null_columns(components)].to_numpy(np.float64)
              for k, g in null.groupby("null_key", sort=False)}
    for key in np.unique(keys[ok]):
        sel = ok & (keys == key)
        if key not in tables:
            raise InvalidParameterError(f"no null table for {key!r}; the screen stage is incomplete")
        p[sel] = min_p_pvalues(stats[sel], tables[key])
    return p


def family_labels(rows: pd.DataFrame, scope: str) -> np.ndarray:
    """FDR family of every row: ``layer|target`` (scope ``layer-target``) or one family."""
    if scope == "job":
        return np.zeros(len(rows), dtype=np.int64)
    if scope != "layer-target":
        raise InvalidParameterError(f"fdr_scope must be 'layer-target' or 'job', got {scope!r}")
    return (rows["layer"].astype(str) + "\x1f" + rows["target"].astype(str)).to_numpy()


def add_significance(rows: pd.DataFrame, p_values: np.ndarray, fdr: float | None,
                     fdr_method: str = "bh", scope: str = "layer-target") -> pd.DataFrame:
    """Add ``p_value``, ``q_value`` and ``significant`` (q <= fdr; False without fdr)."""
    if fdr_method not in FDR_METHODS:
        raise InvalidParameterError(f"fdr_method must be one of {FDR_METHODS}, got {fdr_method!r}")
    out = rows.copy()
    out["p_value"] = p_values
    if np.isfinite(p_values).any():
        out["q_value"] = adjust_pvalues(p_values, fdr_method, family_labels(rows, scope))
    else:
        out["q_value"] = np.nan
    q = out["q_value"].to_numpy()
    out["significant"] = (q <= fdr) if fdr is not None else np.zeros(len(out), bool)
    return out


def select_for_refine(rows: pd.DataFrame, fdr: float | None, max_refine: int | None,
                      max_per_family: int | None = None,
                      scope: str = "layer-target") -> np.ndarray:
    """Rows to refine: q <= fdr (or every ``ok`` row without fdr), at most ``max_per_family``
    per FDR family and ``max_refine`` in all, keeping the largest ``screen_estimate`` values
    (ties: table order). Boolean mask."""
    ok = (rows["status"] == "ok").to_numpy()
    keep = ok & rows["significant"].to_numpy(bool) if fdr is not None else ok.copy()
    est = rows["screen_estimate"].to_numpy(np.float64)
    if max_per_family is not None:
        fams = family_labels(rows, scope)
        for fam in np.unique(fams[keep]):
            idx = np.flatnonzero(keep & (fams == fam))
            if len(idx) > max_per_family:
                order = np.lexsort((idx, -est[idx]))
                keep[idx[order[max_per_family:]]] = False
    if max_refine is not None and keep.sum() > max_refine:
        idx = np.flatnonzero(keep)
        order = np.lexsort((idx, -est[idx]))  # largest first, then table order
        keep[:] = False
        keep[idx[order[:max_refine]]] = True
    return keep


def merge_stages(screen: pd.DataFrame, refined: pd.DataFrame | None, screen_method: str,
                 components: tuple[str, ...]) -> pd.DataFrame:
    """One table with both stages (columns :data:`TWO_STAGE_COLUMNS` + statistic columns),
    sorted by key."""
    import pandas as pd

    out = screen.copy()
    out["screen_method"] = screen_method
    out["screen_estimate"] = out[statistic_columns(components)[0]]
    constant = (out["status"] == "constant").to_numpy()
    for col in REFINED_VALUES:
        out[col] = np.where(constant, 0.0, np.nan)
    out["method"] = None
    out["diagnostics"] = "{}"
    out["stage"] = "screen"
    if refined is not None and len(refined):
        ref = refined.set_index(list(KEY))
        idx = pd.MultiIndex.from_frame(out[list(KEY)])
        hit = idx.isin(ref.index)
        sub = ref.loc[idx[hit]]
        for col in (*REFINED_VALUES, "method", "diagnostics", "status", "n_samples", "batch_id"):
            out.loc[hit, col] = sub[col].to_numpy()
        out.loc[hit, "stage"] = "refined"
    extra = [c for c in statistic_columns(components) if c not in TWO_STAGE_COLUMNS]
    out = out[[*TWO_STAGE_COLUMNS, *extra]]
    return out.sort_values(list(KEY), kind="mergesort").reset_index(drop=True)
