"""The information-plane job: what to estimate (a :class:`PlaneSpec`) and its work units.

A plane job estimates, for every chosen layer L at every chosen epoch, I(X; L) (X: the input
layer) and I(L; Y) (Y: a categorical target) with error bars. The work is epochs x layers
**work units** (:class:`PlaneUnit`), each estimating both quantities for one (epoch, layer);
its id ``infoplane|<epoch>|<layer>`` is stable, so its seed, its part file and its numbers do
not depend on the executor, the number of workers or the order units finish in. The slices of
a layer are the same at every epoch (seeded by the layer, not the epoch: common random numbers,
so epoch-to-epoch changes are not slice noise), and so are the slices of X for every layer.

Methods:

- ``"sliced"``: sliced MI (Goldfeld & Greenewald 2021) with the ``base`` estimator (``"wkl"``,
  the weighted Kozachenko-Leonenko entropy the SMI experiments used, or ``"ksg"``) over
  ``n_slices`` random 1-D projections of X and L (of L only for I(L; Y));
- ``"pca"``: MI of PCA-compressed representations (the AE+MI variant of Butakov et al. 2023,
  with PCA for X as well as for L): X and each L are projected on their first
  ``n_components`` principal components (fitted on the probe samples), then ``estimator``
  (``"ksg"`` or ``"gmm"``, multivariate) estimates I(X_pca; L_pca) and I(L_pca; Y).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from distmi.core.errors import SpecError
from distmi.core.seeds import derive_seed


class PlaneSpec(BaseModel):
    """An information-plane job (validated; unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, description="training dataset folder (training.json)")
    layers: list[str] = Field(min_length=1, description="layers L, in plot order")
    x_layer: str = Field("input", description="the layer holding the input X")
    target: str = Field(min_length=1, description="categorical target Y")
    epochs: list[int] | None = Field(None, description="epochs to use (default: all captured)")
    method: Literal["sliced", "pca"] = "sliced"
    base: Literal["wkl", "ksg"] = "wkl"
    n_slices: int = Field(1000, ge=2, le=1_000_000)
    k: int | None = Field(None, ge=1, description="neighbours (sliced WKL 5, KSG 3)")
    estimator: Literal["ksg", "gmm"] = "ksg"
    n_components: int = Field(4, ge=1, le=64, description="PCA components (method 'pca')")
    n_bootstrap: int = Field(10, ge=0, le=10_000, description="replicates where resampled")
    n_permutations: int = Field(1, ge=0, le=100, description="y / row shuffles for the null")
    estimator_params: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(0, ge=0, lt=2**63)
    output: str | None = None
    executor: Literal["local", "ray"] = "local"
    workers: int = Field(2, ge=1, le=10_000)
    threads: int = Field(1, ge=1, le=256, description="threads per worker")

    @model_validator(mode="after")
    def _distinct(self) -> PlaneSpec:
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers repeat: {self.layers}")
        if self.epochs is not None and len(set(self.epochs)) != len(self.epochs):
            raise ValueError(f"epochs repeat: {self.epochs}")
        return self

    def hash(self) -> str:
        """sha256 of what determines the numbers (not output, executor, workers, threads)."""
        doc = self.model_dump(mode="json", exclude={"output", "executor", "workers", "threads"})
        doc["source"] = str(Path(self.source).resolve())
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def parse_plane_spec(data: Any, where: str = "plane spec") -> PlaneSpec:
    """Validate a dict (e.g. loaded YAML) into a :class:`PlaneSpec`, naming bad fields."""
    if not isinstance(data, dict):
        raise SpecError(f"{where} must be a mapping of settings, got {type(data).__name__}.")
    try:
        return PlaneSpec(**data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "spec"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown key {loc!r}; allowed: {sorted(PlaneSpec.model_fields)}")
            else:
                problems.append(f"{loc}: {err['msg']}")
        raise SpecError(f"invalid {where}: " + "; ".join(problems)) from None


def load_plane_spec(path: str | Path) -> PlaneSpec:
    """Read a YAML plane job."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SpecError(f"plane job file {p} does not exist.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"plane job file {p} is not valid YAML: {exc}") from None
    return parse_plane_spec(data, str(p))


@dataclass(frozen=True)
class PlaneUnit:
    """One work unit: both quantities of one layer at one epoch.

    ``layer`` and ``shard`` let the Ray executor keep a layer's units on one actor.
    """

    batch_id: str
    epoch: int
    layer: str
    seed: int
    shard: tuple[int, int] = (0, 0)

    @property
    def key(self) -> str:
        """Part-file key (the engine's :func:`~distmi.engine.plan.batch_key`)."""
        from distmi.engine.plan import batch_key

        return batch_key(self.batch_id)


def plan_units(spec: PlaneSpec, epochs: list[int]) -> list[PlaneUnit]:
    """Epochs x layers units, layer-major (a worker reuses a layer's frames across epochs)."""
    return [
        PlaneUnit(f"infoplane|{epoch}|{layer}", epoch, layer,
                  derive_seed(spec.seed, "infoplane", layer, epoch))
        for layer in spec.layers for epoch in epochs
    ]
