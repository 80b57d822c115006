"""Registry entry ``method="gmm"`` (single estimates and batched column pairs)."""

from __future__ import annotations

from typing import Any

import numpy as np

from distmi.core.results import MIResult
from distmi.core.validation import as_float_matrix, check_same_length
from distmi.estimators.gmm import check_finite_result, gmm_mi
from distmi.estimators.gmm_compute import categorical_pairs, continuous_pairs
from distmi.estimators.gmm_config import parse_config, validate_gmm_params
from distmi.estimators.registry import MethodSpec


def estimate(
    x: np.ndarray,
    y: np.ndarray,
    *,
    discrete_y: bool,
    n_bootstrap: int,
    random_state: int,
    z: Any = None,
    **params: Any,
) -> MIResult:
    """``distmi.mutual_information(..., method="gmm")``; ``z=`` gives I(X; Y | Z)."""
    config = parse_config(**params)
    z_arr = None
    if z is not None:
        z_arr = as_float_matrix(z, "z")
        check_same_length(x=x, z=z_arr)
    return check_finite_result(
        gmm_mi(x, y, z=z_arr, discrete_y=discrete_y, n_bootstrap=n_bootstrap,
               random_state=random_state, config=config)
    )


def estimate_pairs(
    X: np.ndarray,
    Y: np.ndarray,
    pairs: np.ndarray,
    *,
    discrete_y: bool,
    n_bootstrap: int,
    random_state: int,
    **params: Any,
) -> list[MIResult]:
    """All (X[:, i], Y[:, j]) pairs as one batched fit (or X[:, i] vs labels Y)."""
    config = parse_config(**params)
    if discrete_y:
        blocks = [X[:, [i]] for i in pairs[:, 0]]
        results = categorical_pairs(blocks, Y, config, n_bootstrap, random_state)
    else:
        blocks = [np.stack([X[:, i], Y[:, j]], axis=1) for i, j in pairs]
        results = continuous_pairs(blocks, [[0], [1]], config, n_bootstrap, random_state)
    return [check_finite_result(r) for r in results]


GMM_METHOD = MethodSpec(
    name="gmm",
    estimate=estimate,
    estimate_pairs=estimate_pairs,
    supports_discrete_y=True,
    supports_multivariate=True,
    description="GMM-MI: Gaussian-mixture MI with CV-selected components and bootstrap CIs",
    validate_params=validate_gmm_params,
    supports_conditional=True,
    estimator_class="distmi.estimators.gmm:GMMMI",
)
