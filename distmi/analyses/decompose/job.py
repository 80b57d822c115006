"""Many layers at once: one decomposition per layer as a work unit on the engine's executors.

The engine's own job model plans MI *pairs*. A decomposition is not a pair, so this module is a
small analysis-level runner on top of the same executor protocol
(:mod:`distmi.engine.executors`): an executor runs ``units`` with the worker that the task makes
(``task.make_worker()``, see :func:`distmi.engine.executors.make_worker`) and yields one
``BatchOutput`` per unit as units finish. The in-process executor and the Ray executor (actors,
retries, replacement of dead actors) are used unchanged.

- **Work unit**: one layer, id ``decompose|<model>|<layer>``, seed
  ``derive_seed(seed, "decompose", model, layer)``: the maps of a layer do not depend on which
  other layers are in the job, on the executor or on the order units finish.
- **Commit**: a unit writes its folder under ``layers/`` as a temporary sibling and renames it
  into place after its ``unit.json`` (spec hash, seed, summary) is written; a rerun keeps every
  committed unit of the same spec and runs only the rest. ``manifest.json`` (spec, spec hash,
  summary, timings, executor) is written last, after every unit is committed; ``job.json``
  (the spec) is written first, and an output folder holding another spec is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from distmi.core.atomic import atomic_write_bytes
from distmi.core.errors import SpecError
from distmi.core.seeds import derive_seed
from distmi.estimators.ksg_config import parse_model

SPEC_FILE = "job.json"
MANIFEST_FILE = "manifest.json"
UNIT_FILE = "unit.json"


class ExplainJobSpec(BaseModel):
    """What ``distmi explain`` computes (validated; unknown keys rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Literal["digits", "minilm"]
    layers: tuple[str, ...] = Field(min_length=1)
    output: str
    fit: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(0, ge=0)
    n_texts: int = Field(512, ge=8)
    n_explain: int = Field(128, ge=2)
    n_figures: int = Field(4, ge=0)
    evaluate: bool = True

    def hash(self) -> str:
        """SHA-256 of the spec without its output folder."""
        body = self.model_dump(exclude={"output"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def parse_spec(**params: Any) -> ExplainJobSpec:
    """Validate a job spec, including the decomposition parameters in ``fit``."""
    from distmi.analyses.decompose.config import parse_config

    spec = parse_model(ExplainJobSpec, "explain job", params)
    reserved = {"layer", "local", "representation", "random_state"} & set(spec.fit)
    if reserved:
        raise SpecError(
            f"fit parameters {sorted(reserved)} are set by the job per layer; remove them."
        )
    parse_config(layer="check", local="conv", **spec.fit)  # bad names and values fail here
    return spec  # type: ignore[return-value]


def canonical_layer(model: str, layer: str) -> str:
    """Module path of ``layer`` in the bundled model; for ``minilm`` the store's names
    (``encoder.layer.3``, ``embeddings``) are accepted for ``transformer.encoder.layer.3``."""
    if model == "minilm" and not layer.startswith("transformer."):
        if layer.startswith(("encoder.", "embeddings")):
            return f"transformer.{layer}"
    return layer


@dataclass(frozen=True)
class LayerUnit:
    """One work unit: a layer. ``shard`` exists for the executors' scheduling (cache affinity)."""

    batch_id: str
    layer: str
    seed: int
    shard: tuple[int, int] = (0, 0)


def plan(spec: ExplainJobSpec) -> list[LayerUnit]:
    """One unit per distinct layer, in the spec's order."""
    units, seen = [], set()
    for raw in spec.layers:
        layer = canonical_layer(spec.model, raw)
        if layer in seen:
            continue
        seen.add(layer)
        units.append(LayerUnit(f"decompose|{spec.model}|{layer}", layer,
                               derive_seed(spec.seed, "decompose", spec.model, layer)))
    return units


def _unit_dir(output: Path, layer: str) -> Path:
    return output / "layers" / layer.replace("/", "_")


@dataclass(frozen=True)
class ExplainTask:
    """Shipped once to each worker: the spec and its hash."""

    spec: dict[str, Any]
    spec_hash: str
    threads: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def make_worker(self) -> LayerWorker:
        return LayerWorker(self)


class LayerWorker:
    """Fits, explains, evaluates and commits one layer per :meth:`run` (model loaded once)."""

    def __init__(self, task: ExplainTask) -> None:
        self.task = task
        self.spec = ExplainJobSpec(**task.spec)
        self._bundle = None

    @property
    def bundle(self) -> Any:
        if self._bundle is None:
            from distmi.analyses.decompose.bundled import load_bundle

            kwargs = ({"n_texts": self.spec.n_texts, "n_explain": self.spec.n_explain}
                      if self.spec.model == "minilm" else {})
            self._bundle = load_bundle(self.spec.model, self.spec.seed, **kwargs)
        return self._bundle

    def run(self, unit: LayerUnit) -> Any:
        from distmi.analyses.decompose.config import torch_threads
        from distmi.analyses.decompose.decomposition import fit
        from distmi.analyses.decompose.evaluation import compare_methods, saliency_maps
        from distmi.analyses.decompose.outputs import write_layer
        from distmi.engine.worker import BatchOutput

        t0 = time.perf_counter()
        b = self.bundle
        fit_params = {"threads": self.task.threads, **self.spec.fit}
        dec = fit(b.model, b.fit_data, layer=unit.layer, local=b.local,
                  representation=b.representation, random_state=unit.seed, **fit_params)
        expl = dec.explain((b.explain_inputs, b.explain_labels))
        evaluation = None
        if self.spec.evaluate:
            with torch_threads(dec.config.threads):
                maps = saliency_maps(b.model, unit.layer, b.explain_inputs, expl,
                                     embeddings=b.embeddings, pad_id=b.pad_id, seed=unit.seed)
                evaluation = compare_methods(b.model, b.explain_inputs, b.explain_labels, maps,
                                             local=b.local, protected=b.protected,
                                             seed=unit.seed)
        output = Path(self.spec.output)
        final = _unit_dir(output, unit.layer)
        tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        summary = write_layer(tmp, dec, expl, b, n_figures=self.spec.n_figures,
                              evaluation=evaluation)
        summary["seed"] = unit.seed
        summary["unit_seconds"] = time.perf_counter() - t0
        record = {"unit": unit.batch_id, "spec_hash": self.task.spec_hash, "summary": summary}
        atomic_write_bytes(tmp / UNIT_FILE, json.dumps(record, indent=1).encode())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return BatchOutput(unit.batch_id, {k: [v] for k, v in summary.items()},
                           time.perf_counter() - t0)


def _committed(output: Path, unit: LayerUnit, spec_hash: str) -> dict[str, Any] | None:
    record_file = _unit_dir(output, unit.layer) / UNIT_FILE
    if not record_file.exists():
        return None
    record = json.loads(record_file.read_text())
    return record["summary"] if record.get("spec_hash") == spec_hash else None


@dataclass
class ExplainJobResult:
    output: Path
    summary: Any  # pandas DataFrame, one row per layer in the spec's order
    manifest: dict[str, Any]
    n_resumed: int


def _executor(kind: Any, *, address: str | None, workers: int, cpus_per_worker: float,
              gpus_per_worker: float, retries: int) -> Any:
    """An executor object as given, or the engine's executor for ``"local"`` / ``"ray"``."""
    from distmi.engine.executors import make_executor
    from distmi.engine.requests import ExecutorSettings

    if not isinstance(kind, str):
        return kind  # an executor object (anything with run(units, task) and close())
    if kind not in ("local", "ray"):
        raise SpecError(f"executor must be 'local' or 'ray', got {kind!r}.")
    settings = ExecutorSettings(executor=kind, address=address, workers=workers,
                                cpus_per_worker=cpus_per_worker,
                                gpus_per_worker=gpus_per_worker, retries=retries)
    return make_executor(settings)


def run_explain_job(spec: ExplainJobSpec, *, executor: Any = "local", address: str | None = None,
                    workers: int = 2, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0,
                    retries: int = 1, threads: int = 1, overwrite: bool = False,
                    on_unit: Any = None) -> ExplainJobResult:
    """Run (or resume) an explain job; see the module docstring."""
    import pandas as pd

    from distmi.core.version import __version__

    t0 = time.perf_counter()
    output = Path(spec.output)
    spec_hash = spec.hash()
    spec_file = output / SPEC_FILE
    if spec_file.exists():
        previous = json.loads(spec_file.read_text())
        if previous.get("spec_hash") != spec_hash:
            if not overwrite:
                raise SpecError(
                    f"{output} holds the results of a different explain job (spec hash "
                    f"{previous.get('spec_hash', '?')[:12]} vs {spec_hash[:12]}); choose another "
                    "--output or pass --overwrite to replace them."
                )
            shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MANIFEST_FILE).unlink(missing_ok=True)
    atomic_write_bytes(spec_file, json.dumps({"spec": spec.model_dump(), "spec_hash": spec_hash},
                                             indent=1).encode())
    units = plan(spec)
    rows: dict[str, dict[str, Any]] = {}
    pending = []
    for unit in units:
        done = _committed(output, unit, spec_hash)
        if done is None:
            pending.append(unit)
        else:
            rows[unit.batch_id] = done
    n_resumed = len(rows)
    task = ExplainTask(spec.model_dump(), spec_hash, threads)
    ex = _executor(executor, address=address, workers=workers, cpus_per_worker=cpus_per_worker,
                   gpus_per_worker=gpus_per_worker, retries=retries)
    try:
        for out in ex.run(pending, task):
            rows[out.batch_id] = {k: v[0] for k, v in out.columns.items()}
            if on_unit is not None:
                on_unit(rows[out.batch_id])
    finally:
        ex.close()
    summary = pd.DataFrame([rows[u.batch_id] for u in units])
    summary.to_csv(output / "summary.csv", index=False)
    manifest = {
        "kind": "distmi-explain-job/1",
        "distmi_version": __version__,
        "spec": spec.model_dump(),
        "spec_hash": spec_hash,
        "units": [u.batch_id for u in units],
        "seeds": {u.layer: u.seed for u in units},
        "executor": getattr(ex, "name", type(ex).__name__),
        "n_resumed": n_resumed,
        "seconds": time.perf_counter() - t0,
        "summary": summary.to_dict(orient="records"),
    }
    atomic_write_bytes(output / MANIFEST_FILE, json.dumps(manifest, indent=1, default=float)
                       .encode())
    return ExplainJobResult(output, summary, manifest, n_resumed)
