"""Compare two attribution tables row by row: what changed between a baseline and a new run.

For every key (layer, unit, target, target_unit) present on both sides, with estimates
``theta_b`` (base) and ``theta_n`` (new) in nats and standard errors ``s_b``, ``s_n``::

    delta = theta_n - theta_b
    se    = sqrt(s_b^2 + s_n^2)                 # independent runs (independent samples)
    z     = delta / se,   p = 2 (1 - Phi(|z|))  # distmi.kernels.significance.difference_z_test

The standard errors are the runs' bootstrap standard errors (the ``std`` column), or the
standard deviation of stored bootstrap replicates when both tables carry a ``replicates``
column. Two runs on the *same* samples (a changed model captured on yesterday's inputs) are
positively correlated, so ``se`` overstates the noise of their difference: the test is then
conservative, never anti-conservative. p-values are Benjamini-Hochberg corrected (q-values,
:func:`~distmi.kernels.significance.adjust_pvalues`) over all tested rows, or within groups. A
row has **changed** when ``q <= fdr`` and ``|delta| >= min_effect`` (nats): significance
alone flags negligible shifts once samples are large.

Rows on one side only (a unit or target added or removed, a layer resized) are kept with
``side = "base_only"`` / ``"new_only"``. A status change (a unit that became constant: MI 0,
standard error 0) is tested like any other change; a row whose estimate is NaN on either side
(``nonfinite``) is not tested (p NaN).

Summaries group rows by layer, by target, and by (layer, target): rows and units compared,
units changed and their fraction, the largest and mean absolute shifts, and the Spearman rank
correlation of the attribution (does the ordering of units persist?).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from distmi.core.errors import InvalidInputError, InvalidParameterError
from distmi.kernels.significance import FDR_METHODS, adjust_pvalues, difference_z_test
from distmi.reduce.attribution import KEY
from distmi.reduce.compare_checks import check_comparable, check_overlap, result_info

if TYPE_CHECKING:
    import pandas as pd

TESTS = ("z", "none")
_CARRIED = ("estimate", "std", "ci_low", "ci_high", "null_mean", "status", "n_samples",
            "p_value", "q_value", "significant", "stage")
_GROUPINGS = {"layer": ["layer"], "target": ["target"], "layer_target": ["layer", "target"]}


@dataclass
class Comparison:
    """The outcome of :func:`compare`.

    Attributes:
        rows: one row per key: ``side``, ``<column>_base`` / ``<column>_new`` for estimate,
            std, ci_low, ci_high, null_mean, status (and p/q/significant when present),
            ``delta``, ``abs_delta``, ``se_delta``, ``z``, ``p_value``, ``q_value``,
            ``changed``.
        by_layer, by_target, by_layer_target: summaries (see :func:`summarise`).
        settings: fdr, min_effect, test, fdr method and groups, the source of the standard
            errors.
        base, new: provenance of each side (path, job, model, dataset hash, samples).
        notes: things a reader should know (sample sizes differ, rows on one side only).
    """

    rows: pd.DataFrame
    by_layer: pd.DataFrame
    by_target: pd.DataFrame
    by_layer_target: pd.DataFrame
    settings: dict[str, Any]
    base: dict[str, Any] = field(default_factory=dict)
    new: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def n_changed(self) -> int:
        return int(self.rows["changed"].sum())

    def changed_rows(self) -> pd.DataFrame:
        """Rows flagged as changed, largest |z| first."""
        out = self.rows[self.rows["changed"]]
        return out.sort_values("z", key=np.abs, ascending=False, kind="mergesort").reset_index(
            drop=True)

    def largest_shifts(self, k: int = 10, by: str = "abs_delta") -> pd.DataFrame:
        """The ``k`` compared rows with the largest ``abs_delta`` (or ``|z|`` with ``by="z"``)."""
        both = self.rows[self.rows["side"] == "both"]
        key = both["abs_delta"] if by == "abs_delta" else both["z"].abs()
        order = np.argsort(-key.fillna(-np.inf).to_numpy(), kind="mergesort")[:k]
        return both.iloc[order].reset_index(drop=True)

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        """JSON-ready summary: settings, provenance, counts, summaries and the largest shifts."""
        sides = self.rows["side"].value_counts()
        return {
            "settings": self.settings,
            "base": self.base,
            "new": self.new,
            "notes": list(self.notes),
            "rows": {"both": int(sides.get("both", 0)),
                     "base_only": int(sides.get("base_only", 0)),
                     "new_only": int(sides.get("new_only", 0)),
                     "tested": int(self.rows["p_value"].notna().sum()),
                     "changed": self.n_changed},
            "by_layer": json_records(self.by_layer),
            "by_target": json_records(self.by_target),
            "largest_shifts": json_records(self.largest_shifts(top)[
                [*KEY, "estimate_base", "estimate_new", "delta", "se_delta", "z", "q_value",
                 "changed"]]),
            "one_sided": json_records(self.rows[self.rows["side"] != "both"][[*KEY, "side"]]),
        }


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (numpy scalars unwrapped, NaN/Inf as None)."""
    out = []
    for rec in frame.to_dict(orient="records"):
        clean = {}
        for k, v in rec.items():
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, float) and not np.isfinite(v):
                v = None
            clean[str(k)] = v
        out.append(clean)
    return out


def _load(side: Any, name: str) -> tuple[pd.DataFrame, dict[str, Any] | None, str | None]:
    """(table, manifest or None, path or None) from a folder path, a (table, manifest) pair, a
    JobResult-like object or a bare table."""
    import pandas as pd

    from distmi.core.storage import StorePath

    if isinstance(side, str | Path | StorePath):
        from distmi.reduce.commit import load_results

        table, manifest = load_results(side)
        return table, manifest, str(side)
    if isinstance(side, tuple) and len(side) == 2:
        return side[0], side[1], None
    if hasattr(side, "table") and hasattr(side, "manifest"):
        return side.table, side.manifest, getattr(side, "output", None)
    if isinstance(side, pd.DataFrame):
        return side, None, None
    raise InvalidInputError(
        f"{name} must be a results folder, a (table, manifest) pair, a JobResult or a pandas "
        f"DataFrame, got {type(side).__name__}."
    )


def _check_table(table: pd.DataFrame, name: str) -> None:
    missing = [c for c in (*KEY, "estimate") if c not in table.columns]
    if missing:
        raise InvalidInputError(
            f"{name} table lacks the columns {missing}; pass an attribution table "
            f"(columns {list(KEY)} + estimate, std) or its results folder."
        )
    dup = table.duplicated(subset=list(KEY))
    if dup.any():
        first = table.loc[dup, list(KEY)].iloc[0].tolist()
        raise InvalidInputError(
            f"{name} table holds key {first} more than once; an attribution table has one row "
            "per (layer, unit, target, target_unit): deduplicate it (distmi.reduce.sort_table)."
        )


def _standard_errors(table: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Per-row standard errors: the std of stored replicates, else the ``std`` column."""
    if "replicates" in table.columns:
        se = np.array([np.nanstd(np.asarray(r, dtype=np.float64), ddof=1)
                       if r is not None and np.isfinite(np.asarray(r, np.float64)).sum() >= 2
                       else np.nan for r in table["replicates"]])
        return se, "replicates"
    if "std" not in table.columns:
        return np.full(len(table), np.nan), "none"
    return table["std"].to_numpy(dtype=np.float64), "std"


def compare(
    base: Any,
    new: Any,
    *,
    fdr: float = 0.05,
    min_effect: float = 0.0,
    test: str = "z",
    fdr_method: str = "bh",
    fdr_groups: str | None = None,
    check: bool = True,
) -> Comparison:
    """Row-by-row deltas between two attribution tables, tested and summarised.

    Args:
        base: the baseline: a results folder, a ``(table, manifest)`` pair, a ``JobResult``
            or a table.
        new: the run to compare with it (same kinds).
        fdr: false discovery rate level for the BH q-values.
        min_effect: smallest |delta| in nats that counts as a change.
        test: ``"z"`` (difference z test on the standard errors) or ``"none"`` (deltas only).
        fdr_method: ``"bh"`` or ``"by"`` (any dependence between rows).
        fdr_groups: ``None`` (one family of all tested rows), ``"layer"``, ``"target"`` or
            ``"layer_target"`` (one family per group).
        check: refuse results of another model or job (needs manifests; see
            :func:`~distmi.reduce.compare_checks.check_comparable`).

    Raises:
        InvalidInputError: not attribution tables; tables with no target or layer in common;
            results of another model or job; no standard errors for the z test.
        InvalidParameterError: a bad ``fdr``, ``min_effect``, ``test`` or grouping.
    """
    import pandas as pd

    if not 0.0 < fdr < 1.0:
        raise InvalidParameterError(f"fdr must lie in (0, 1), got {fdr}; 0.05 is usual.")
    if not (min_effect >= 0.0 and np.isfinite(min_effect)):
        raise InvalidParameterError(f"min_effect must be a finite number of nats >= 0, got {min_effect}.")
    if test not in TESTS:
        raise InvalidParameterError(f"test must be one of {TESTS}, got {test!r}.")
    if fdr_method not in FDR_METHODS:
        raise InvalidParameterError(f"fdr_method must be one of {FDR_METHODS}, got {fdr_method!r}.")
    if fdr_groups is not None and fdr_groups not in _GROUPINGS:
        raise InvalidParameterError(
            f"fdr_groups must be None or one of {sorted(_GROUPINGS)}, got {fdr_groups!r}.")
    tb, mb, pb = _load(base, "base")
    tn, mn, pn = _load(new, "new")
    _check_table(tb, "base")
    _check_table(tn, "new")
    notes: list[str] = []
    if check and mb is not None and mn is not None:
        notes += check_comparable(mb, mn)
    check_overlap(tb, tn)

    se_b, src_b = _standard_errors(tb)
    se_n, src_n = _standard_errors(tn)
    left = tb[[c for c in _CARRIED if c in tb.columns] + list(KEY)].assign(_se=se_b)
    right = tn[[c for c in _CARRIED if c in tn.columns] + list(KEY)].assign(_se=se_n)
    rows = pd.merge(left, right, on=list(KEY), how="outer", suffixes=("_base", "_new"),
                    indicator="side", sort=False)
    rows["side"] = rows["side"].map({"both": "both", "left_only": "base_only",
                                     "right_only": "new_only"}).astype(str)
    rows = rows.sort_values(list(KEY), kind="mergesort").reset_index(drop=True)
    for col in ("estimate", "std"):
        for suffix in ("_base", "_new"):
            if f"{col}{suffix}" not in rows.columns:
                rows[f"{col}{suffix}"] = np.nan
    both = (rows["side"] == "both").to_numpy()
    delta = np.where(both, rows["estimate_new"].to_numpy(float) - rows["estimate_base"].to_numpy(float),
                     np.nan)
    se = np.sqrt(rows["_se_base"].to_numpy(float) ** 2 + rows["_se_new"].to_numpy(float) ** 2)
    se = np.where(both, se, np.nan)
    rows["delta"] = delta
    rows["abs_delta"] = np.abs(delta)
    rows["se_delta"] = se
    rows = rows.drop(columns=["_se_base", "_se_new"])
    if test == "z":
        ok_rows = both & np.isfinite(delta)
        if ok_rows.any() and not np.isfinite(se[ok_rows]).any():
            raise InvalidInputError(
                "neither table carries standard errors for the compared rows (std is NaN: the "
                "jobs ran with n_bootstrap: 0); rerun them with n_bootstrap >= 10, or compare "
                "with test='none' (--test none) to see the deltas without a test."
            )
        z, p = difference_z_test(delta, se)
        # identical values with zero error (two constant units): no change, p = 1
        same = ok_rows & (delta == 0) & (se == 0)
        z = np.where(same, 0.0, z)
        p = np.where(same, 1.0, p)
        groups = None
        if fdr_groups is not None:
            cols = _GROUPINGS[fdr_groups]
            groups = rows[cols].astype(str).agg("\x1f".join, axis=1).to_numpy()
        q = adjust_pvalues(p, method=fdr_method, groups=groups)
    else:
        z = p = q = np.full(len(rows), np.nan)
    rows["z"] = z
    rows["p_value"] = p
    rows["q_value"] = q
    if test == "z":
        rows["changed"] = (q <= fdr) & (np.abs(delta) >= min_effect)
    else:  # deltas only: a change is a shift of at least min_effect (none when it is 0)
        rows["changed"] = (np.abs(np.nan_to_num(delta)) >= min_effect) & (min_effect > 0)
    rows["changed"] = rows["changed"].fillna(False).astype(bool)

    if {"stage_base", "stage_new"} <= set(rows.columns):
        moved = both & (rows["stage_base"].astype(str) != rows["stage_new"].astype(str)).to_numpy()
        if moved.any():
            notes.append(f"{int(moved.sum())} row(s) come from different sweep stages in the two "
                         "runs (stage_base != stage_new)")
    n_one = int((~both).sum())
    if n_one:
        notes.append(f"{n_one} row(s) are present on one side only (side = base_only/new_only)")
    settings = {"fdr": fdr, "min_effect": min_effect, "test": test, "fdr_method": fdr_method,
                "fdr_groups": fdr_groups, "standard_errors": sorted({src_b, src_n}),
                "unit": "nat"}
    return comparison_from_rows(rows, settings, base=result_info(mb, pb),
                                new=result_info(mn, pn), notes=notes)


def comparison_from_rows(rows: pd.DataFrame, settings: dict[str, Any], *,
                         base: dict[str, Any] | None = None, new: dict[str, Any] | None = None,
                         notes: list[str] | None = None, fdr: float | None = None,
                         min_effect: float | None = None) -> Comparison:
    """A :class:`Comparison` from its rows (e.g. an audit's ``audit_rows.parquet``).

    With ``fdr`` or ``min_effect`` the ``changed`` flags are recomputed from the stored
    q-values and deltas under those thresholds (the q-values themselves do not change).
    """
    settings = dict(settings)
    if fdr is not None or min_effect is not None:
        fdr = settings.get("fdr", 0.05) if fdr is None else fdr
        min_effect = settings.get("min_effect", 0.0) if min_effect is None else min_effect
        q = rows["q_value"].to_numpy(dtype=np.float64)
        delta = np.abs(rows["delta"].to_numpy(dtype=np.float64))
        rows = rows.assign(changed=np.nan_to_num(q, nan=np.inf) <= fdr)
        rows["changed"] = rows["changed"].to_numpy() & (np.nan_to_num(delta) >= min_effect)
        settings.update(fdr=fdr, min_effect=min_effect)
    return Comparison(
        rows=rows,
        by_layer=summarise(rows, ["layer"]),
        by_target=summarise(rows, ["target"]),
        by_layer_target=summarise(rows, ["layer", "target"]),
        settings=settings,
        base=dict(base or {}),
        new=dict(new or {}),
        notes=list(notes or []),
    )


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)


def summarise(rows: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per-group summary of compared rows.

    Columns: ``n_rows`` (both sides), ``n_base_only``, ``n_new_only``, ``n_tested``,
    ``n_changed`` (rows), ``n_units`` (distinct (layer, unit) compared), ``n_units_changed``,
    ``frac_units_changed``, ``max_abs_delta``, ``mean_abs_delta``, ``mean_delta`` (nats),
    ``rank_corr`` (Spearman of estimate_base vs estimate_new over the group's rows), and the
    key of the largest shift (``top_unit``, ``top_target``, ``top_delta``).
    """
    import pandas as pd

    out = []
    for key, g in rows.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        b = g[g["side"] == "both"]
        units = b[["layer", "unit"]].drop_duplicates()
        changed_units = b.loc[b["changed"], ["layer", "unit"]].drop_duplicates()
        rec = dict(zip(by, key, strict=True))
        rec.update(
            n_rows=len(b),
            n_base_only=int((g["side"] == "base_only").sum()),
            n_new_only=int((g["side"] == "new_only").sum()),
            n_tested=int(b["p_value"].notna().sum()),
            n_changed=int(b["changed"].sum()),
            n_units=len(units),
            n_units_changed=len(changed_units),
            frac_units_changed=len(changed_units) / len(units) if len(units) else float("nan"),
            max_abs_delta=float(b["abs_delta"].max()) if b["abs_delta"].notna().any() else float("nan"),
            mean_abs_delta=float(b["abs_delta"].mean()) if len(b) else float("nan"),
            mean_delta=float(b["delta"].mean()) if len(b) else float("nan"),
            rank_corr=_spearman(b["estimate_base"].to_numpy(float), b["estimate_new"].to_numpy(float)),
        )
        if b["abs_delta"].notna().any():
            top = b.loc[b["abs_delta"].idxmax()]
            rec.update(top_unit=int(top["unit"]), top_target=str(top["target"]),
                       top_delta=float(top["delta"]))
        else:
            rec.update(top_unit=-1, top_target="", top_delta=float("nan"))
        out.append(rec)
    return pd.DataFrame(out)
