"""Reading committed results: filters, top units per target, export to CSV or Parquet."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from distmi.core.errors import InvalidParameterError
from distmi.reduce.attribution import USABLE_STATUSES, top_units, with_excess

if TYPE_CHECKING:
    import pandas as pd



def filter_table(
    table: pd.DataFrame,
    *,
    targets: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    min_excess: float | None = None,
    status: str | Sequence[str] | None = USABLE_STATUSES,
) -> pd.DataFrame:
    """Rows of the given targets/layers/status whose ``excess`` (estimate - null) is large enough.

    ``status`` keeps rows with these statuses (default: ``"ok"`` and ``"warning"``, the
    estimates that stand, a warning such as "EM did not converge" being shown with the row;
    not ``"constant"``, ``"nonfinite"`` or the neural bounds' ``"diverged"``, ``"negative"``,
    ``"capped"``); ``None`` keeps every row.

    Raises:
        InvalidParameterError: a target or layer that is not in the table (lists the ones that are).
    """
    out = with_excess(table)
    for col, wanted in (("target", targets), ("layer", layers)):
        if wanted:
            have = sorted(out[col].unique().tolist())
            missing = [w for w in wanted if w not in have]
            if missing:
                raise InvalidParameterError(
                    f"{col} {missing[0]!r} is not in the results; available: {have}."
                )
            out = out[out[col].isin(list(wanted))]
    if status is not None:
        wanted = [status] if isinstance(status, str) else list(status)
        out = out[out["status"].isin(wanted)]
    if min_excess is not None:
        out = out[out["excess"] >= min_excess]
    return out.reset_index(drop=True)


def export_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` to ``.csv`` or ``.parquet`` (chosen by the suffix)."""
    p = Path(path)
    if p.suffix == ".csv":
        table.to_csv(p, index=False)
    elif p.suffix == ".parquet":
        table.to_parquet(p, index=False)
    else:
        raise InvalidParameterError(
            f"export path {p} must end in .csv or .parquet, got suffix {p.suffix!r}."
        )
    return p


__all__ = ["export_table", "filter_table", "top_units"]
