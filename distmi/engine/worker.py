"""The batch worker: reads a batch's data from the activation store and runs the estimator.

The same :class:`BatchWorker` runs inside the in-process executor and inside each Ray actor, so
both give the same numbers. A worker keeps the arrays it has read (one entry per Parquet shard,
target or partner-unit range) in a bounded LRU cache: a shard is read once per worker.

Per batch it calls the registry method's batched ``estimate_pairs`` (or ``estimate`` per pair
when a method has none) once for the estimates and once per null permutation. The null
baseline of a pair is the mean estimate after permuting the rows of y with permutation ``k``
(``k < null_permutations``), drawn from ``derive_rng(root, "null", layer, partner, k)``: the
value the estimator reports for independent variables at this sample size (its bias floor).
Null fits use ``n_bootstrap=0``.

In a two-stage sweep the same worker also runs screen and null-table batches
(:mod:`distmi.engine.screen_worker`); refine batches are ordinary estimate batches.

Units that are constant or hold NaN/Inf cannot be estimated; their rows carry
``status="constant"`` (estimate 0: MI with a constant is zero) or ``status="nonfinite"``
(estimate NaN) instead of failing the job. Estimated rows carry the result's own
``MIResult.status``: ``"ok"``, or why the value is not to be trusted (``"diverged"``,
``"negative"``, ``"capped"`` for the neural bounds).
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distmi.core.errors import InvalidParameterError
from distmi.core.results import MIResult
from distmi.core.scaling import constant_mask
from distmi.core.seeds import derive_rng
from distmi.core.validation import as_float_matrix, as_labels
from distmi.engine.plan import WorkBatch

RESULT_COLUMNS = (
    "layer", "unit", "target", "target_unit", "estimate", "std", "ci_low", "ci_high",
    "null_mean", "n_samples", "method", "status", "diagnostics", "batch_id",
)


@dataclass(frozen=True)
class TaskConfig:
    """Everything a worker needs besides the batch (shipped once per actor)."""

    dataset_path: str
    method: str
    params: dict[str, Any]
    n_bootstrap: int
    null_permutations: int
    root_seed: int
    threads: int = 1
    cache_bytes: int = 1 << 30
    dataset_sha256: str | None = None  # the manifest hash the job was planned on (None: any)
    method_spec: Any = None  # the resolved MethodSpec, shipped so registered plug-ins work in actors
    # ``worker_factory(task)`` builds the worker of analyses that plan their own work units
    # (an object with ``run(unit) -> BatchOutput``); None runs pair batches with BatchWorker
    worker_factory: Any = None
    screen: Any = None  # the ScreenRequest of a two-stage sweep (screen and null batches)


@dataclass
class BatchOutput:
    """Rows of one batch (column name -> list) plus where and how long it ran (wall seconds,
    and CPU seconds of the worker process, which on a busy machine is the fairer measure)."""

    batch_id: str
    columns: dict[str, list[Any]]
    seconds: float
    worker: str = field(default_factory=lambda: f"pid{os.getpid()}")
    node_id: str = ""
    cpu_seconds: float = float("nan")


def make_worker(task: Any) -> Any:
    """The worker an executor runs ``task``'s batches with (an object with
    ``run(unit) -> BatchOutput``).

    - a :class:`TaskConfig` of an MI pair job: a :class:`BatchWorker`;
    - a :class:`TaskConfig` with ``worker_factory``: ``worker_factory(task)`` (analyses that
      plan their own work units over the job machinery, e.g. the information plane);
    - any other task object with a ``make_worker()`` method: its result (analyses whose work
      units are not MI pairs, e.g. one decomposition per layer,
      :mod:`distmi.analyses.decompose.job`; units carry ``batch_id``, ``layer`` and ``shard``).

    Either way the analysis runs on the same executors (retries, Ray actors, fault tolerance).
    """
    own = getattr(task, "make_worker", None)
    if callable(own):
        return own()
    factory = getattr(task, "worker_factory", None)
    return BatchWorker(task) if factory is None else factory(task)


def _scalar_diagnostics(res: MIResult) -> str:
    keep = {}
    for k, v in res.diagnostics.items():
        if isinstance(v, bool | int | float | str | np.number | np.bool_):
            keep[k] = v.item() if isinstance(v, np.generic) else v
    return json.dumps(keep, sort_keys=True)


def _usable(col: np.ndarray) -> str:
    """'ok', 'nonfinite' or 'constant' (relative to its own magnitude) for a column (n,)."""
    if not np.isfinite(col).all():
        return "nonfinite"
    if constant_mask(col[:, None], axis=0)[0]:
        return "constant"
    return "ok"


class BatchWorker:
    """Runs batches of one job (see module docstring)."""

    def __init__(self, task: TaskConfig) -> None:
        self.task = task
        self._ds = None
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        self._cache_size = 0
        self._method = None
        try:
            import torch

            torch.set_num_threads(task.threads)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass

    # ---- data ---------------------------------------------------------------------------
    @property
    def dataset(self):
        if self._ds is None:
            from distmi.store.reader import open_dataset

            # a job pins the dataset it was planned on: a re-capture while the job runs makes
            # the workers fail with the reason instead of mixing two datasets' activations
            self._ds = open_dataset(self.task.dataset_path,
                                    manifest_sha256=self.task.dataset_sha256)
        return self._ds

    def _cached(self, key: tuple, load) -> Any:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = load()
        size = getattr(value[0] if isinstance(value, tuple) else value, "nbytes", 0)
        self._cache[key] = value
        self._cache_size += size
        while self._cache_size > self.task.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_size -= getattr(old[0] if isinstance(old, tuple) else old, "nbytes", 0)
        return value

    def _units(self, layer: str, start: int, stop: int) -> np.ndarray:
        """Units [start, stop) of ``layer`` as float64, shape (n, stop - start)."""
        return self._cached(
            ("units", layer, start, stop),
            lambda: self.dataset.read_layer(layer, units=slice(start, stop)).astype(np.float64),
        )

    def _target(self, name: str) -> tuple[np.ndarray, bool]:
        """(y, discrete): label codes (n,) for categorical targets, float64 (n, 1) otherwise."""

        def load():
            frame = self.dataset.read_targets([name])
            values = frame[name].to_numpy()
            if self.dataset.target_kinds[name] == "categorical":
                return as_labels(values, f"target {name!r}")[0], True
            return as_float_matrix(values, f"target {name!r}"), False

        return self._cached(("target", name), load)

    def _spec(self):
        if self._method is None:
            from distmi.estimators.registry import get_method

            self._method = self.task.method_spec or get_method(self.task.method)
        return self._method

    # ---- estimation ---------------------------------------------------------------------
    def _estimate(self, X: np.ndarray, Y: np.ndarray, pairs: np.ndarray, discrete: bool,
                  n_bootstrap: int, seed: int) -> list[MIResult]:
        spec = self._spec()
        common = dict(discrete_y=discrete, n_bootstrap=n_bootstrap, random_state=seed)
        if spec.estimate_pairs is not None:
            return list(spec.estimate_pairs(X, Y, pairs, **common, **self.task.params))
        return [
            spec.estimate(X[:, [i]], Y if discrete else Y[:, [j]], **common, **self.task.params)
            for i, j in pairs
        ]

    def _null(self, batch: WorkBatch, run) -> np.ndarray | None:
        """Mean over permutations of ``run(perm)`` (an array of estimates), or None."""
        k_max = self.task.null_permutations
        if k_max == 0:
            return None
        n = self.dataset.n_samples
        total = None
        for k in range(k_max):
            perm = derive_rng(self.task.root_seed, "null", batch.layer, batch.partner.kind,
                              batch.partner.name, k).permutation(n)
            values = np.asarray(run(perm), dtype=np.float64)
            total = values if total is None else total + values
        return total / k_max

    def run(self, batch: WorkBatch) -> BatchOutput:
        """Run one work unit: estimate every pair of ``batch`` (rows in its pair order), or,
        in a two-stage sweep, its screen statistics or null-table permutations
        (:mod:`distmi.engine.screen_worker`)."""
        t0, c0 = time.perf_counter(), time.process_time()
        stage = getattr(batch, "stage", "estimate")
        if stage in ("screen", "null"):
            from distmi.engine import screen_worker

            if self.task.screen is None:
                raise InvalidParameterError(
                    f"batch {batch.batch_id} is a {stage} batch but the task has no screen "
                    "settings; build the TaskConfig with screen=ScreenRequest(...)."
                )
            run = screen_worker.run_null if stage == "null" else screen_worker.run_screen
            rows = run(self, batch)
            if stage == "screen":
                rows["batch_id"] = [batch.batch_id] * batch.n_pairs
            return BatchOutput(batch.batch_id, rows, time.perf_counter() - t0,
                               cpu_seconds=time.process_time() - c0)
        spec = self._spec()
        if batch.partner.kind == "target":
            y, discrete = self._target(batch.partner.name)
            if discrete and not spec.supports_discrete_y:
                raise InvalidParameterError(
                    f"method {spec.name!r} does not accept the categorical target "
                    f"{batch.partner.name!r}; use a method that supports discrete y (e.g. 'gmm' or "
                    "'ksg') or choose continuous targets."
                )
        if batch.layer_units.size:
            rows = self._run_layer(batch, y, discrete)
        else:
            rows = self._run_pairs(batch)
        rows["batch_id"] = [batch.batch_id] * batch.n_pairs
        return BatchOutput(batch.batch_id, rows, time.perf_counter() - t0,
                           cpu_seconds=time.process_time() - c0)

    def _run_pairs(self, batch: WorkBatch) -> dict[str, list[Any]]:
        s0, s1 = batch.shard
        shard = self._units(batch.layer, s0, s1)
        xu = np.unique(batch.x_units)
        X = shard[:, xu - s0]  # shape (n, unique x units)
        x_status = {int(u): _usable(X[:, k]) for k, u in enumerate(xu)}
        if batch.partner.kind == "target":
            Y, discrete = self._target(batch.partner.name)
            yu = np.array([-1], np.int64)
            y_status = {-1: "ok"}
        else:
            discrete = False
            yu = np.unique(batch.y_units)
            Y = self._units(batch.partner.name, int(yu[0]), int(yu[-1]) + 1)[:, yu - yu[0]]
            y_status = {int(u): _usable(Y[:, k]) for k, u in enumerate(yu)}
        status = [
            "nonfinite" if "nonfinite" in (x_status[int(a)], y_status[int(b)])
            else "constant" if "constant" in (x_status[int(a)], y_status[int(b)]) else "ok"
            for a, b in zip(batch.x_units, batch.y_units, strict=True)
        ]
        ok = np.array([s == "ok" for s in status])
        pairs = np.stack([np.searchsorted(xu, batch.x_units), np.searchsorted(yu, batch.y_units)],
                         axis=1).astype(np.int64)[ok]
        results: list[MIResult] = []
        null = None
        if ok.any():
            results = self._estimate(X, Y, pairs, discrete, self.task.n_bootstrap, batch.seed)
            null = self._null(batch, lambda perm: [
                r.value for r in self._estimate(X, Y[perm], pairs, discrete, 0, batch.seed)
            ])
        return self._rows(batch, status, results, null)

    def _run_layer(self, batch: WorkBatch, y: np.ndarray, discrete: bool) -> dict[str, list[Any]]:
        units = batch.layer_units
        block = self._units(batch.layer, int(units[0]), int(units[-1]) + 1)[:, units - units[0]]
        good = [k for k in range(block.shape[1]) if _usable(block[:, k]) == "ok"]
        if not good:
            return self._rows(batch, ["constant"], [], None)
        x = np.ascontiguousarray(block[:, good])
        spec = self._spec()
        if x.shape[1] > 1 and not spec.supports_multivariate:
            raise InvalidParameterError(
                f"method {spec.name!r} estimates one x column at a time, but pairs='layer-target' "
                f"makes x all {x.shape[1]} units of layer {batch.layer!r}; use method='sliced' "
                "(or another multivariate method) or pairs='unit-target'."
            )
        common = dict(discrete_y=discrete, random_state=batch.seed, **self.task.params)
        res = spec.estimate(x, y, n_bootstrap=self.task.n_bootstrap, **common)
        null = self._null(batch, lambda perm: [spec.estimate(x, y[perm], n_bootstrap=0,
                                                             **common).value])
        return self._rows(batch, ["ok"], [res], null)

    def _rows(self, batch: WorkBatch, status: list[str], results: list[MIResult],
              null: np.ndarray | None) -> dict[str, list[Any]]:
        cols: dict[str, list[Any]] = {c: [] for c in RESULT_COLUMNS if c != "batch_id"}
        it = iter(results)
        k_ok = 0
        for a, b, st in zip(batch.x_units, batch.y_units, status, strict=True):
            cols["layer"].append(batch.layer)
            cols["unit"].append(int(a))
            cols["target"].append(batch.partner.name)
            cols["target_unit"].append(int(b))
            cols["method"].append(self.task.method)
            cols["status"].append(st)
            if st == "ok":
                r = next(it)
                values = (r.value, r.std, r.ci[0], r.ci[1],
                          float(null[k_ok]) if null is not None else np.nan)
                cols["n_samples"].append(int(r.n_samples))
                cols["diagnostics"].append(_scalar_diagnostics(r))
                cols["status"][-1] = r.status  # "ok", or why not to trust it (MIResult.status)
                k_ok += 1
            else:
                fill = 0.0 if st == "constant" else np.nan
                values = (fill, fill, fill, fill, fill if null is not None else np.nan)
                cols["n_samples"].append(int(self.dataset.n_samples))
                cols["diagnostics"].append("{}")
            for name, v in zip(("estimate", "std", "ci_low", "ci_high", "null_mean"), values,
                               strict=True):
                cols[name].append(float(v))
        return cols
