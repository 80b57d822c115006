"""The parameter schema of GMM-MI, validated in one place (pydantic v2)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, model_validator

from distmi.core.devices import Device
from distmi.core.errors import InvalidParameterError
from distmi.core.params import StrictParams


class GMMMIConfig(StrictParams):
    """Settings of :class:`~distmi.estimators.gmm.GMMMI`.

    Defaults follow GMM-MI 0.8.2 where sensible (2 folds, 3 starts per K, threshold 1e-5,
    patience 1, max 50 components, EM tolerance 1e-5, 10k iterations); the differences are
    documented in ``docs/gmm.md`` (K grown by splitting components, ridge 1e-6 on standardised
    data, deterministic quadrature, point estimate from the full-data fit, BCa intervals).
    """

    n_components: int | None = Field(None, ge=1, le=200, description="fixed K (skips selection)")
    max_components: int = Field(50, ge=1, le=200)
    select: Literal["cv", "aic", "bic"] = "cv"
    n_folds: int = Field(2, ge=2, le=20)
    n_inits: int = Field(3, ge=1, le=100)
    init: Literal["split", "kmeans++", "random"] = "split"
    threshold: float = Field(1e-5, ge=0.0)
    patience: int = Field(1, ge=1, le=50)
    reg_covar: float = Field(1e-6, gt=0.0, le=1.0)
    tol: float = Field(1e-5, gt=0.0)
    max_iter: int = Field(10_000, ge=1)
    integration: Literal["auto", "quadrature", "mc"] = "auto"
    mc_samples: int = Field(100_000, ge=100)
    n_nodes: int | None = Field(None, ge=2, le=200)
    ci_level: float = Field(0.95, gt=0.0, lt=1.0)
    jitter: float = Field(0.0, ge=0.0, le=1.0, description="dequantisation noise, in column sd")
    select_samples: int | None = Field(
        5000, ge=100, description="choose K on at most this many rows (None: all rows)"
    )
    probe_iter: int = Field(5, ge=1, description="EM iterations before pruning split starts")
    stop_hopeless: bool = Field(True, description="stop candidate K that cannot win the CV score")
    ci_method: Literal["bca", "basic", "percentile"] = "bca"
    acceleration: Literal["influence", "jackknife", "none"] = Field(
        "influence", description="BCa acceleration: from the fitted mixture's pointwise MI "
        "(no refits), a delete-a-group jackknife (n_jackknife refits), or none (BC interval)")
    n_jackknife: int = Field(
        10, ge=0, le=1000, description="delete-a-group jackknife refits (acceleration='jackknife')"
    )
    bootstrap_init: Literal["warm", "cold"] = "warm"
    backend: Literal["auto", "torch", "compiled"] = "auto"
    device: Device = "cpu"
    memory_budget: float = Field(256e6, gt=1e6)

    @model_validator(mode="after")
    def _check(self) -> GMMMIConfig:
        if self.n_components is not None and self.n_components > self.max_components:
            raise ValueError(
                f"n_components={self.n_components} exceeds max_components={self.max_components}"
            )
        if self.n_jackknife in (1, 2):
            raise ValueError("n_jackknife must be 0 (no acceleration) or at least 3 groups")
        return self


def parse_config(**params: object) -> GMMMIConfig:
    """Build a :class:`GMMMIConfig`, turning pydantic errors into :class:`InvalidParameterError`."""
    try:
        return GMMMIConfig(**params)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "parameters"
            if err["type"] == "extra_forbidden":
                allowed = sorted(GMMMIConfig.model_fields)
                problems.append(f"unknown GMM-MI parameter {loc!r}; allowed: {allowed}")
            else:
                problems.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
        raise InvalidParameterError("invalid GMM-MI parameters: " + "; ".join(problems)) from None


def validate_gmm_params(params: dict) -> None:
    """``MethodSpec.validate_params`` of ``method="gmm"``."""
    parse_config(**params)
