"""Parameters and data preparation shared by the KSG and sliced estimators.

Preparation of a sample (one row per variable, as the kernels want it):

1. standardise each variable to mean 0, standard deviation 1 (ddof 0): KSG's max-norm mixes
   coordinates, so their scales must agree (Kraskov et al. 2004 recommend it too). The
   z-scores come from :func:`distmi.core.scaling.standardize` (a power-of-two pre-scale), so
   data in units of 1e+-300 give the numbers of unit-scale data;
2. add ``jitter`` times one standard-normal vector per role ("x" or "y"), seeded by
   (random_state, "ksg-jitter", role). Duplicated values (ReLU zeros, quantised activations)
   otherwise give zero neighbour distances, which KSG cannot handle. The same vector is used for
   every column of the role, so a column gives the same numbers alone or inside a batch.

Error bars use half-sampling (the delete-d jackknife of Shao & Wu 1989, Ann. Stat. 17, with
d = n - r, r = floor(n / 2)): B subsamples of r rows without replacement, each re-estimated;

    Var(I_n) ~ (r / d) * Var_b(I_r),

and the interval is I_n + sqrt(r / d) * (percentiles of I_r - mean I_r). Resampling with
replacement would duplicate rows, and duplicated rows are zero-distance neighbours that bias
k-NN estimators upwards, so it is not used for KSG.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from distmi.core.devices import Device, resolve_device
from distmi.core.errors import TooFewSamplesError
from distmi.core.params import StrictParams, parse_params
from distmi.core.results import percentile_interval
from distmi.core.scaling import standardize
from distmi.core.seeds import derive_rng


class KSGConfig(StrictParams):
    """Settings of the KSG estimator (``method="ksg"``)."""

    k: int = Field(3, ge=1, description="neighbours (KSG's k)")
    algorithm: Literal[1, 2] = Field(1, description="Kraskov algorithm 1 or 2")
    jitter: float = Field(1e-10, ge=0.0, le=1e-3, description="noise in standard deviations")
    backend: Literal["auto", "compiled", "grid", "kdtree", "brute"] = "auto"
    device: Device = "cpu"
    workers: int = Field(1, ge=-1, description="k-d tree query threads (-1: all cores)")
    n_jobs: int = Field(1, ge=1, le=256, description="threads for batched 1-D problems")
    ci_level: float = Field(0.95, gt=0.0, lt=1.0)
    memory_budget: float = Field(256e6, gt=1e6, description="bytes per brute-force block")

    def resolved(self) -> KSGConfig:
        """This config with ``device`` resolved (``"auto"`` -> ``"cuda"`` or ``"cpu"``)."""
        device = resolve_device(self.device)
        return self if device == self.device else self.model_copy(update={"device": device})


parse_model = parse_params  # the shared strict parser, under its former name


def parse_ksg_config(**params: object) -> KSGConfig:
    """Validate KSG parameters (unknown names are rejected with the allowed list)."""
    return parse_params(KSGConfig, "KSG", params)


def validate_ksg_params(params: dict) -> None:
    """``MethodSpec.validate_params`` of ``method="ksg"``."""
    parse_ksg_config(**params)


def check_neighbours(n: int, k: int, n_bootstrap: int, what: str = "KSG") -> None:
    """k must be below the sample size (and below the half-sample size when resampling)."""
    if k >= n:
        raise TooFewSamplesError(
            f"{what} with k={k} neighbours needs at least k + 1 = {k + 1} samples, got {n}; "
            f"lower k (e.g. k={max(1, min(3, n - 1))}) or pass more samples."
        )
    half = n // 2
    if n_bootstrap > 0 and k >= half:
        raise TooFewSamplesError(
            f"{what} error bars re-estimate on half-samples of {half} rows, which need "
            f"k < {half}, got k={k}; lower k, pass more samples, or set n_bootstrap=0."
        )


def standardize_rows(rows: np.ndarray) -> np.ndarray:
    """Each row (one variable over n samples) to mean 0 and std 1, at any scale; (B, n) -> (B, n)."""
    return standardize(np.ascontiguousarray(rows, dtype=np.float64), axis=1)


def prepare_rows(rows: np.ndarray, seed: int, role: str, jitter: float) -> np.ndarray:
    """Standardise (B, n) rows and add the role's jitter vector (see module docstring)."""
    out = standardize_rows(rows)
    if jitter > 0:
        noise = derive_rng(seed, "ksg-jitter", role).standard_normal(out.shape[1])
        out += jitter * noise
    return out


def check_class_sizes(labels: np.ndarray) -> None:
    """Raise unless some class of the label codes (n,) has at least 2 members (k-NN estimators
    with labels need a neighbour within the class)."""
    if np.bincount(labels).max() < 2:
        raise TooFewSamplesError(
            f"every class has a single sample ({labels.size} samples, {labels.max() + 1} "
            "classes); the nearest-neighbour estimators need classes with at least 2 members: "
            "pass more samples per class."
        )


def pair_rows(X: np.ndarray, Y: np.ndarray, pairs: np.ndarray, discrete_y: bool, seed: int,
              jitter: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Prepared 1-D rows of column pairs: X[:, i] as px (P, n) and Y[:, j] as py (P, n), each
    column standardised and jittered exactly as alone; py is None for labels Y (checked)."""
    px = prepare_rows(X.T, seed, "x", jitter)[pairs[:, 0]]
    if discrete_y:
        check_class_sizes(Y)
        return px, None
    return px, prepare_rows(Y.T, seed, "y", jitter)[pairs[:, 1]]


def half_sample(seed: int, replicate: int, n: int) -> np.ndarray:
    """Sorted indices of the replicate's half-sample, r = n // 2 rows without replacement."""
    rng = derive_rng(seed, "half-sample", replicate)
    return np.sort(rng.permutation(n)[: n // 2])


def half_sample_error(
    value: float, replicates: np.ndarray, n: int, level: float
) -> tuple[float, tuple[float, float]]:
    """Standard error and interval from half-sample replicates (delete-d jackknife)."""
    if replicates.size < 2:
        return math.nan, (math.nan, math.nan)
    r = n // 2
    scale = math.sqrt(r / (n - r))
    std = scale * float(np.std(replicates, ddof=1))
    low, high = percentile_interval(replicates - replicates.mean(), level)
    return std, (value + scale * low, value + scale * high)
