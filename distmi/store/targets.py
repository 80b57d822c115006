"""The targets table: one row per sample, keyed by ``sample_id``.

Targets are what activations are compared with: class labels and concept labels
(kind ``"categorical"``) or physical/continuous quantities (kind ``"continuous"``).
Kinds are inferred (bool, integer, string, pandas categorical -> categorical; float ->
continuous) unless given explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from distmi.core.errors import (
    InvalidInputError,
    InvalidParameterError,
    LengthMismatchError,
    NonFiniteInputError,
)

TARGET_KINDS = ("categorical", "continuous")
SAMPLE_ID = "sample_id"
_MAX_LISTED_CLASSES = 1000


def to_frame(targets: Any) -> pd.DataFrame:
    """Targets (dict of arrays, DataFrame, pyarrow Table or None) as a DataFrame."""
    if targets is None:
        return pd.DataFrame()
    if isinstance(targets, pd.DataFrame):
        return targets.reset_index(drop=True)
    if hasattr(targets, "to_pandas") and hasattr(targets, "schema"):  # pyarrow Table
        return targets.to_pandas().reset_index(drop=True)
    if isinstance(targets, Mapping):
        cols = {}
        for key, value in targets.items():
            if hasattr(value, "detach") and hasattr(value, "cpu"):
                value = value.detach().cpu().numpy()
            arr = np.asarray(value)
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise InvalidInputError(
                    f"target {key!r} must be one value per sample (shape (n,)), got shape "
                    f"{arr.shape}; split multi-column targets into named columns."
                )
            cols[str(key)] = arr
        lengths = {k: len(v) for k, v in cols.items()}
        if len(set(lengths.values())) > 1:
            raise LengthMismatchError(
                f"target columns have different lengths {lengths}; pass one value per sample "
                "for every target."
            )
        return pd.DataFrame(cols)
    raise InvalidInputError(
        f"targets must be a dict of arrays, a pandas DataFrame or a pyarrow Table, got "
        f"{type(targets).__name__}."
    )


def infer_kind(series: pd.Series) -> str:
    """``"continuous"`` for float columns, ``"categorical"`` for everything else."""
    if pd.api.types.is_float_dtype(series.dtype):
        return "continuous"
    return "categorical"


def normalize_sample_ids(sample_ids: Any, n: int) -> np.ndarray:
    """Validate sample ids (default ``0..n-1``): unique int64 or string values, length ``n``."""
    if sample_ids is None:
        return np.arange(n, dtype=np.int64)
    if hasattr(sample_ids, "detach"):
        sample_ids = sample_ids.detach().cpu().numpy()
    ids = np.asarray(sample_ids)
    if ids.ndim != 1 or len(ids) != n:
        raise LengthMismatchError(
            f"sample_ids must have one id per sample ({n}), got shape {ids.shape}."
        )
    if ids.dtype.kind in "iub":
        ids = ids.astype(np.int64)
    elif ids.dtype.kind in "UOS":
        ids = ids.astype(str).astype(object)
    else:
        raise InvalidInputError(
            f"sample_ids must be integers or strings, got dtype {ids.dtype}; pass e.g. "
            "np.arange(n) or a list of string keys."
        )
    uniq, counts = np.unique(ids.astype(str) if ids.dtype == object else ids, return_counts=True)
    if len(uniq) != n:
        dup = uniq[counts > 1][:3].tolist()
        raise InvalidInputError(
            f"sample_ids must be unique, but {dup} occur more than once; give every sample "
            "its own id."
        )
    return ids


def normalize_targets(
    targets: Any,
    n: int,
    sample_ids: Any = None,
    target_kinds: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Build the targets table (``sample_id`` first) and the kind of every target column.

    Args:
        targets: dict of arrays (n,), DataFrame or pyarrow Table; may hold a ``sample_id``
            column, used when ``sample_ids`` is not given.
        n: number of samples.
        sample_ids: ids in sample order, default ``0..n-1``.
        target_kinds: explicit kinds for some or all columns.
    """
    frame = to_frame(targets)
    if len(frame.columns) and len(frame) != n:
        raise LengthMismatchError(
            f"targets have {len(frame)} rows but the dataset has {n} samples; pass one target "
            "row per sample, in sample order."
        )
    if SAMPLE_ID in frame.columns:
        given = frame.pop(SAMPLE_ID).to_numpy()
        if sample_ids is not None and not np.array_equal(np.asarray(sample_ids), given):
            raise InvalidInputError(
                "targets has a 'sample_id' column that differs from sample_ids=; pass the ids "
                "in one place only."
            )
        sample_ids = given
    ids = normalize_sample_ids(sample_ids, n)
    kinds: dict[str, str] = {}
    given_kinds = dict(target_kinds or {})
    unknown = sorted(set(given_kinds) - set(frame.columns))
    if unknown:
        raise InvalidParameterError(
            f"target_kinds names {unknown}, which are not target columns; target columns are "
            f"{list(frame.columns)}."
        )
    for col in frame.columns:
        kind = given_kinds.get(col, infer_kind(frame[col]))
        if kind not in TARGET_KINDS:
            raise InvalidParameterError(
                f"target kind of {col!r} must be one of {list(TARGET_KINDS)}, got {kind!r}."
            )
        _check_column(frame, col, kind)
        kinds[str(col)] = kind
    frame.insert(0, SAMPLE_ID, ids)
    return frame, kinds


def _check_column(frame: pd.DataFrame, col: str, kind: str) -> None:
    series = frame[col]
    if kind == "continuous":
        try:
            values = series.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"target {col!r} is declared continuous but is not numeric (dtype "
                f"{series.dtype}); declare it 'categorical' or convert it to numbers."
            ) from exc
        bad = ~np.isfinite(values)
        if bad.any():
            raise NonFiniteInputError(
                f"target {col!r} has {int(np.isnan(values).sum())} NaN and "
                f"{int(np.isinf(values).sum())} Inf values (first at sample "
                f"{int(np.flatnonzero(bad)[0])}); drop or fill those samples before capture."
            )
        frame[col] = values
    elif series.isna().any():
        raise InvalidInputError(
            f"categorical target {col!r} has {int(series.isna().sum())} missing values "
            f"(first at sample {int(np.flatnonzero(series.isna().to_numpy())[0])}); give those "
            "samples a class (e.g. 'unknown') or drop them."
        )


def describe_targets(frame: pd.DataFrame, kinds: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Manifest entry per target: kind, dtype and classes (categorical) or range (continuous)."""
    out: dict[str, dict[str, Any]] = {}
    for col, kind in kinds.items():
        series = frame[col]
        entry: dict[str, Any] = {"kind": kind, "dtype": str(series.dtype)}
        if kind == "categorical":
            values, counts = np.unique(series.astype(str).to_numpy(), return_counts=True)
            entry["n_classes"] = len(values)
            if len(values) <= _MAX_LISTED_CLASSES:
                entry["class_counts"] = {str(v): int(c) for v, c in zip(values, counts, strict=True)}
        else:
            arr = series.to_numpy(dtype=np.float64)
            entry.update(min=float(arr.min()), max=float(arr.max()), mean=float(arr.mean()))
        out[col] = entry
    return out
