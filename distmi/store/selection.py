"""Normalisation of row and unit selections (``rows=``, ``units=``) to index arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from distmi.core.errors import InvalidParameterError


def normalize_index(sel: Any, n: int, what: str) -> np.ndarray | slice:
    """Turn a selection into a ``slice`` with step 1 or an int64 index array in [0, n).

    Accepted: ``None`` (all), ``slice``/``range``, an int, a sequence or array of ints
    (negative counts from the end; order and repeats are kept), a boolean mask of length n.
    """
    if sel is None:
        return slice(0, n)
    if isinstance(sel, range):
        sel = slice(sel.start, sel.stop, sel.step)
    if isinstance(sel, slice):
        start, stop, step = sel.indices(n)
        if step == 1:
            return slice(start, max(start, stop))
        return np.arange(start, stop, step, dtype=np.int64)
    if isinstance(sel, int | np.integer) and not isinstance(sel, bool):
        sel = [int(sel)]
    if hasattr(sel, "detach"):
        sel = sel.detach().cpu().numpy()
    arr = np.asarray(sel)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise InvalidParameterError(
                f"a boolean {what} mask must have shape ({n},), got {arr.shape}."
            )
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise InvalidParameterError(
            f"{what} must be None, a slice, a range, integer indices or a boolean mask, got "
            f"{type(sel).__name__} with dtype {arr.dtype} and shape {arr.shape}."
        )
    idx = arr.astype(np.int64)
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise InvalidParameterError(
            f"{what} index {int(idx[bad][0])} is out of range for {n} {what}; valid indices are "
            f"0..{n - 1} (or -{n}..-1)."
        )
    return np.where(idx < 0, idx + n, idx)


def selection_size(sel: np.ndarray | slice) -> int:
    return sel.stop - sel.start if isinstance(sel, slice) else len(sel)


def as_array(sel: np.ndarray | slice) -> np.ndarray:
    if isinstance(sel, slice):
        return np.arange(sel.start, sel.stop, dtype=np.int64)
    return sel
