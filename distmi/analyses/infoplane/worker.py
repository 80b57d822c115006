"""The plane's engine worker: runs :class:`~distmi.analyses.infoplane.spec.PlaneUnit` work units.

It has the interface the engine's executors run (``run(unit) -> BatchOutput``) and is built
per executor worker by ``TaskConfig.worker_factory`` (:func:`plane_task`), so the in-process
executor and every Ray actor compute a unit the same way. A worker reads the input layer and
the labels once, keeps the slices of X and of each layer, and reads one layer at one epoch per
unit from the training dataset.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from distmi.analyses.infoplane.compute import QUANTITIES, PCAPlane, SlicedPlane
from distmi.analyses.infoplane.spec import PlaneSpec, PlaneUnit
from distmi.core.errors import InvalidParameterError
from distmi.core.validation import as_labels
from distmi.engine.worker import BatchOutput, TaskConfig

ROW_COLUMNS = (
    "epoch", "layer", "n_units", "n_samples", "method", "base",
    *(f"{q}{suffix}" for q in QUANTITIES
      for suffix in ("", "_std", "_ci_low", "_ci_high", "_null", "_error")),
    "seconds", "batch_id",
)


def plane_task(spec: PlaneSpec) -> TaskConfig:
    """The engine task of a plane job (its worker is :class:`PlaneWorker`)."""
    return TaskConfig(
        dataset_path=str(spec.source), method=f"infoplane-{spec.method}",
        params=spec.model_dump(mode="json"), n_bootstrap=spec.n_bootstrap,
        null_permutations=spec.n_permutations, root_seed=spec.seed, threads=spec.threads,
        worker_factory=PlaneWorker,
    )


class PlaneWorker:
    """Computes plane units of one job (see module docstring)."""

    def __init__(self, task: TaskConfig) -> None:
        self.spec = PlaneSpec(**task.params)
        self.threads = task.threads
        self._ds = None
        self._plane: Any = None
        try:
            import torch

            torch.set_num_threads(task.threads)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass

    @property
    def dataset(self):
        if self._ds is None:
            from distmi.store.training import open_training

            self._ds = open_training(self.spec.source)
        return self._ds

    def _labels(self) -> np.ndarray:
        ds = self.dataset
        kinds = ds.target_kinds
        if self.spec.target not in kinds:
            raise InvalidParameterError(
                f"target {self.spec.target!r} is not in the training dataset; targets: "
                f"{sorted(kinds)}."
            )
        if kinds[self.spec.target] != "categorical":
            raise InvalidParameterError(
                f"target {self.spec.target!r} is continuous; I(L; Y) of the information plane "
                "needs a categorical target (class labels)."
            )
        return as_labels(ds.read_targets([self.spec.target])[self.spec.target].to_numpy(),
                         f"target {self.spec.target!r}")[0]

    def plane(self) -> SlicedPlane | PCAPlane:
        """The per-job computation object (X and labels read once)."""
        if self._plane is None:
            spec = self.spec
            ds = self.dataset
            x = ds.read_layer(spec.x_layer, ds.values[0]).astype(np.float64)
            labels = self._labels()
            if spec.method == "sliced":
                from distmi.estimators.sliced import parse_sliced_config

                cfg = parse_sliced_config(n_slices=spec.n_slices, base=spec.base, k=spec.k,
                                          n_jobs=self.threads, **spec.estimator_params)
                self._plane = SlicedPlane(x, labels, cfg, spec.seed, spec.n_bootstrap,
                                          spec.n_permutations)
            else:
                self._plane = PCAPlane(x, labels, spec.n_components, spec.estimator,
                                       spec.estimator_params, spec.n_bootstrap,
                                       spec.n_permutations)
        return self._plane

    def run(self, unit: PlaneUnit) -> BatchOutput:
        t0 = time.perf_counter()
        plane = self.plane()
        acts = self.dataset.read_layer(unit.layer, unit.epoch).astype(np.float64)
        if not np.all(np.isfinite(acts)):
            raise InvalidParameterError(
                f"layer {unit.layer!r} at {self.dataset.dimension} {unit.epoch} holds NaN or Inf "
                "activations; the plane needs finite activations (check the training run)."
            )
        estimates = plane.estimate(unit.layer, acts, unit.seed)
        row: dict[str, Any] = {
            "epoch": unit.epoch, "layer": unit.layer, "n_units": int(acts.shape[1]),
            "n_samples": int(acts.shape[0]), "method": self.spec.method,
            "base": self.spec.base if self.spec.method == "sliced" else self.spec.estimator,
        }
        for q in QUANTITIES:
            e = estimates[q]
            row.update({q: e.value, f"{q}_std": e.std, f"{q}_ci_low": e.ci_low,
                        f"{q}_ci_high": e.ci_high, f"{q}_null": e.null, f"{q}_error": e.error})
        row["seconds"] = round(time.perf_counter() - t0, 4)
        row["batch_id"] = unit.batch_id
        columns = {c: [row[c]] for c in ROW_COLUMNS}
        return BatchOutput(unit.batch_id, columns, time.perf_counter() - t0)

