"""Plug-in methods for testing the conformance suite: one correct, several wrong on purpose.

``toy-gaussian`` is the Gaussian MI of the sample correlation, I = -1/2 log(1 - r^2), with a
bootstrap percentile interval: exact in expectation for Gaussian data (bias ~ r^2/n) and a
minimal example of a well-behaved plug-in (parameters validated by a strict schema,
scale-robust z-scores, seeds from ``derive_rng``, pairs batched with shared replicates).
Each ``toy-*`` variant breaks one rule of the contract and must fail the matching check.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from distmi.core.errors import InvalidParameterError
from distmi.core.params import StrictParams, parse_params
from distmi.core.results import MIResult, percentile_interval
from distmi.core.scaling import standardize
from distmi.core.seeds import derive_rng
from distmi.estimators.registry import MethodSpec, register_method


class ToyParams(StrictParams):
    ci_level: float = Field(0.95, gt=0.0, lt=1.0)
    shrink: float = Field(1.0, gt=0.0, description="multiplies the estimate (1: correct)")


def validate_toy(params: dict[str, Any]) -> None:
    parse_params(ToyParams, "toy", params)


def _mi(xz: np.ndarray, yz: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Gaussian MI of z-scored columns under row weights; (P, n), (P, n), (R, n) -> (P, R)."""
    mx, my = xz @ weights.T, yz @ weights.T
    cxy = (xz * yz) @ weights.T - mx * my
    vx = (xz * xz) @ weights.T - mx * mx
    vy = (yz * yz) @ weights.T - my * my
    r2 = np.clip(cxy * cxy / (vx * vy), 0.0, 1.0 - 1e-12)
    return -0.5 * np.log1p(-r2)


def _weights(n: int, n_bootstrap: int, seed: int, *, fresh: bool = False) -> np.ndarray:
    rng = np.random.default_rng() if fresh else derive_rng(seed, "toy-bootstrap")
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                       for _ in range(n_bootstrap)]) if n_bootstrap else np.zeros((0, n))
    return np.vstack([np.full((1, n), 1.0 / n), counts / n])  # row 0: the estimate


def _results(xz, yz, weights, n, cfg, name, seed, n_bootstrap, se_scale=1.0):
    values = _mi(xz, yz, weights) * cfg.shrink  # (P, 1 + B)
    out = []
    for row in values:
        reps = row[1:]
        std = float(np.std(reps, ddof=1)) * se_scale if reps.size > 1 else math.nan
        if reps.size > 1:
            low, high = percentile_interval(reps, cfg.ci_level)
            mid = row[0]
            low, high = mid - (mid - low) * se_scale, mid + (high - mid) * se_scale
        else:
            low = high = math.nan
        out.append(MIResult(float(row[0]), std, (low, high), n, name,
                            {**cfg.model_dump(), "random_state": seed,
                             "n_bootstrap": n_bootstrap}, {"status": "ok"}))
    return out


def make_method(name: str, *, naive_scale: bool = False, unseeded: bool = False,
                pair_seeds: bool = False, se_scale: float = 1.0, shrink: float = 1.0,
                validate: bool = True, ignore_seed: bool = False) -> MethodSpec:
    """A toy method; the keyword arguments break one rule each."""

    def zscores(a: np.ndarray) -> np.ndarray:
        if naive_scale:  # squares overflow beyond ~1e154
            return (a - a.mean(axis=1, keepdims=True)) / a.std(axis=1, keepdims=True)
        return standardize(a, axis=1)

    def prepare(params, x_cols, y_cols, discrete_y, random_state):
        if discrete_y:
            raise InvalidParameterError(f"{name} does not take labels")
        cfg = parse_params(ToyParams, "toy", {"shrink": shrink, **params}) if validate else \
            ToyParams(shrink=shrink, ci_level=params.get("ci_level", 0.95))
        seed = 0 if ignore_seed else random_state
        return cfg, zscores(x_cols), zscores(y_cols), seed

    def estimate(x, y, *, discrete_y, n_bootstrap, random_state, **params):
        if x.shape[1] != 1 or y.shape[1] != 1:
            raise InvalidParameterError(f"{name} takes one x column and one y column")
        cfg, xz, yz, seed = prepare(params, x.T, y.T, discrete_y, random_state)
        w = _weights(len(x), n_bootstrap, seed, fresh=unseeded)
        return _results(xz, yz, w, len(x), cfg, name, random_state, n_bootstrap, se_scale)[0]

    def estimate_pairs(X, Y, pairs, *, discrete_y, n_bootstrap, random_state, **params):
        cfg, xz, yz, seed = prepare(params, X.T[pairs[:, 0]], Y.T[pairs[:, 1]], discrete_y,
                                    random_state)
        if pair_seeds:  # wrong: replicates depend on the pair's position
            return [_results(xz[p : p + 1], yz[p : p + 1],
                             _weights(len(X), n_bootstrap, seed + p), len(X), cfg, name,
                             random_state, n_bootstrap, se_scale)[0]
                    for p in range(len(pairs))]
        w = _weights(len(X), n_bootstrap, seed, fresh=unseeded)
        return _results(xz, yz, w, len(X), cfg, name, random_state, n_bootstrap, se_scale)

    return MethodSpec(
        name=name, estimate=estimate, estimate_pairs=estimate_pairs, supports_discrete_y=False,
        supports_multivariate=False, description="toy: Gaussian MI of the correlation",
        validate_params=validate_toy if validate else None,
    )


TOYS = {
    "toy-gaussian": {},
    "toy-biased": {"shrink": 0.8},
    "toy-unseeded": {"unseeded": True},
    "toy-ignores-seed": {"ignore_seed": True},
    "toy-pair-seeds": {"pair_seeds": True},
    "toy-overconfident": {"se_scale": 0.3},
    "toy-naive-scale": {"naive_scale": True},
    "toy-unvalidated": {"validate": False},
}


def register_toys() -> None:
    for name, broken in TOYS.items():
        register_method(make_method(name, **broken), overwrite=True)
