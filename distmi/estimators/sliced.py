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
- ``std`` and ``ci`` with ``resample="slice-groups"`` (the default): B half-samples of the rows
  (r = n/2 without replacement), each re-estimating its own group of g = m/B of the estimate's
  slices, on the projections already made; together they cost about half of the estimate
  (not B times it). Write d_j = I_j(half b) - I_j(all rows) for slice j of group b, U_b for
  the mean of d_j over the group and w_b for their variance. Subtracting each slice's own
  full-sample value removes how much the slices differ from each other, so

      Var_data(half) = var_b(U_b) - mean_b(w_b) / g      (the slice-specific noise removed)
      Var(SMI) = r / (n - r) * Var_data(half) + slice_sd^2 / m

  (the delete-d jackknife of Shao & Wu 1989 for the part all slices share, as for KSG; the
  second term is the Monte-Carlo error of the slice average), and the interval is the normal
  one, value +- z sd. ``resample="half"`` (and ``"bootstrap"``) redraw all m slices on every
  replicate instead, B times the cost of the estimate, with a percentile interval (the former
  default; the "max" statistic needs it). Without replicates (``n_bootstrap < 2``) ``std``
  falls back to ``slice_se``.
- ``null_value``: the same statistic with the same slices (and the same projections) after
  shuffling y's rows; the excess over it is the dependence the estimator can see at this n, d
  and m.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field
from scipy.stats import norm

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
from distmi.estimators.sliced_compute import (
    Projector,
    SliceOutput,
    SliceSolver,
    block_size,
    compute_slices,
    slices_error,
)
from distmi.estimators.wkl_config import WKLConfig
from distmi.kernels.slicing import random_frames

_DEFAULT_K = {"ksg": 3, "wkl": 5}


class SlicedConfig(StrictParams):
    """Settings of sliced MI."""

    n_slices: int = Field(1000, ge=1, description="m, the number of random slices")
    slice_dim: int = Field(1, ge=1, description="k of k-sliced MI (dimension of each slice)")
    base: Literal["ksg", "wkl", "gaussian", "gmm"] = "ksg"
    statistic: Literal["mean", "max"] = "mean"
    k: int | None = Field(None, ge=1, description="neighbours (KSG: 3, WKL: 5 on 1-D slices)")
    algorithm: Literal[1, 2] = 1
    jitter: float = Field(1e-10, ge=0.0, le=1e-3)
    backend: Literal["auto", "compiled", "grid", "kdtree", "brute"] = "auto"
    device: Device = "cpu"
    n_jobs: int = Field(1, ge=1, le=256, description="threads (blocks of slices run in parallel)")
    weights: Literal["min-variance", "paper"] = "min-variance"
    bias_orders: int | None = Field(None, ge=0, description="WKL bias terms cancelled")
    metric: Literal["chebyshev", "euclidean"] = "chebyshev"
    n_permutations: int = Field(1, ge=0, description="shuffles of y for the null value")
    resample: Literal["auto", "slices", "slice-groups", "half", "bootstrap"] = "auto"
    ci_level: float = Field(0.95, gt=0.0, lt=1.0)
    gmm_params: dict[str, Any] = Field(default_factory=dict)
    memory_budget: float = Field(256e6, gt=1e6)

    @property
    def k_value(self) -> int | None:
        """The neighbours of the k-NN bases (None for the others)."""
        if self.base not in _DEFAULT_K:
            return None
        return self.k if self.k is not None else _DEFAULT_K[self.base]

    def ksg_config(self) -> KSGConfig:
        """KSG settings of one block (threads are spent on blocks, not inside them)."""
        return KSGConfig(k=self.k_value or 3, algorithm=self.algorithm, jitter=self.jitter,
                         backend=self.backend, device=self.device, n_jobs=1,
                         memory_budget=self.memory_budget)

    def wkl_config(self) -> WKLConfig:
        """WKL settings of one block; on 1-D slices k applies to every entropy term."""
        backend = "auto" if self.backend == "grid" else self.backend
        return WKLConfig(k=self.k_value if self.base == "wkl" else None, weights=self.weights,
                         bias_orders=self.bias_orders, metric=self.metric, jitter=self.jitter,
                         backend=backend, device=self.device, n_jobs=1,
                         memory_budget=self.memory_budget).resolved()


def parse_sliced_config(**params: object) -> SlicedConfig:
    """Validate sliced-MI parameters (unknown names are rejected with the allowed list)."""
    return parse_params(SlicedConfig, "sliced-MI", params)


def validate_sliced_params(params: dict[str, Any]) -> None:
    """``MethodSpec.validate_params`` of ``method="sliced"`` (``gmm_params`` by GMM's schema)."""
    cfg = parse_sliced_config(**params)
    if cfg.base == "gmm":
        get_method("gmm").check_params(cfg.gmm_params)


def resolve_resample(cfg: SlicedConfig, terms: bool) -> str:
    """``"auto"``: for the mean, ``"slices"`` where the base gives per-point terms (``terms``:
    1-D slices with WKL, or KSG with a continuous y), else ``"slice-groups"``; for the max,
    half-samples (k-NN bases) or the bootstrap (others), redrawing all slices."""
    if cfg.resample != "auto":
        return cfg.resample
    if cfg.statistic == "mean":
        return "slices" if terms else "slice-groups"
    return "half" if cfg.base in _DEFAULT_K else "bootstrap"


def _check(cfg: SlicedConfig, n: int, dx: int, dy: int | None, n_bootstrap: int,
           terms: bool) -> str:
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
            "base='ksg', 'wkl' or 'gaussian' for k-sliced MI."
        )
    resample = resolve_resample(cfg, terms)
    if resample in ("slices", "slice-groups") and cfg.statistic == "max":
        raise InvalidParameterError(
            f"resample='{resample}' estimates the error of a mean over slices; the 'max' "
            "statistic needs resample='half' or 'bootstrap' (all slices redrawn per replicate)."
        )
    if resample == "slices" and not terms:
        raise InvalidParameterError(
            f"resample='slices' needs per-point terms, which base='{cfg.base}' with "
            f"slice_dim={cfg.slice_dim}{' and a label y' if dy is None else ''} does not give "
            "(supported: 1-D slices with base='wkl', or base='ksg' with a continuous y on the "
            "compiled backend); use resample='slice-groups' or 'half'."
        )
    halves = n_bootstrap if resample in ("half", "slice-groups") else 0
    if cfg.base in _DEFAULT_K:
        check_neighbours(n, cfg.k_value, halves, f"sliced {cfg.base.upper()}")
    elif n < 3:
        raise InvalidParameterError(f"sliced MI needs at least 3 samples, got {n}.")
    return resample


def _statistic(values: np.ndarray, statistic: str) -> float:
    return float(values.max() if statistic == "max" else values.mean())


def slice_groups(m: int, n_groups: int, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(slice indices, half-sample rows) of each replicate of the slice-group scheme.

    Group b holds g = max(2, m // B) consecutive slices starting at b g (wrapping around m, so
    slices are shared only when m < 2 B); its rows are ``half_sample(seed, b, n)``.
    """
    g = max(2, m // n_groups)
    return [((b * g + np.arange(g)) % m, half_sample(seed, b, n)) for b in range(n_groups)]


def slice_group_error(value: float, values: np.ndarray, groups: list[np.ndarray],
                      group_values: list[np.ndarray], n: int, level: float) -> dict[str, Any]:
    """std, normal interval and the parts of the variance (see module docstring).

    Args:
        values: (m,) slice values on all rows; groups[b]: slice indices of replicate b;
            group_values[b]: those slices re-estimated on half-sample b.
    """
    diffs = [gv - values[idx] for idx, gv in zip(groups, group_values, strict=True)]
    g = len(diffs[0])
    shifts = np.array([d.mean() for d in diffs])  # U_b
    within = float(np.mean([d.var(ddof=1) for d in diffs])) / g
    v_half = max(float(shifts.var(ddof=1)) - within, 0.0)
    r = n // 2
    v_data = r / (n - r) * v_half
    v_slices = float(values.var(ddof=1)) / len(values) if len(values) > 1 else 0.0
    std = math.sqrt(v_data + v_slices)
    z = float(norm.ppf(0.5 + level / 2))
    replicates = np.array([gv.mean() for gv in group_values])
    return {"std": std, "ci": (value - z * std, value + z * std), "replicates": replicates,
            "sampling_sd": math.sqrt(v_data), "group_size": g}


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
    seed = random_state
    m = cfg.n_slices
    solve = SliceSolver(cfg.base, discrete_y, cfg.ksg_config(), cfg.wkl_config(), seed,
                        cfg.gmm_params)
    resample = _check(cfg, n, dx, dy, n_bootstrap, solve.supports_terms(cfg.slice_dim))
    jitter = cfg.jitter if cfg.base in _DEFAULT_K else 0.0
    step = block_size(n, cfg.slice_dim, cfg.base, cfg.memory_budget, m)

    def run(xs: np.ndarray, ys: np.ndarray, key: tuple, permutations: list, groups: list,
            influence: bool = False) -> SliceOutput:
        fx = random_frames(dx, m, cfg.slice_dim, seed, *key, "x")
        fy = None if discrete_y else random_frames(dy, m, cfg.slice_dim, seed, *key, "y")
        px = Projector(xs, seed, "x", jitter)
        py = None if discrete_y else Projector(ys, seed, "y", jitter)
        return compute_slices(px, py, ys if discrete_y else None, fx, fy, solve,
                              permutations=permutations, groups=groups, step=step,
                              n_jobs=cfg.n_jobs, influence=influence)

    perms = [derive_rng(seed, "permutation", p).permutation(n) for p in range(cfg.n_permutations)]
    grouped = resample == "slice-groups" and n_bootstrap >= 2
    groups = slice_groups(m, n_bootstrap, n, seed) if grouped else []
    from_terms = resample == "slices" and n_bootstrap > 0
    out = run(x, y, (), perms, groups, influence=from_terms)
    values = out.values
    value = _statistic(values, cfg.statistic)
    slice_sd = float(values.std(ddof=1)) if m > 1 else math.nan
    slice_se = slice_sd / math.sqrt(m) if cfg.statistic == "mean" else math.nan
    null = np.array([_statistic(v, cfg.statistic) for v in out.null_values])

    extra: dict[str, Any] = {}
    if from_terms:
        std, common_sd = slices_error(values, out.point_sum, out.point_sumsq)
        z = float(norm.ppf(0.5 + cfg.ci_level / 2))
        ci, reps = (value - z * std, value + z * std), np.empty(0)
        extra = {"sampling_sd": common_sd}
        std_source = "slices (per-point terms)"
    elif grouped:
        err = slice_group_error(value, values, [idx for idx, _ in groups], out.group_values, n,
                                cfg.ci_level)
        std, ci, reps = err["std"], err["ci"], err["replicates"]
        extra = {"sampling_sd": err["sampling_sd"], "group_size": err["group_size"]}
        std_source = "half-samples on slice groups"
    elif resample in ("half", "bootstrap") and n_bootstrap >= 2:
        reps = np.empty(n_bootstrap)
        for b in range(n_bootstrap):
            rows = (half_sample(seed, b, n) if resample == "half"
                    else derive_rng(seed, "bootstrap", b).integers(0, n, n))
            rep = run(x[rows], y[rows], ("bootstrap", b), [], [])
            reps[b] = _statistic(rep.values, cfg.statistic)
        scale = math.sqrt((n // 2) / (n - n // 2)) if resample == "half" else 1.0
        std = scale * float(reps.std(ddof=1))
        low, high = percentile_interval(reps - reps.mean(), cfg.ci_level)
        ci = (value + scale * low, value + scale * high)
        std_source = f"{resample} resampling, slices redrawn"
    else:
        reps = np.empty(0)
        std, ci, std_source = slice_se, (math.nan, math.nan), "slices"

    diagnostics = {
        "dx": dx,
        "dy": dy if dy is not None else 0,
        "n": n,
        "n_slices": m,
        "slice_dim": cfg.slice_dim,
        "base": cfg.base,
        "k": cfg.k_value,
        "statistic": cfg.statistic,
        "slice_mean": float(values.mean()),
        "slice_sd": slice_sd,
        "slice_se": slice_se,
        "null_value": float(null.mean()) if null.size else math.nan,
        "null_sd": float(null.std(ddof=1)) if null.size > 1 else math.nan,
        "excess_over_null": value - float(null.mean()) if null.size else math.nan,
        "std_source": std_source,
        **extra,
        "slice_values": values,
        "null_values": null,
        "replicates": reps,
    }
    params_out = {**cfg.model_dump(), "k": cfg.k_value, "n_bootstrap": n_bootstrap,
                  "random_state": seed, "resample": resample}
    return MIResult(value, std, ci, n, "sliced", params_out, diagnostics)


SLICED_METHOD = MethodSpec(
    name="sliced",
    estimate=estimate,
    estimate_pairs=None,
    supports_discrete_y=True,
    supports_multivariate=True,
    description="sliced MI: mean MI over random projections (KSG/WKL/GMM/Gaussian base), with null",
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
