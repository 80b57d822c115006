"""The one-line API: :func:`mutual_information`, :func:`pairwise_mi` and :func:`screen_pairs`.

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
    n_permutations: int | str = 0,
    fdr: float | None = None,
    fdr_method: str = "bh",
    screen: str = "ksg+gaussian",
    screen_k: int = 5,
    **params: Any,
) -> pd.DataFrame:
    """MI for many (column of X, column of Y) pairs, solved as one batched program.

    With ``n_permutations`` every pair also gets a permutation p-value from the rank screen
    (the same statistics as a job's ``screen:`` section, see ``docs/engine.md``): one null
    table of ``n_permutations`` permutations serves every pair, and q-values are
    Benjamini-Hochberg (``fdr_method="by"``: Benjamini-Yekutieli) within each Y column (each
    target). With ``fdr`` as well, the sweep is two-stage: ``method`` runs only on pairs with
    q <= fdr, and the other rows keep NaN estimates.

    Args:
        X: shape (n, p).
        Y: shape (n, q), or a label vector (n,) with ``discrete_y=True``.
        pairs: list of (i, j) column pairs; default all p x q pairs (with labels: all i).
        n_permutations: permutations of the screen's null table (0: no p-values; else >= 100,
            or ``"auto"`` as in :func:`screen_pairs`).
        fdr: refine only the pairs with q-value <= fdr (needs ``n_permutations``).
        fdr_method: ``"bh"`` or ``"by"``.
        screen: rank statistic(s) of the screen: ``"ksg+gaussian"`` (min-P of copula KSG and
            the Gaussian copula), ``"ksg"``, ``"gaussian"`` or ``"xi"``.
        screen_k: neighbours of the copula KSG statistic.
        Other arguments as in :func:`mutual_information`. Every pair uses ``random_state``,
        so row (i, j) equals ``mutual_information(X[:, i], Y[:, j], random_state=...)``.

    Returns:
        A pandas DataFrame, one row per pair, with columns ``x_index``, ``y_index``,
        ``estimate``, ``std``, ``ci_low``, ``ci_high``, ``n_samples``, ``method`` and the
        method's scalar diagnostics (``n_components`` for gmm; ``status`` where the method
        flags untrustworthy values); with ``n_permutations`` also
        ``screen_estimate`` (copula KSG MI in nats, or the screen's first statistic),
        ``p_value``, ``q_value``, and with ``fdr`` ``significant`` and ``stage``
        (``"refined"`` or ``"screen"``). ``table.attrs["random_state"]`` is the seed used.

    Example:
        >>> import numpy as np, distmi
        >>> rng = np.random.default_rng(0)
        >>> y = rng.normal(size=(2000, 1)); X = rng.normal(size=(2000, 20))
        >>> X[:, 3] = y[:, 0] ** 2 + 0.5 * X[:, 3]           # non-monotone, hidden to correlation
        >>> t = distmi.pairwise_mi(X, y, n_permutations="auto", fdr=0.05, n_bootstrap=0)
        >>> t.loc[t.significant, "x_index"].tolist()
        [3]
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
    screen_cols = None
    if n_permutations or fdr is not None:
        screen_cols = _screen_arrays(X_arr, Y_arr, pair_arr, bool(discrete_y), seed,
                                     n_permutations, fdr, fdr_method, screen, screen_k)
        screen_cols = {key: value for key, value in screen_cols.items()
                       if key in ("screen_estimate", "p_value", "q_value", "significant")}
    run = np.ones(len(pair_arr), dtype=bool) if fdr is None else screen_cols["significant"]
    common = dict(discrete_y=bool(discrete_y), n_bootstrap=n_bootstrap, random_state=seed)
    todo = pair_arr[run]
    if not len(todo):
        results = []
    elif spec.estimate_pairs is not None:
        results = spec.estimate_pairs(X_arr, Y_arr, todo, **common, **params)
    else:
        results = [
            spec.estimate(
                X_arr[:, [i]], Y_arr if discrete_y else Y_arr[:, [j]], **common, **params
            )
            for i, j in todo
        ]
    if len(results) != len(todo):
        raise InvalidInputError(  # pragma: no cover - contract check on plug-ins
            f"method {spec.name!r} returned {len(results)} results for {len(todo)} pairs"
        )
    it = iter(results)
    rows = []
    for k, (i, j) in enumerate(pair_arr):
        row: dict[str, Any] = {"x_index": int(i), "y_index": int(j)}
        if run[k]:
            res = next(it)
            row.update(estimate=res.value, std=res.std, ci_low=res.ci[0], ci_high=res.ci[1],
                       n_samples=res.n_samples, method=res.method)
            for key, value in res.diagnostics.items():
                if isinstance(value, int | float | bool | str | np.number | np.bool_):
                    row[key] = value
        else:
            row.update(estimate=np.nan, std=np.nan, ci_low=np.nan, ci_high=np.nan,
                       n_samples=len(X_arr), method=spec.name)
        rows.append(row)
    table = pd.DataFrame(rows)
    if screen_cols is not None:
        for name, values in screen_cols.items():
            table[name] = values
        if fdr is not None:
            table["stage"] = np.where(run, "refined", "screen")
    table.attrs["random_state"] = seed  # the seed used (drawn fresh when random_state=None)
    return table


def screen_pairs(
    X: Any,
    Y: Any,
    pairs: Sequence[tuple[int, int]] | None = None,
    discrete_y: bool = False,
    n_permutations: int | str = "auto",
    fdr: float | None = 0.05,
    fdr_method: str = "bh",
    method: str = "ksg+gaussian",
    k: int = 5,
    random_state: int | None = 0,
    threads: int = 1,
) -> pd.DataFrame:
    """Screen many (column of X, column of Y) pairs for dependence: rank statistics with
    permutation p-values and q-values (the first stage of a two-stage sweep).

    Every statistic is computed on ranks (ties broken at random, seeded per column), so one
    null table of ``n_permutations`` permutations serves every pair (see ``docs/engine.md``).
    ``method="ksg+gaussian"`` combines copula KSG (detects non-monotone dependence; an MI in
    nats) with the Gaussian copula (powerful for weak monotone dependence) by the min-P rule.
    q-values are Benjamini-Hochberg (``"by"``: Benjamini-Yekutieli) within each Y column.

    Args:
        X: shape (n, p).
        Y: shape (n, q), or a label vector (n,) with ``discrete_y=True``.
        pairs: list of (i, j) column pairs; default all p x q pairs (with labels: all i).
        n_permutations: permutations of the null table (0: no p-values; else >= 100);
            ``"auto"``: enough that a single pair of a Y column can reach q <= fdr
            ((C + 1) m / fdr for m pairs per Y column and C statistics, 2000 to 100,000).
        fdr: level of the ``significant`` column (q <= fdr); ``None``: no such column.
        fdr_method: ``"bh"`` or ``"by"``.
        method: ``"ksg+gaussian"``, ``"ksg"``, ``"gaussian"`` or ``"xi"``.
        k: neighbours of the copula KSG statistic.
        random_state: root seed of the tie-breaks and permutations.
        threads: threads for the statistics (the kernels release the GIL).

    Returns:
        A DataFrame, one row per pair: ``x_index``, ``y_index``, ``screen_estimate`` (the first
        statistic: copula KSG MI in nats for ``ksg`` methods), ``screen_<statistic>`` for each
        statistic, and with permutations ``p_value``, ``q_value`` (and ``significant`` with
        ``fdr``). A constant column gives screen_estimate 0 and NaN p/q-values (not a test).

    Example:
        >>> import numpy as np, distmi
        >>> rng = np.random.default_rng(0)
        >>> y = rng.normal(size=(2000, 1)); X = rng.normal(size=(2000, 50))
        >>> X[:, 7] = np.abs(y[:, 0]) + X[:, 7]              # non-monotone
        >>> t = distmi.screen_pairs(X, y)                      # n_permutations="auto": 2999
        >>> t.loc[t.significant, "x_index"].tolist()
        [7]
    """
    import pandas as pd

    seed = resolve_seed(random_state)
    threads = check_int(threads, "threads", minimum=1)
    X_arr = as_float_matrix(X, "X")
    if discrete_y:
        Y_arr = as_labels(Y, "Y")[0]
    else:
        Y_arr = as_float_matrix(Y, "Y")
    check_same_length(X=X_arr, Y=Y_arr)
    q = 1 if discrete_y else Y_arr.shape[1]
    pair_arr = _pair_list(pairs, X_arr.shape[1], q)
    cols = _screen_arrays(X_arr, Y_arr, pair_arr, bool(discrete_y), seed, n_permutations, fdr,
                          fdr_method, method, k, threads)
    return pd.DataFrame({"x_index": pair_arr[:, 0], "y_index": pair_arr[:, 1], **cols})


def _screen_arrays(X: np.ndarray, Y: np.ndarray, pairs: np.ndarray, discrete_y: bool,
                   seed: int, n_permutations: int, fdr: float | None, fdr_method: str,
                   screen: str, k: int, threads: int = 1) -> dict[str, np.ndarray]:
    """Screen columns of validated arrays (see :func:`screen_pairs`)."""
    from distmi.kernels.rank_screen import SCREEN_METHODS, screen_statistics
    from distmi.kernels.significance import FDR_METHODS, adjust_pvalues, min_p_pvalues
    from distmi.reduce.screen_stats import (
        auto_permutations,
        categorical_null_key,
        continuous_null_key,
        null_statistics,
        tie_broken_ranks,
    )

    if screen not in SCREEN_METHODS:
        raise InvalidParameterError(
            f"screen method must be one of {list(SCREEN_METHODS)}, got {screen!r}."
        )
    if fdr_method not in FDR_METHODS:
        raise InvalidParameterError(f"fdr_method must be 'bh' or 'by', got {fdr_method!r}.")
    if fdr is not None and (isinstance(fdr, bool) or not isinstance(fdr, int | float)
                            or not 0.0 < fdr < 1.0):
        raise InvalidParameterError(
            f"fdr must lie in (0, 1) (a false discovery rate such as 0.05), got {fdr!r}."
        )
    if n_permutations == "auto":
        family = int(np.bincount(pairs[:, 1]).max())
        n_permutations = auto_permutations(family, fdr, len(SCREEN_METHODS[screen]), fdr_method)
    n_permutations = check_int(n_permutations, "n_permutations", minimum=0)
    if (n_permutations or fdr is not None) and n_permutations < 100:
        raise InvalidParameterError(
            f"n_permutations={n_permutations} is too few for p-values: the smallest p-value "
            "is 1/(n_permutations + 1); pass n_permutations >= 100 (e.g. 2000)"
            + (", or fdr=None." if fdr is not None else ", or 0 for no p-values.")
        )
    n = len(X)
    k = check_int(k, "k", minimum=1, maximum=n - 1)
    comps = SCREEN_METHODS[screen]
    xs = np.unique(pairs[:, 0])
    ok_x = np.ptp(X[:, xs], axis=0) > 0
    rank_x = tie_broken_ranks(X[:, xs], seed, [("x", int(i)) for i in xs])
    rows_x = np.searchsorted(xs, pairs[:, 0])
    if discrete_y:
        partner, key, ok_pair = Y, categorical_null_key(Y), ok_x[rows_x]
        idx = np.stack([rows_x, np.zeros_like(rows_x)], axis=1)
    else:
        ys = np.unique(pairs[:, 1])
        ok_y = np.ptp(Y[:, ys], axis=0) > 0
        partner = tie_broken_ranks(Y[:, ys], seed, [("y", int(j)) for j in ys])
        rows_y = np.searchsorted(ys, pairs[:, 1])
        key, ok_pair = continuous_null_key(n), ok_x[rows_x] & ok_y[rows_y]
        idx = np.stack([rows_x, rows_y], axis=1)
    stats = screen_statistics(comps, rank_x, partner, idx, k=k, discrete=discrete_y,
                              threads=threads)
    stats[~ok_pair] = 0.0  # a constant column has MI exactly 0 and is not a test
    out = {"screen_estimate": stats[:, 0]}
    for c, name in enumerate(comps):
        out[f"screen_{name}"] = stats[:, c]
    if n_permutations:
        null = null_statistics(comps, k, key, seed, 0, n_permutations, threads=threads)
        p = np.where(ok_pair, min_p_pvalues(stats, null), np.nan)
        q_values = adjust_pvalues(p, fdr_method, groups=pairs[:, 1])
        out.update(p_value=p, q_value=q_values)
        if fdr is not None:
            out["significant"] = q_values <= fdr
    return out
