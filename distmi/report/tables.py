"""Table helpers shared by the figures and the page: layer order, significance, strongest rows.

Everything here reads attribution tables (pandas) and results manifests (dicts) only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from distmi.kernels.significance import adjust_pvalues
from distmi.reduce.layers import layer_order

SIGNIFICANCE_LEVEL = 0.05

__all__ = ["excess", "is_unit_target", "layer_order", "ok_rows", "significance", "strongest"]


def significance(table: pd.DataFrame) -> tuple[pd.Series, str]:
    """Which rows are significant, and the rule used (for captions).

    Uses, in this order: a ``significant`` column; ``q_value <= 0.05``; BH q-values of a
    ``p_value`` column; without any test, the heuristic ``estimate - null_mean > 2 std``
    (bootstrap standard errors); otherwise no row is marked.
    """
    if "significant" in table.columns:
        return table["significant"].fillna(False).astype(bool), "significant (the sweep's test)"
    if "q_value" in table.columns:
        q = table["q_value"].to_numpy(dtype=np.float64)
        return (pd.Series(q <= SIGNIFICANCE_LEVEL, index=table.index),
                f"q-value <= {SIGNIFICANCE_LEVEL}")
    if "p_value" in table.columns:
        q = adjust_pvalues(table["p_value"].to_numpy(dtype=np.float64))
        return (pd.Series(q <= SIGNIFICANCE_LEVEL, index=table.index),
                f"BH q-value <= {SIGNIFICANCE_LEVEL}")
    if {"std", "null_mean"} <= set(table.columns) and table["null_mean"].notna().any():
        # no test in the table: a conservative heuristic. The percentile interval's lower end
        # is not used: resampling biases MI replicates upward, so it clears the null too often.
        est, null = table["estimate"].to_numpy(float), table["null_mean"].to_numpy(float)
        with np.errstate(invalid="ignore"):
            mask = (est - null) > 2.0 * table["std"].to_numpy(float)
        return (pd.Series(np.nan_to_num(mask, nan=False).astype(bool), index=table.index),
                "MI above the permutation-null mean by > 2 bootstrap SE (heuristic)")
    return pd.Series(False, index=table.index), "no significance information in the table"


def ok_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows with a finite estimate (``status == ok`` when the column exists)."""
    out = table[np.isfinite(table["estimate"].to_numpy(dtype=np.float64))]
    if "status" in out.columns:
        out = out[out["status"] == "ok"]
    return out


def excess(table: pd.DataFrame) -> pd.Series:
    """estimate - null_mean (the estimate when no null was computed)."""
    null = table["null_mean"].fillna(0.0) if "null_mean" in table.columns else 0.0
    return table["estimate"] - null


def strongest(table: pd.DataFrame, k: int = 15) -> pd.DataFrame:
    """The ``k`` rows with the largest excess over the null per target, strongest first."""
    t = ok_rows(table).assign(excess=lambda f: excess(f))
    t = t.sort_values(["target", "excess"], ascending=[True, False], kind="mergesort")
    return t.groupby("target", sort=True).head(k).reset_index(drop=True)


def is_unit_target(table: pd.DataFrame) -> bool:
    """Rows pair units with target columns (not units with units, not whole layers)."""
    return bool((table["target_unit"] < 0).all() and (table["unit"] >= 0).any())
