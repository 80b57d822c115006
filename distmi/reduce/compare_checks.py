"""Checks that two committed results can be compared, and the provenance a comparison reports.

Two runs are comparable when they measured the same thing the same way: the same model (the
dataset's ``model_id``) and the same job fields that shape the estimates (``pairs``, the
estimator and its parameters, ``n_slices``). The dataset, output folder, scaling, seed and
bootstrap size may differ; layers, units and targets may differ partly (rows on one side
only are reported), but two tables with no target or no layer in common are refused.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from distmi.core.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

#: job fields that must agree for two results to be compared (they change what is estimated)
SHAPING_FIELDS = ("pairs", "estimator", "n_slices")


def _model_id(manifest: dict[str, Any]) -> str | None:
    return (manifest.get("dataset") or {}).get("model_id")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def check_comparable(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Refuse results of another model or job; return notes about harmless differences.

    Raises:
        InvalidInputError: different models, or job fields in :data:`SHAPING_FIELDS` differ.
    """
    notes: list[str] = []
    mb, mn = _model_id(base), _model_id(new)
    if mb is not None and mn is not None and mb != mn:
        raise InvalidInputError(
            f"the baseline was computed on model {mb!r} but the new results on model {mn!r}; "
            "a baseline must come from the same model (its dataset's model_id): pass the "
            "baseline results of this model's job."
        )
    sb, sn = base.get("spec") or {}, new.get("spec") or {}
    diffs = [f for f in SHAPING_FIELDS if f in sb and f in sn and sb[f] != sn[f]]
    if diffs:
        shown = "; ".join(f"{f}: base {_short(sb[f])}, new {_short(sn[f])}" for f in diffs)
        raise InvalidInputError(
            f"the baseline comes from another job ({shown}); estimates of different methods, "
            "parameters or pair modes are not comparable: compare results of the same job file "
            f"(only the dataset, output, scaling, seed and n_bootstrap may differ; baseline job "
            f"{base.get('job_name')!r}, new job {new.get('job_name')!r})."
        )
    nb = (base.get("dataset") or {}).get("n_samples")
    nn = (new.get("dataset") or {}).get("n_samples")
    if nb is not None and nn is not None and nb != nn:
        notes.append(f"sample sizes differ (base {nb}, new {nn}): estimator bias differs a "
                     "little between them")
    hb, hn = base.get("dataset_hash"), new.get("dataset_hash")
    if hb is not None and hb == hn:
        notes.append("both results were computed on the same dataset: differences come from "
                     "seeds or settings only")
    return notes


def check_overlap(base: pd.DataFrame, new: pd.DataFrame) -> None:
    """Refuse two tables that share no target, no layer or no row.

    Raises:
        InvalidInputError: naming what each side holds.
    """
    for col, what in (("target", "target"), ("layer", "layer")):
        have_b = sorted(map(str, base[col].unique()))
        have_n = sorted(map(str, new[col].unique()))
        if not set(have_b) & set(have_n):
            raise InvalidInputError(
                f"the two results share no {what}: base has {have_b[:10]}, new has "
                f"{have_n[:10]}; the {what}s are mismatched: compare results of the same job "
                f"(same {what}s), e.g. the baseline of this job's audit."
            )
    keys = ["layer", "unit", "target", "target_unit"]
    if base[keys].merge(new[keys], on=keys, how="inner").empty:
        raise InvalidInputError(
            "the two results share no (layer, unit, target) row although they share layers "
            "and targets: their unit selections differ entirely; use the same units in both "
            "jobs (a fixed range or indices, not top_k_variance)."
        )


def result_info(manifest: dict[str, Any] | None, path: str | None) -> dict[str, Any]:
    """The provenance of one side of a comparison (for reports and audit.json)."""
    if manifest is None:
        return {"path": path}
    ds = manifest.get("dataset") or {}
    return {
        "path": path,
        "job_name": manifest.get("job_name"),
        "spec_hash": manifest.get("spec_hash"),
        "dataset_hash": manifest.get("dataset_hash") or ds.get("manifest_sha256"),
        "dataset_path": ds.get("path"),
        "model_id": ds.get("model_id"),
        "n_samples": ds.get("n_samples"),
        "method": manifest.get("method"),
        "committed_at": manifest.get("committed_at"),
    }
