"""The ``screen:`` section of a job: a two-stage sweep (rank screen with p-values, then the
job's estimator on the pairs the screen keeps).

    screen:
      method: ksg+gaussian      # ksg | gaussian | xi | ksg+gaussian (min-P of both)
      k: 5                      # neighbours of the copula KSG statistic
      n_permutations: auto      # per null table; auto: enough for one discovery per family
      fdr: 0.05                 # refine pairs with q <= fdr; null: no FDR selection
      fdr_method: bh            # bh (Benjamini-Hochberg) | by (Benjamini-Yekutieli)
      fdr_scope: layer-target   # one FDR family per layer and target | job
      max_refine: null          # refine at most this many (largest screen estimates); 0: screen only
      max_refine_per_family: null   # and at most this many per family (e.g. top 16 per layer and target)
      batch_size: 1024          # pairs per screen work unit
      null_batch_size: 1000     # permutations per null-table work unit

Without a ``screen:`` section a job runs its estimator on every pair, as before (same spec
hash, same table).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from distmi.engine import requests as req

MIN_PERMUTATIONS = 100


class ScreenSpec(BaseModel):
    """Screen settings, validated once (see the module docstring and ``docs/engine.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal[tuple(req.SCREEN_METHODS)] = "ksg+gaussian"  # type: ignore[valid-type]
    k: int = Field(5, ge=1, le=1000)
    n_permutations: Literal["auto"] | int = "auto"
    fdr: float | None = 0.05
    fdr_method: Literal["bh", "by"] = "bh"
    fdr_scope: Literal[req.FDR_SCOPES] = "layer-target"  # type: ignore[valid-type]
    max_refine: int | None = Field(None, ge=0)
    max_refine_per_family: int | None = Field(None, ge=0)
    batch_size: int = Field(1024, ge=1, le=1_000_000)
    null_batch_size: int = Field(1000, ge=1, le=1_000_000)

    @field_validator("fdr")
    @classmethod
    def _fdr_level(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 < value < 1.0:
            raise ValueError(
                f"screen.fdr must lie in (0, 1) (a false discovery rate such as 0.05), got "
                f"{value}; use null to select pairs by max_refine only"
            )
        return value

    @field_validator("n_permutations")
    @classmethod
    def _permutations_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 0 <= value <= 10_000_000:
            raise ValueError(f"n_permutations must be 'auto' or an integer in [0, 10^7], got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ScreenSpec:
        perms = self.n_permutations
        if self.fdr is not None and isinstance(perms, int) and perms < MIN_PERMUTATIONS:
            raise ValueError(
                f"screen.n_permutations={perms} is too few for p-values at fdr={self.fdr}: the "
                f"smallest p-value is 1/(n_permutations + 1); use at least {MIN_PERMUTATIONS} "
                "(or 'auto'), or set fdr: null to skip the FDR selection"
            )
        if self.fdr is None and self.max_refine is None and self.max_refine_per_family is None:
            raise ValueError(
                "screen.fdr is null and screen.max_refine is null, so nothing selects the pairs "
                "to refine; set fdr (e.g. 0.05), max_refine (e.g. 500), or max_refine: 0 to "
                "screen only"
            )
        return self

    def request(self) -> req.ScreenRequest:
        """The engine's screen request for this section."""
        return req.ScreenRequest(
            method=self.method, k=self.k,
            n_permutations=None if self.n_permutations == "auto" else int(self.n_permutations),
            fdr=self.fdr, fdr_method=self.fdr_method, fdr_scope=self.fdr_scope,
            max_refine=self.max_refine, max_refine_per_family=self.max_refine_per_family,
            batch_size=self.batch_size,
            null_batch_size=self.null_batch_size,
        )
