"""GMM-MI: mutual information from Gaussian mixtures with bootstrap error bars.

Piras et al. 2023 (arXiv:2211.00024). Fit a Gaussian mixture to the joint samples, choose
the number of components by cross-validated held-out likelihood, then

    I(X; Y) = E_{p(x,y)}[ log p(x, y) - log p(x) - log p(y) ]

from the fitted mixture (marginals of a GMM are GMMs). K grows by splitting components of the
K fit (:mod:`distmi.kernels.gmm_select`). Bootstrap replicates (multinomial weights over one
copy of the data, warm-started EM) give the standard error and a bias-corrected (BCa)
interval. Every fit of a call (starts x folds x candidate K, then replicates) runs as one
batch (:mod:`distmi.kernels.gmm_refit`; compiled kernels on CPU for 1-D/2-D mixtures).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from distmi.core.errors import InvalidInputError, InvalidParameterError
from distmi.core.results import MIResult
from distmi.core.seeds import resolve_seed
from distmi.core.validation import as_float_matrix, as_labels, check_int, check_same_length
from distmi.estimators.base import MIEstimator
from distmi.estimators.gmm_compute import categorical_pairs, continuous_pairs
from distmi.estimators.gmm_config import GMMMIConfig, parse_config


def gmm_mi(
    x: np.ndarray,
    y: np.ndarray,
    *,
    z: np.ndarray | None = None,
    discrete_y: bool,
    n_bootstrap: int,
    random_state: int,
    config: GMMMIConfig,
) -> MIResult:
    """GMM-MI of validated arrays: x (n, dx); y (n, dy) or codes (n,); z (n, dz) or None."""
    if discrete_y:
        if z is not None:
            raise InvalidParameterError(
                "conditional MI with a discrete y is not supported; pass a continuous y "
                "(discrete_y=False) or drop z."
            )
        return categorical_pairs([x], y, config, n_bootstrap, random_state)[0]
    dx, dy = x.shape[1], y.shape[1]
    blocks = [np.concatenate([x, y] if z is None else [x, y, z], axis=1)]
    dims = [list(range(dx)), list(range(dx, dx + dy))]
    if z is not None:
        dims.append(list(range(dx + dy, dx + dy + z.shape[1])))
    return continuous_pairs(blocks, dims, config, n_bootstrap, random_state, z is not None)[0]


class GMMMI(MIEstimator):
    """Sklearn-style GMM-MI estimator (the contract of :class:`MIEstimator`).

    The constructor only stores parameters (see :class:`~distmi.estimators.gmm_config.GMMMIConfig`
    for their meaning and defaults); :meth:`fit` validates, computes and sets:

    Attributes:
        mi_: point estimate in nats (MI of the full-data fit).
        mi_std_: bootstrap standard deviation (ddof=1).
        ci_: (low, high) interval at ``ci_level`` (BCa unless ``ci_method`` says otherwise).
        n_components_: chosen number of components (max over classes for a discrete y).
        converged_: every EM run converged.
        bootstrap_: (n_bootstrap,) replicate estimates.
        result_: the full :class:`~distmi.core.results.MIResult`.

    Example:
        >>> est = GMMMI(n_bootstrap=20).fit(x, y)      # doctest: +SKIP
        >>> est.mi_, est.ci_                           # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        n_bootstrap: int = 100,
        discrete_y: bool = False,
        random_state: int = 0,
        n_components: int | None = None,
        max_components: int = 50,
        select: str = "cv",
        n_folds: int = 2,
        n_inits: int = 3,
        init: str = "split",
        threshold: float = 1e-5,
        patience: int = 1,
        reg_covar: float = 1e-6,
        tol: float = 1e-5,
        max_iter: int = 10_000,
        integration: str = "auto",
        mc_samples: int = 100_000,
        n_nodes: int | None = None,
        ci_level: float = 0.95,
        jitter: float = 0.0,
        select_samples: int | None = 5000,
        probe_iter: int = 5,
        stop_hopeless: bool = True,
        ci_method: str = "bca",
        acceleration: str = "influence",
        n_jackknife: int = 10,
        bootstrap_init: str = "warm",
        backend: str = "auto",
        device: str = "cpu",
    ) -> None:
        self.n_bootstrap = n_bootstrap
        self.discrete_y = discrete_y
        self.random_state = random_state
        self.n_components = n_components
        self.max_components = max_components
        self.select = select
        self.n_folds = n_folds
        self.n_inits = n_inits
        self.init = init
        self.threshold = threshold
        self.patience = patience
        self.reg_covar = reg_covar
        self.tol = tol
        self.max_iter = max_iter
        self.integration = integration
        self.mc_samples = mc_samples
        self.n_nodes = n_nodes
        self.ci_level = ci_level
        self.jitter = jitter
        self.select_samples = select_samples
        self.probe_iter = probe_iter
        self.stop_hopeless = stop_hopeless
        self.ci_method = ci_method
        self.acceleration = acceleration
        self.n_jackknife = n_jackknife
        self.bootstrap_init = bootstrap_init
        self.backend = backend
        self.device = device

    method = "gmm"
    _CALL_PARAMS = ("n_bootstrap", "discrete_y", "random_state")

    def _config(self) -> GMMMIConfig:
        params = self.get_params()
        for name in self._CALL_PARAMS:
            params.pop(name)
        return parse_config(**params)

    def estimate(self, x: Any, y: Any, z: Any = None) -> MIResult:
        """Validate the inputs and return the estimate as an :class:`MIResult`."""
        config = self._config()
        seed = resolve_seed(self.random_state)
        n_bootstrap = check_int(self.n_bootstrap, "n_bootstrap", minimum=0)
        x_arr = as_float_matrix(x, "x")
        y_arr = as_labels(y, "y")[0] if self.discrete_y else as_float_matrix(y, "y")
        z_arr = None if z is None else as_float_matrix(z, "z")
        arrays = {"x": x_arr, "y": y_arr} | ({} if z_arr is None else {"z": z_arr})
        check_same_length(**arrays)
        return gmm_mi(
            x_arr, y_arr, z=z_arr, discrete_y=bool(self.discrete_y), n_bootstrap=n_bootstrap,
            random_state=seed, config=config,
        )

    def fit(self, x: Any, y: Any, z: Any = None) -> GMMMI:
        """Estimate I(X; Y) (or I(X; Y | Z) when ``z`` is given); returns ``self``."""
        result = self.estimate(x, y, z)
        self.result_ = result
        self.mi_ = result.value
        self.mi_std_ = result.std
        self.ci_ = result.ci
        self.n_components_ = result.diagnostics["n_components"]
        self.converged_ = result.diagnostics["converged"]
        self.bootstrap_ = np.asarray(result.diagnostics["bootstrap"])
        self.status_ = result.status
        return self


def check_finite_result(result: MIResult) -> MIResult:
    """Guard: a non-finite estimate is a bug or a degenerate input, never a silent NaN."""
    if not math.isfinite(result.value):
        raise InvalidInputError(
            "GMM-MI produced a non-finite estimate; check the input for duplicated or "
            "degenerate columns, or raise reg_covar."
        )
    return result
