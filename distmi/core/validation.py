"""Input validation shared by every estimator.

Each check raises a :class:`~distmi.core.errors.DistmiError` subclass whose message names the
problem, the offending value and the fix. Nothing here imports torch or ray.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from distmi.core.errors import (
    ConstantColumnError,
    InvalidInputError,
    InvalidParameterError,
    LengthMismatchError,
    NonFiniteInputError,
    NonNumericInputError,
    SingleClassError,
    TooFewSamplesError,
)
from distmi.core.scaling import constant_mask


def _to_numpy(a: Any, name: str) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch tensor without importing torch
        a = a.detach().cpu().numpy()
    elif hasattr(a, "to_numpy"):  # pandas / polars / pyarrow-like
        a = a.to_numpy()
    try:
        return np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic containers
        raise NonNumericInputError(
            f"{name} could not be converted to an array ({exc}); pass a numpy array, "
            "a list of numbers, a pandas object or a torch tensor."
        ) from exc


def as_float_matrix(a: Any, name: str = "x", *, check_constant: bool = True) -> np.ndarray:
    """Validate ``a`` and return it as a float64 matrix of shape (n, d).

    A 1-D input of length n becomes (n, 1). Rejects non-numeric data, more than two
    dimensions, empty input, NaN/Inf (with counts and the first position) and constant
    columns (zero variance, for which MI is undefined).
    """
    arr = _to_numpy(a, name)
    if arr.dtype.kind in "OUSV" or arr.dtype.kind == "M":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            sample = arr.ravel()[:3].tolist()
            raise NonNumericInputError(
                f"{name} must be numeric, got dtype {arr.dtype} with values like {sample}; "
                "encode categories as integers and pass them as a label vector "
                "(discrete_y=True) or convert the column to numbers."
            ) from exc
    if arr.dtype.kind == "c":
        raise NonNumericInputError(
            f"{name} is complex ({arr.dtype}); pass real and imaginary parts as separate columns."
        )
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 0:
        raise InvalidInputError(
            f"{name} is a scalar ({arr.item()!r}); pass an array of shape (n,) or (n, d)."
        )
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{name} must have shape (n,) or (n, d), got shape {arr.shape}; "
            f"reshape it, e.g. {name}.reshape(len({name}), -1)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(
            f"{name} is empty (shape {arr.shape}); pass at least one column and some samples."
        )
    check_finite(arr, name)
    if check_constant:
        check_not_constant(arr, name)
    return np.ascontiguousarray(arr)


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise :class:`NonFiniteInputError` if ``arr`` holds NaN or Inf."""
    finite = np.isfinite(arr)
    if finite.all():
        return
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(np.isinf(arr).sum())
    first = tuple(int(i) for i in np.argwhere(~finite)[0])
    raise NonFiniteInputError(
        f"{name} contains {n_nan} NaN and {n_inf} Inf values (first at index {first}, "
        f"value {arr[first]!r}); drop or impute those rows before estimating MI "
        f"(e.g. mask = np.isfinite({name}).all(axis=1))."
    )


def check_not_constant(arr: np.ndarray, name: str) -> None:
    """Raise :class:`ConstantColumnError` if any column of the (n, d) ``arr`` is constant.

    Constant is relative to the column's own magnitude (:func:`distmi.core.scaling.constant_mask`):
    a column of values around 1e-13 is as usable as one around 1.
    """
    if arr.shape[0] < 2:
        return
    constant = np.flatnonzero(constant_mask(arr, axis=0))
    if constant.size:
        col = int(constant[0])
        raise ConstantColumnError(
            f"{name} column {col} is constant (every value is {float(arr[0, col])!r} up to rounding"
            f"{f'; {constant.size} constant columns in all' if constant.size > 1 else ''}); "
            "MI with a constant is zero by definition and cannot be estimated: "
            "drop constant columns first (e.g. keep = np.ptp(x, axis=0) > 0)."
        )


def as_labels(y: Any, name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Validate a label vector; return (codes, classes).

    Returns:
        codes: int64 array of shape (n,) with values in [0, C).
        classes: array of shape (C,) with the original label values, sorted.
    """
    arr = _to_numpy(y, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInputError(
            f"{name} labels must be a vector of shape (n,), got shape {arr.shape}; "
            "pass one label per sample (use discrete_y=False for continuous multi-column y)."
        )
    if arr.size == 0:
        raise InvalidInputError(f"{name} is empty; pass one label per sample.")
    if arr.dtype.kind == "f":
        check_finite(arr[:, None], name)
        if not np.all(arr == np.round(arr)):
            bad = arr[arr != np.round(arr)][:3].tolist()
            raise InvalidInputError(
                f"{name} was declared discrete but holds non-integer values like {bad}; "
                "pass integer or string class labels, or use discrete_y=False for a "
                "continuous variable."
            )
    try:
        classes, codes = np.unique(arr, return_inverse=True)
    except TypeError as exc:
        raise NonNumericInputError(
            f"{name} labels could not be sorted ({exc}); pass labels of one type "
            "(all integers or all strings)."
        ) from exc
    if classes.size < 2:
        raise SingleClassError(
            f"{name} has a single class ({classes[0]!r} for all {arr.size} samples); "
            "MI with a constant label is zero: pass data that contains at least two classes."
        )
    return codes.astype(np.int64).ravel(), classes


def check_same_length(**arrays: np.ndarray) -> int:
    """Check that all arrays have the same first dimension; return it."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {v}" for k, v in lengths.items())
        raise LengthMismatchError(
            f"inputs must have one row per sample, but {desc} rows; pass arrays whose rows "
            "are paired samples (same length and order)."
        )
    return next(iter(lengths.values()))


def check_min_samples(n: int, required: int, what: str, fix: str) -> None:
    """Raise :class:`TooFewSamplesError` if ``n < required``."""
    if n < required:
        raise TooFewSamplesError(
            f"{what} needs at least {required} samples, got {n}; {fix}"
        )


def check_int(value: Any, name: str, *, minimum: int, maximum: int | None = None) -> int:
    """Validate an integer parameter within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidParameterError(
            f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})."
        )
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise InvalidParameterError(f"{name} must be {bound}, got {value}.")
    return int(value)


def check_float(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    inclusive: bool = True,
) -> float:
    """Validate a finite real number within bounds (strings and booleans are not numbers)."""
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise InvalidParameterError(
            f"{name} must be a number, got {value!r} ({type(value).__name__})."
        )
    out = float(value)
    if not np.isfinite(out):
        raise InvalidParameterError(f"{name} must be finite, got {value!r}.")
    low_ok = minimum is None or (out >= minimum if inclusive else out > minimum)
    high_ok = maximum is None or (out <= maximum if inclusive else out < maximum)
    if not (low_ok and high_ok):
        op = ("[", "]") if inclusive else ("(", ")")
        raise InvalidParameterError(
            f"{name} must be in {op[0]}{minimum}, {maximum}{op[1]}, got {out}."
        )
    return out


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Validate a string option against its allowed values."""
    if value not in choices:
        raise InvalidParameterError(
            f"{name} must be one of {list(choices)}, got {value!r}."
        )
    return str(value)


def check_bool(value: Any, name: str) -> bool:
    """Validate a True/False parameter (``"yes"``, ``1`` or ``None`` are not booleans)."""
    if not isinstance(value, bool | np.bool_):
        raise InvalidParameterError(
            f"{name} must be True or False, got {value!r} ({type(value).__name__})."
        )
    return bool(value)
