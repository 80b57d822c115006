"""NIF jobs: a YAML file that runs a whole NIF study, its link estimation on the engine.

    # jobs/nif_iris.yaml
    name: nif-iris
    model: {builtin: iris, seed: 0}      # iris | wine | breast_cancer | digits
    estimator: {method: ksg, params: {}}
    beta: mean
    redundancy_order: relevance
    n_bootstrap: 20
    n_permutations: 9999
    alpha: 0.05
    seed: 0
    output: out/nif-iris
    compare: true
    scaling: {executor: ray, workers: 2, batch_size: 256}

``distmi nif --job jobs/nif_iris.yaml`` trains the bundled model deterministically and runs
:func:`distmi.analyses.nif.report.run_study`. The link jobs (``adjacent-layers``,
``unit-target``, ``unit-unit``) commit their batches under ``OUTPUT/engine``; a run that was
stopped resumes there, and the Ray executor gives the same numbers as ``executor: local``.
Unknown keys and bad values raise :class:`~distmi.core.errors.SpecError` with the field path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distmi.core.errors import SpecError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """The bundled classifier to train and explain."""

    builtin: Literal["iris", "wine", "breast_cancer", "digits"]
    seed: int = Field(0, ge=0)


class EstimatorSpec(_Strict):
    """Link estimator (a registry method with batched pairs) and its parameters."""

    method: str = "ksg"
    params: dict[str, Any] = Field(default_factory=dict)


class ScalingSpec(_Strict):
    """How the link jobs run; never changes the numbers."""

    executor: Literal["local", "ray"] = "ray"
    workers: int = Field(2, ge=1, le=100_000)
    address: str | None = None
    batch_size: int = Field(256, ge=1, le=1_000_000)


class NIFJobSpec(_Strict):
    """A NIF study (see the module docstring)."""

    name: str = Field("nif", min_length=1, max_length=200)
    model: ModelSpec
    estimator: EstimatorSpec = Field(default_factory=EstimatorSpec)
    beta: Literal["mean", "none"] | float = "mean"
    redundancy_order: Literal["relevance", "index"] = "relevance"
    bound: Literal["per-link", "shared-critic"] = "per-link"
    outputs: Literal["classes", "logits"] = "classes"
    n_bootstrap: int = Field(20, ge=0, le=10_000)
    n_permutations: int = Field(9999, ge=19, le=10_000_000)
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    seed: int = Field(0, ge=0, lt=2**63)
    output: str = Field(min_length=1)
    compare: bool = True
    curve: bool = True
    scaling: ScalingSpec = Field(default_factory=ScalingSpec)


def load_nif_job(path: str | Path) -> NIFJobSpec:
    """Read and validate a NIF job YAML file.

    Raises:
        SpecError: missing file, invalid YAML, unknown keys or bad values (with field paths).
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SpecError(f"NIF job file {p} does not exist; see jobs/nif_iris.yaml for an example.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"NIF job file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"NIF job file {p} must be a mapping of keys (model, output, ...).")
    try:
        return NIFJobSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith(("literal[",
                                                                                 "function-")))
            if err["type"] == "extra_forbidden":
                lines.append(f"unknown key {loc!r} (remove it or check its spelling)")
            else:
                lines.append(f"{loc or '(top level)'}: {err['msg']} (got {err.get('input')!r})")
        raise SpecError(f"invalid NIF job {p}:\n  - " + "\n  - ".join(dict.fromkeys(lines))
                        ) from None


def run_nif_job(spec: NIFJobSpec, *, executor: str | None = None, workers: int | None = None,
                address: str | None = None, output: str | None = None,
                overwrite: bool = False, log: Any = None) -> dict[str, Any]:
    """Train the job's model and run the study; overrides as in ``distmi run``."""
    from distmi.analyses.nif.report import run_study
    from distmi.examples.tabular import load_bundled

    bundle = load_bundled(spec.model.builtin, spec.model.seed)
    sc = spec.scaling
    return run_study(
        bundle, output or spec.output, estimator=spec.estimator.method,
        estimator_params=dict(spec.estimator.params), beta=spec.beta,
        redundancy_order=spec.redundancy_order, n_bootstrap=spec.n_bootstrap,
        n_permutations=spec.n_permutations, alpha=spec.alpha, seed=spec.seed,
        outputs=spec.outputs, bound=spec.bound, compare=spec.compare, curve=spec.curve,
        executor=executor or sc.executor, workers=workers or sc.workers,
        address=address if address is not None else sc.address, batch_size=sc.batch_size,
        overwrite=overwrite, log=log)
