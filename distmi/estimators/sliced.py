"""Sliced mutual information (``method="sliced"``) over thousands of random projections.

SMI(X; Y) = E_{theta, phi}[ I(theta^T X; phi^T Y) ] with theta, phi uniform on the unit spheres
(Goldfeld & Greenewald 2021), or k-dimensional Haar frames for k-sliced MI (Goldfeld et al.
2022); with a label Y only X is projected: E_theta[ I(theta^T X; Y) ]. The estimate averages the
base estimator over m slices (the "max" statistic takes the largest slice instead: a
max-sliced variant over the drawn slices).

Uncertainty and scale, reported together because SMI is not MI (it decays like 1/d, so values
of layers of different widths are only comparable against their own null):

- ``slice_se`` = sd over slices / sqrt(m): Monte-Carlo error of the slice average given the
  data; it ignores sampling noise (slices share samples).
- ``std`` and ``ci``: resampling over rows with *fresh slices in every replicate*, so they
  cover both sampling and slicing noise. ``resample="auto"`` is half-sampling for the KSG base
  (see :mod:`distmi.estimators.ksg_config`) and the ordinary bootstrap otherwise. Without
  replicates (``n_bootstrap=0``) ``std`` falls back to ``slice_se``.
- ``null_value``: the same statistic with the same slices after shuffling y's rows; the excess
  over it is the dependence the estimator can see at this n, d and m.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

from distmi.core.devices import Device
from distmi.core.errors import InvalidParameterError
from distmi.core.params import StrictParams, parse_params
from distmi.core.results import MIResult, percentile_interval
from distmi.core.scaling import prescale
from distmi.core.seeds import derive_rng
from distmi.estimators.base import MIEstimator
from distmi.estimators.ksg_config import (
    KSGConfig,
    check_neighbours,
    half_sample,
)
from distmi.estimators.registry import MethodSpec, get_method
from distmi.estimators.sliced_compute import slice_values
from distmi.kernels.slicing import random_frames


class SlicedConfig(StrictParams):
    """Settings of sliced MI."""

    n_slices: int = Field(1000, ge=1, description="m, the number of random slices")
    slice_dim: int = Field(1, ge=1, description="k of k-sliced MI (dimension of each slice)")
    base: Literal["ksg", "gaussian", "gmm"] = "ksg"
    statistic: Literal["mean", "max"] = "mean"
    k: int = Field(3, ge=1, description="KSG neighbours")
    algorithm: Literal[1, 2] = 1
    jitter: float = Field(1e-10, ge=0.0, le=1e-3)
    backend: Literal["auto", "compiled", "grid", "kdtree", "brute"] = "auto"
    device: Device = "cpu"
    n_jobs: int = Field(1, ge=1, le=256, description="threads for the KSG base")
    n_permutations: int = Field(1, ge=0, description="shuffles of y for the null value")
    resample: Literal["auto", "half", "bootstrap"] = "auto"
    ci_level: float = Field(0.95, gt=0.0, lt=1.0)
    gmm_params: dict[str, Any] = Field(default_factory=dict)
    memory_budget: float = Field(256e6, gt=1e6)

    def ksg_config(self) -> KSGConfig:
        return KSGConfig(k=self.k, algorithm=self.algorithm, jitter=self.jitter,
                         backend=self.backend, device=self.device, n_jobs=self.n_jobs,
                         memory_budget=self.memory_budget)


def parse_sliced_config(**params: object) -> SlicedConfig:
    """Validate sliced-MI parameters (unknown names are rejected with the allowed list)."""
    return parse_params(SlicedConfig, "sliced-MI", params)


def validate_sliced_params(params: dict[str, Any]) -> None:
    """``MethodSpec.validate_params`` of ``method="sliced"`` (``gmm_params`` by GMM's schema)."""
    cfg = parse_sliced_config(**params)
    if cfg.base == "gmm":
        get_method("gmm").check_params(cfg.gmm_params)


def _check(cfg: SlicedConfig, n: int, dx: int, dy: int | None, n_bootstrap: int) -> str:
    """Validate the shape-dependent parameters; return the resampling scheme."""
    for name, d in (("x", dx), ("y", dy)):
        if d is not None and cfg.slice_dim > d:
            raise InvalidParameterError(
                f"slice_dim={cfg.slice_dim} exceeds the {d} columns of {name}; a slice "
                f"projects onto slice_dim orthonormal directions, so use slice_dim <= {d}."
            )
    if cfg.base == "gmm" and cfg.slice_dim != 1:
        raise InvalidParameterError(
            f"base='gmm' supports 1-D slices only, got slice_dim={cfg.slice_dim}; use "
            "base='ksg' or base='gaussian' for k-sliced MI."
        )
    resample = cfg.resample
    if resample == "auto":
        resample = "half" if cfg.base == "ksg" else "bootstrap"
    if cfg.base == "ksg":
        check_neighbours(n, cfg.k, n_bootstrap if resample == "half" else 0, "sliced KSG")
    elif n < 3:
        raise InvalidParameterError(f"sliced MI needs at least 3 samples, got {n}.")
    return resample


def _statistic(values: np.ndarray, statistic: str) -> float:
    return float(values.max() if statistic == "max" else values.mean())


def estimate(
    x: np.ndarray,
    y: np.ndarray,
    *,
    discrete_y: bool,
    n_bootstrap: int,
    random_state: int,
    **params: Any,
) -> MIResult:
    """``distmi.mutual_information(x, y, method="sliced", n_slices=1000, base="ksg", ...)``."""
    cfg = parse_sliced_config(**params)
    n, dx = x.shape
    dy = None if discrete_y else y.shape[1]
    # one power-of-two scale per variable (exact; SMI is invariant under it): any data scale
    # gives the numbers of unit-scale data, with no overflow in projections or covariances
    x = prescale(x)[0]
    if not discrete_y:
        y = prescale(y)[0]
    resample = _check(cfg, n, dx, dy, n_bootstrap)
    ksg = cfg.ksg_config()
    seed = random_state

    def run(xs: np.ndarray, ys: np.ndarray, *key: str | int) -> np.ndarray:
        fx = random_frames(dx, cfg.n_slices, cfg.slice_dim, seed, *key, "x")
        fy = None if discrete_y else random_frames(dy, cfg.n_slices, cfg.slice_dim, seed, *key, "y")
        return slice_values(xs, ys, fx, fy, base=cfg.base, discrete_y=discrete_y, ksg=ksg,
                            seed=seed, gmm_params=cfg.gmm_params,
                            memory_budget=cfg.memory_budget)

    values = run(x, y)
    value = _statistic(values, cfg.statistic)
    m = cfg.n_slices
    slice_sd = float(values.std(ddof=1)) if m > 1 else math.nan
    slice_se = slice_sd / math.sqrt(m) if cfg.statistic == "mean" else math.nan

    null = np.array([
        _statistic(run(x, y[derive_rng(seed, "permutation", p).permutation(n)]), cfg.statistic)
        for p in range(cfg.n_permutations)
    ])

    reps = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        if resample == "half":
            rows = half_sample(seed, b, n)
        else:
            rows = derive_rng(seed, "bootstrap", b).integers(0, n, n)
        reps[b] = _statistic(run(x[rows], y[rows], "bootstrap", b), cfg.statistic)

    if n_bootstrap >= 2:
        scale = math.sqrt((n // 2) / (n - n // 2)) if resample == "half" else 1.0
        std = scale * float(reps.std(ddof=1))
        low, high = percentile_interval(reps - reps.mean(), cfg.ci_level)
        ci = (value + scale * low, value + scale * high)
        std_source = f"{resample} resampling, slices redrawn"
    else:
        std, ci, std_source = slice_se, (math.nan, math.nan), "slices"

    diagnostics = {
        "dx": dx,
        "dy": dy if dy is not None else 0,
        "n": n,
        "n_slices": m,
        "slice_dim": cfg.slice_dim,
        "base": cfg.base,
        "k": cfg.k if cfg.base == "ksg" else None,
        "statistic": cfg.statistic,
        "slice_mean": float(values.mean()),
        "slice_sd": slice_sd,
        "slice_se": slice_se,
        "null_value": float(null.mean()) if null.size else math.nan,
        "null_sd": float(null.std(ddof=1)) if null.size > 1 else math.nan,
        "excess_over_null": value - float(null.mean()) if null.size else math.nan,
        "std_source": std_source,
        "slice_values": values,
        "null_values": null,
        "replicates": reps,
    }
    params_out = {**cfg.model_dump(), "n_bootstrap": n_bootstrap, "random_state": seed,
                  "resample": resample}
    return MIResult(value, std, ci, n, "sliced", params_out, diagnostics)


SLICED_METHOD = MethodSpec(
    name="sliced",
    estimate=estimate,
    estimate_pairs=None,
    supports_discrete_y=True,
    supports_multivariate=True,
    description="sliced MI: mean MI over random projections (KSG/GMM/Gaussian base), with null",
    validate_params=validate_sliced_params,
    estimator_class="distmi.estimators.sliced:SlicedMI",
)


class SlicedMI(MIEstimator):
    """Scikit-learn-style sliced-MI estimator (the contract of :class:`MIEstimator`).

    The constructor stores parameters (see :class:`SlicedConfig` for the estimator settings,
    passed as keywords); :meth:`fit` validates the data, estimates and sets ``result_``,
    ``mi_``, ``mi_std_``, ``ci_``, ``status_``, ``null_`` and ``slice_values_``.
    """

    method = "sliced"
    extra_params_attr = "settings"

    def __init__(self, n_slices: int = 1000, slice_dim: int = 1, base: str = "ksg",
                 discrete_y: bool = False, n_bootstrap: int = 50, random_state: int | None = 0,
                 **settings: Any) -> None:
        self.n_slices = n_slices
        self.slice_dim = slice_dim
        self.base = base
        self.discrete_y = discrete_y
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.settings = dict(settings)

    def _extra_param_names(self) -> tuple[str, ...]:
        return tuple(SlicedConfig.model_fields)

    def _set_fitted(self, result: MIResult) -> None:
        self.null_ = result.diagnostics["null_value"]
        self.slice_values_ = result.diagnostics["slice_values"]
