"""The one-line API: :func:`mutual_information` and :func:`pairwise_mi`.

Both validate input once, look the estimator up in the registry and return results in nats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from distmi.core.errors import InvalidInputError, InvalidParameterError
from distmi.core.results import MIResult
from distmi.core.seeds import resolve_seed
from distmi.core.validation import as_float_matrix, as_labels, check_int, check_same_length
from distmi.estimators.registry import get_method

if TYPE_CHECKING:
    import pandas as pd


def _prepare_y(y: Any, discrete_y: bool, method_name: str, supports_discrete: bool) -> np.ndarray:
    if discrete_y:
        if not supports_discrete:
            raise InvalidParameterError(
                f"method {method_name!r} does not support a discrete y; use method='gmm' or "
                "method='ksg', or pass discrete_y=False for a continuous y."
            )
        codes, _ = as_labels(y, "y")
        return codes
    return as_float_matrix(y, "y")


def mutual_information(
    x: Any,
    y: Any,
    method: str = "gmm",
    discrete_y: bool = False,
    n_bootstrap: int = 100,
    random_state: int | None = 0,
    **params: Any,
) -> MIResult:
    """Estimate I(X; Y) in nats with an error bar.

    Args:
        x: samples of X, shape (n,) or (n, dx).
        y: samples of Y, shape (n,) or (n, dy); or a label vector (n,) when ``discrete_y``.
        method: registry name (``distmi.available_methods()``), e.g. ``"gmm"``.
        discrete_y: treat ``y`` as class labels (MI uses the empirical class prior).
        n_bootstrap: bootstrap replicates for the standard error and the 95% interval
            (0 disables them where the method allows).
        random_state: root seed, an integer in [0, 2^63): the same seed gives the same
            numbers. ``None`` draws a fresh seed from the operating system and records it in
            ``result.params["random_state"]``, which reproduces the result when passed back.
        **params: estimator parameters (see the method's documentation).

    Returns:
        :class:`~distmi.core.results.MIResult` with ``.value``, ``.std``, ``.ci``, ``.unit``.

    Example:
        >>> import numpy as np, distmi
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=2000); y = 0.6 * x + 0.8 * rng.normal(size=2000)
        >>> r = distmi.mutual_information(x, y, n_bootstrap=20)
        >>> abs(r.value - 0.2231) < 4 * r.std
        True
    """
    spec = get_method(method)
    seed = resolve_seed(random_state)
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=0)
    x_arr = as_float_matrix(x, "x")
    y_arr = _prepare_y(y, discrete_y, spec.name, spec.supports_discrete_y)
    check_same_length(x=x_arr, y=y_arr)
    return spec.estimate(
        x_arr,
        y_arr,
        discrete_y=bool(discrete_y),
        n_bootstrap=n_bootstrap,
        random_state=seed,
        **params,
    )


def _pair_list(pairs: Sequence[tuple[int, int]] | None, p: int, q: int) -> np.ndarray:
    if pairs is None:
        ii, jj = np.meshgrid(np.arange(p), np.arange(q), indexing="ij")
        return np.stack([ii.ravel(), jj.ravel()], axis=1).astype(np.int64)
    arr = np.asarray(pairs)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0 or arr.dtype.kind not in "iu":
        raise InvalidParameterError(
            f"pairs must be a non-empty list of (x column, y column) integer pairs, got shape "
            f"{arr.shape} and dtype {arr.dtype}; e.g. pairs=[(0, 0), (0, 1)]."
        )
    bad_x = arr[(arr[:, 0] < 0) | (arr[:, 0] >= p)]
    bad_y = arr[(arr[:, 1] < 0) | (arr[:, 1] >= q)]
    if len(bad_x) or len(bad_y):
        bad = (bad_x if len(bad_x) else bad_y)[0].tolist()
        raise InvalidParameterError(
            f"pair {bad} is out of range: X has {p} columns and Y has {q}; "
            "use column indices in [0, p) and [0, q)."
        )
    return arr.astype(np.int64)


def pairwise_mi(
    X: Any,
    Y: Any,
    method: str = "gmm",
    pairs: Sequence[tuple[int, int]] | None = None,
    discrete_y: bool = False,
    n_bootstrap: int = 100,
    random_state: int | None = 0,
    **params: Any,
) -> pd.DataFrame:
    """MI for many (column of X, column of Y) pairs, solved as one batched program.

    Args:
        X: shape (n, p).
        Y: shape (n, q), or a label vector (n,) with ``discrete_y=True``.
        pairs: list of (i, j) column pairs; default all p x q pairs (with labels: all i).
        Other arguments as in :func:`mutual_information`. Every pair uses ``random_state``,
        so row (i, j) equals ``mutual_information(X[:, i], Y[:, j], random_state=...)``.

    Returns:
        A pandas DataFrame, one row per pair, with columns ``x_index``, ``y_index``,
        ``estimate``, ``std``, ``ci_low``, ``ci_high``, ``n_samples``, ``method`` and the
        method's scalar diagnostics (``n_components`` for gmm; ``status`` where the method
        flags untrustworthy values). ``table.attrs["random_state"]`` is the seed used.
    """
    import pandas as pd

    spec = get_method(method)
    seed = resolve_seed(random_state)
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=0)
    X_arr = as_float_matrix(X, "X")
    Y_arr = _prepare_y(Y, discrete_y, spec.name, spec.supports_discrete_y)
    check_same_length(X=X_arr, Y=Y_arr)
    q = 1 if discrete_y else Y_arr.shape[1]
    pair_arr = _pair_list(pairs, X_arr.shape[1], q)
    common = dict(discrete_y=bool(discrete_y), n_bootstrap=n_bootstrap, random_state=seed)
    if spec.estimate_pairs is not None:
        results = spec.estimate_pairs(X_arr, Y_arr, pair_arr, **common, **params)
    else:
        results = [
            spec.estimate(
                X_arr[:, [i]], Y_arr if discrete_y else Y_arr[:, [j]], **common, **params
            )
            for i, j in pair_arr
        ]
    if len(results) != len(pair_arr):
        raise InvalidInputError(  # pragma: no cover - contract check on plug-ins
            f"method {spec.name!r} returned {len(results)} results for {len(pair_arr)} pairs"
        )
    rows = []
    for (i, j), res in zip(pair_arr, results, strict=True):
        row = {
            "x_index": int(i),
            "y_index": int(j),
            "estimate": res.value,
            "std": res.std,
            "ci_low": res.ci[0],
            "ci_high": res.ci[1],
            "n_samples": res.n_samples,
            "method": res.method,
        }
        for key, value in res.diagnostics.items():
            if isinstance(value, int | float | bool | str | np.number | np.bool_):
                row[key] = value
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["random_state"] = seed  # the seed used (drawn fresh when random_state=None)
    return table
