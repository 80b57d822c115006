"""Accumulators that merge batch rows into attribution tables, and matrices built from them.

An attribution table has one row per (layer, unit, target, target_unit) with the estimate in
nats, its bootstrap ``std`` and 95% interval ``ci_low``/``ci_high``, the permutation-null mean
``null_mean`` and ``n_samples``. Targets are target columns (``target_unit = -1``) or partner
layers (``target_unit`` = the partner unit). For ``layer-target`` rows ``unit`` is -1.

The merge is a keyed union: rows from any split of the work, merged in any order, give the
same table (rows are sorted by key at the end; a key seen twice must carry identical values,
which holds because every pair has one deterministic result).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from distmi.core.errors import InvalidParameterError

if TYPE_CHECKING:
    import pandas as pd

KEY = ("layer", "unit", "target", "target_unit")


class AttributionAccumulator:
    """Collects batch columns (``{column: list}``) and produces the sorted attribution table."""

    def __init__(self) -> None:
        self._parts: list[dict[str, list[Any]]] = []

    def add(self, columns: dict[str, list[Any]]) -> None:
        """Add the rows of one batch."""
        self._parts.append(columns)

    def merge(self, other: AttributionAccumulator) -> AttributionAccumulator:
        """Union with another accumulator (order-independent)."""
        merged = AttributionAccumulator()
        merged._parts = [*self._parts, *other._parts]
        return merged

    def __len__(self) -> int:
        return sum(len(p["layer"]) for p in self._parts)

    def to_frame(self) -> pd.DataFrame:
        """The table sorted by (layer, unit, target, target_unit), duplicates removed."""
        import pandas as pd

        if not self._parts:
            return pd.DataFrame(columns=[*KEY, "estimate"])
        frame = pd.concat([pd.DataFrame(p) for p in self._parts], ignore_index=True)
        return sort_table(frame)


def sort_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort by key and drop exact duplicate keys (a batch committed twice by a retried task)."""
    frame = frame.drop_duplicates(subset=list(KEY), keep="first")
    return frame.sort_values(list(KEY), kind="mergesort").reset_index(drop=True)


def with_excess(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``excess = estimate - null_mean`` (nats above the estimator's null floor)."""
    out = frame.copy()
    out["excess"] = out["estimate"] - out["null_mean"].fillna(0.0)
    return out


def attribution_matrix(frame: pd.DataFrame, layer: str, value: str = "estimate") -> pd.DataFrame:
    """Pivot one layer's rows into a matrix.

    Unit-target rows give (units x targets); unit-unit rows give a symmetric (units x units)
    matrix with NaN on the diagonal; adjacent-layer rows give (units of layer x units of the
    next layer).

    Args:
        frame: an attribution table.
        layer: the x layer.
        value: the column to place in the cells (``estimate``, ``std``, ``null_mean``, ...).
    """
    if value not in frame.columns:
        raise InvalidParameterError(
            f"value {value!r} is not a column of the table; choose one of {list(frame.columns)}."
        )
    rows = frame[frame["layer"] == layer]
    if rows.empty:
        layers = sorted(frame["layer"].unique().tolist())
        raise InvalidParameterError(f"layer {layer!r} has no rows; layers in the table: {layers}.")
    if (rows["target_unit"] < 0).all():
        return rows.pivot(index="unit", columns="target", values=value)
    mat = rows.pivot_table(index="unit", columns="target_unit", values=value, aggfunc="first")
    if (rows["target"] == layer).all():  # within-layer pairs: mirror i<j into j>i
        units = np.union1d(mat.index.to_numpy(), mat.columns.to_numpy())
        mat = mat.reindex(index=units, columns=units)
        mat = mat.combine_first(mat.T)
    return mat


# statuses of rows whose estimate stands ("warning": e.g. EM hit its iteration cap; the reason
# is in the row's diagnostics); "constant", "nonfinite" and the neural bounds' "diverged",
# "negative", "capped" rows are left out of rankings
USABLE_STATUSES = ("ok", "warning")


def top_units(frame: pd.DataFrame, k: int = 5, by: str = "excess",
              targets: Iterable[str] | None = None) -> pd.DataFrame:
    """The ``k`` rows with the largest ``by`` per target, ``excess`` added if needed.

    Only estimates that stand count: status ``"ok"`` or ``"warning"`` (:data:`USABLE_STATUSES`)
    and a finite ``by`` (screen-only rows of a two-stage sweep have no estimate).
    """
    table = with_excess(frame) if "excess" not in frame.columns else frame
    if targets is not None:
        table = table[table["target"].isin(list(targets))]
    if "status" in table.columns:
        table = table[table["status"].isin(USABLE_STATUSES)]
    table = table[table[by].notna()]
    ordered = table.sort_values([by, *KEY], ascending=[False, True, True, True, True],
                                kind="mergesort")
    top = ordered.groupby(["target"], sort=True, group_keys=False).head(k)
    return top.sort_values(["target", by], ascending=[True, False], kind="mergesort").reset_index(
        drop=True)
