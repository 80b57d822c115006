"""Protocols the layers above implement. Imports nothing from distmi."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class MIEstimator(Protocol):
    """An sklearn-style MI estimator: constructor stores params, ``fit`` computes."""

    def fit(self, x: Any, y: Any, z: Any = None) -> MIEstimator: ...

    def get_params(self, deep: bool = True) -> dict[str, Any]: ...


class EstimateFn(Protocol):
    """``estimate(x, y, *, discrete_y, n_bootstrap, random_state, **params) -> MIResult``.

    ``x`` is a validated float64 array (n, dx); ``y`` is float64 (n, dy) or int64 label codes
    (n,) when ``discrete_y`` is true.
    """

    def __call__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        discrete_y: bool,
        n_bootstrap: int,
        random_state: int,
        **params: Any,
    ) -> Any: ...


class EstimatePairsFn(Protocol):
    """``estimate_pairs(X, Y, pairs, *, discrete_y, n_bootstrap, random_state, **params)``.

    ``X`` is (n, p) float64, ``Y`` is (n, q) float64 or label codes (n,), ``pairs`` is (P, 2)
    int64 of (x column, y column) (y column 0 for labels). Returns one ``MIResult`` per pair,
    each equal to ``estimate(X[:, [i]], Y[:, [j]], ...)`` with the same seed.
    """

    def __call__(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        pairs: np.ndarray,
        *,
        discrete_y: bool,
        n_bootstrap: int,
        random_state: int,
        **params: Any,
    ) -> list[Any]: ...
