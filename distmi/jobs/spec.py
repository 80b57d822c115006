"""The job specification: what to compute (dataset, layers, units, targets, estimator) and how
to run it (executor, workers, resources, batch sizes, retries), validated once with pydantic v2.

A job is usually a YAML file::

    name: iris-quickstart
    dataset: {path: out/iris, builtin: iris}      # built on first use when missing
    layers: [act1, act2]                          # or "all", or [{name: act1, units: {range: [0, 8]}}]
    units: all                                    # default unit selection for every layer
    targets: [species, petal_length]
    pairs: unit-target                            # unit-unit | adjacent-layers | layer-target
    estimator: {method: gmm, params: {n_inits: 2}}
    n_bootstrap: 20
    null_permutations: 1
    seed: 0
    output: out/iris-quickstart
    scaling: {executor: ray, workers: 2, cpus_per_worker: 1, batch_size: 32}
    retries: 3

Unknown keys and bad values raise :class:`~distmi.core.errors.SpecError` naming the field path,
the value received and the allowed values. :func:`spec_hash` hashes only the fields that change
the numbers (not ``scaling``, ``retries`` or ``name``), so a job resumed with more workers keeps
its committed parts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distmi.core.errors import SpecError
from distmi.engine import requests as req
from distmi.engine.plan import PAIR_MODES
from distmi.jobs.datasets import check_builtin_name

EXECUTORS = ("local", "ray")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnitRange(_Strict):
    """Units ``[start, stop)`` of a layer (flat indices, C order of the unit shape)."""

    range: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=1)]]

    @model_validator(mode="after")
    def _ordered(self) -> UnitRange:
        if self.range[1] <= self.range[0]:
            raise ValueError(f"range [start, stop) needs start < stop, got {list(self.range)}")
        return self


class UnitIndices(_Strict):
    """An explicit list of unit indices."""

    indices: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)


class UnitTopK(_Strict):
    """The ``top_k_variance`` units with the largest variance over the samples (ties: lower index)."""

    top_k_variance: int = Field(ge=1)


UnitSelection = Literal["all"] | UnitRange | UnitIndices | UnitTopK


class LayerEntry(_Strict):
    """A layer with its own unit selection (overrides the job-level ``units``)."""

    name: str = Field(min_length=1)
    units: UnitSelection | None = None


class DatasetSpec(_Strict):
    """An activation dataset folder; ``builtin`` builds a bundled example there when missing."""

    path: str = Field(min_length=1)
    builtin: str | None = None  # a registered bundled dataset (distmi.jobs.builtin_datasets())
    verify: bool = False

    @field_validator("builtin")
    @classmethod
    def _registered(cls, value: str | None) -> str | None:
        return None if value is None else check_builtin_name(value)


class EstimatorSpec(_Strict):
    """A registry method (``distmi methods``) and its parameters (validated by the method)."""

    method: str = "gmm"
    params: dict[str, Any] = Field(default_factory=dict)


class ScalingSpec(_Strict):
    """How to run: executor, workers and their resources, work-unit sizes. Does not change results."""

    executor: Literal["local", "ray"] = "ray"
    address: str | None = None
    workers: int = Field(2, ge=1, le=100_000)
    cpus_per_worker: float = Field(1.0, gt=0.0, le=1024.0)
    gpus_per_worker: float = Field(0.0, ge=0.0, le=64.0)
    threads_per_worker: int = Field(1, ge=1, le=1024)
    max_in_flight: int = Field(2, ge=1, le=64)
    spread: bool = False  # place actors on different nodes (Ray "SPREAD" scheduling)
    batch_size: int = Field(64, ge=1, le=1_000_000)
    units_per_shard: int = Field(256, ge=1, le=10_000_000)

    def executor_settings(self, retries: int) -> req.ExecutorSettings:
        """The engine's executor settings for this section."""
        return req.ExecutorSettings(
            executor=self.executor, address=self.address, workers=self.workers,
            cpus_per_worker=self.cpus_per_worker, gpus_per_worker=self.gpus_per_worker,
            max_in_flight=self.max_in_flight, spread=self.spread, retries=retries,
        )


class JobSpec(_Strict):
    """A complete MI job. See the module docstring and ``docs/engine.md``."""

    name: str = Field("distmi-job", min_length=1, max_length=200)
    dataset: DatasetSpec
    layers: Literal["all"] | list[str | LayerEntry] = "all"
    units: UnitSelection = "all"
    targets: list[str] = Field(default_factory=list)
    pairs: Literal[PAIR_MODES] = "unit-target"
    estimator: EstimatorSpec = Field(default_factory=EstimatorSpec)
    n_bootstrap: int = Field(20, ge=0, le=100_000)
    n_slices: int | None = Field(None, ge=1, le=10_000_000)
    null_permutations: int = Field(1, ge=0, le=1000)
    max_pairs: int = Field(1_000_000, ge=1)
    seed: int = Field(0, ge=0, lt=2**63)
    output: str = Field(min_length=1)
    scaling: ScalingSpec = Field(default_factory=ScalingSpec)
    retries: int = Field(3, ge=0, le=100)

    @field_validator("layers")
    @classmethod
    def _layers_non_empty(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("layers is empty; list layer names or use 'all'")
            names = [v if isinstance(v, str) else v.name for v in value]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"layers lists {dup} more than once; list each layer once")
        return value

    @model_validator(mode="after")
    def _targets_for_mode(self) -> JobSpec:
        needs_targets = self.pairs in ("unit-target", "layer-target")
        if needs_targets and not self.targets:
            raise ValueError(
                f"pairs={self.pairs!r} needs at least one target; add targets: [name, ...] "
                "(the dataset's target columns)"
            )
        if not needs_targets and self.targets:
            raise ValueError(
                f"pairs={self.pairs!r} pairs units with units and ignores targets "
                f"{self.targets}; remove targets or use pairs: unit-target"
            )
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets {self.targets} repeat a name; list each target once")
        return self

    def plan_request(self) -> req.PlanRequest:
        """What the engine plans for this job (layers, units, targets, pair mode, batching)."""
        layers = None if self.layers == "all" else tuple(
            req.LayerRequest(v) if isinstance(v, str)
            else req.LayerRequest(v.name, None if v.units is None else _selection(v.units))
            for v in self.layers
        )
        return req.PlanRequest(
            mode=self.pairs, layers=layers, default_units=_selection(self.units),
            targets=tuple(self.targets), seed=self.seed, batch_size=self.scaling.batch_size,
            units_per_shard=self.scaling.units_per_shard, max_pairs=self.max_pairs,
        )

    def estimator_params(self) -> dict[str, Any]:
        """Estimator parameters, with ``n_slices`` folded in when set."""
        params = dict(self.estimator.params)
        if self.n_slices is not None:
            params["n_slices"] = self.n_slices
        return params


def _selection(sel: Any) -> req.UnitSelection:
    """A spec unit selection as the engine's plain selection type."""
    if sel == "all":
        return req.AllUnits()
    if isinstance(sel, UnitRange):
        return req.UnitRange(*sel.range)
    if isinstance(sel, UnitIndices):
        return req.UnitIndices(tuple(sel.indices))
    return req.TopVarianceUnits(sel.top_k_variance)


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[")))
        loc = loc or "(top level)"
        received = err.get("input")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc!r} (remove it or check its spelling)"
        elif err["type"] == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            msg = f"{loc}: got {received!r}, allowed values: {expected}"
        elif err["type"] == "missing":
            msg = f"{loc}: required field is missing"
        else:
            msg = f"{loc}: {err['msg']} (got {received!r})"
        if msg not in lines:
            lines.append(msg)
    shown = lines[:12] + ([f"... and {len(lines) - 12} more"] if len(lines) > 12 else [])
    return f"invalid job spec {source}:\n  - " + "\n  - ".join(shown)


def parse_spec(data: Any, source: str = "(dict)") -> JobSpec:
    """Validate a mapping (parsed YAML) into a :class:`JobSpec`.

    Raises:
        SpecError: listing every invalid field as ``path: problem (allowed values)``.
    """
    if not isinstance(data, dict):
        raise SpecError(
            f"job spec {source} must be a mapping of keys (dataset, targets, output, ...), "
            f"got {type(data).__name__}; see jobs/quickstart.yaml for an example."
        )
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_errors(exc, source)) from None


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a YAML job file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SpecError(f"job file {p} does not exist; pass a YAML file such as jobs/quickstart.yaml.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"job file {p} is not valid YAML: {exc}") from None
    return parse_spec(data, str(p))


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    """JSON-ready dictionary of the whole spec."""
    return spec.model_dump(mode="json")


def spec_hash(spec: JobSpec) -> str:
    """sha256 of the fields that determine the numbers (everything except name/scaling/retries).

    ``output`` is excluded too: the same job written elsewhere is the same computation.
    """
    doc = spec.model_dump(mode="json", exclude={"name", "scaling", "retries", "output"})
    doc["dataset"].pop("verify", None)
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
