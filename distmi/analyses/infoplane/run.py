"""Run an information-plane job on the engine: plan epoch x layer units, execute, commit.

The units run through the engine's executors (:mod:`distmi.engine.executors`: in-process, or
Ray actors), with :class:`~distmi.analyses.infoplane.worker.PlaneWorker` as the worker
(``TaskConfig.worker_factory``). With an ``output`` folder the results are committed like a
job's (:class:`distmi.reduce.commit.ResultStore`): one part file per unit, the sorted table
and ``manifest.json`` last, plus ``infoplane.csv`` and ``infoplane.png``. An interrupted run
resumes: units whose part carries this job's hash are not recomputed, and the final table
equals an uninterrupted run's.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from distmi.analyses.infoplane.spec import PlaneSpec, plan_units
from distmi.analyses.infoplane.worker import ROW_COLUMNS, plane_task
from distmi.core.errors import InvalidParameterError
from distmi.engine.plan import batch_key

FIGURE = "infoplane.png"
CSV = "infoplane.csv"


@dataclass
class PlaneResult:
    """The plane table (one row per epoch and layer), its manifest and where it was written."""

    table: pd.DataFrame
    manifest: dict[str, Any]
    output: Path | None
    n_run: int
    n_resumed: int

    def figure(self, **kwargs: Any):
        """The information-plane figure (:func:`~distmi.analyses.infoplane.figure.plane_figure`)."""
        from distmi.analyses.infoplane.figure import plane_figure

        layers = self.manifest.get("spec", {}).get("layers")
        return plane_figure(self.table, layers=layers, **kwargs)


def sort_plane(frame: pd.DataFrame, layers: list[str], dimension: str) -> pd.DataFrame:
    """Rows in layer order then epoch order, columns in ``ROW_COLUMNS`` order."""
    order = {name: i for i, name in enumerate(layers)}
    frame = frame.assign(_layer=frame["layer"].map(order)).sort_values(["_layer", "epoch"])
    frame = frame.drop(columns="_layer").reset_index(drop=True)[list(ROW_COLUMNS)]
    frame.attrs["dimension"] = dimension
    return frame


def make_plane_executor(spec: PlaneSpec, address: str | None = None):
    """The executor the spec asks for (in-process, or Ray with ``workers`` actors)."""
    from distmi.engine.executors import make_executor
    from distmi.engine.requests import ExecutorSettings

    settings = ExecutorSettings(executor=spec.executor, workers=spec.workers,
                                cpus_per_worker=1.0, retries=2)
    return make_executor(settings, address=address)


def run_plane(
    spec: PlaneSpec,
    *,
    executor: Any = None,
    address: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> PlaneResult:
    """Estimate the information plane of ``spec`` (commit it when ``spec.output`` is set)."""
    from distmi.store.training import open_training

    t_start = time.perf_counter()
    ds = open_training(spec.source)
    if spec.x_layer in spec.layers:
        raise InvalidParameterError(
            f"x_layer {spec.x_layer!r} is also in layers; I(X; X) is not a plane point: drop it "
            "from layers."
        )
    epochs = ds.check([spec.x_layer, *spec.layers], spec.epochs)
    units = plan_units(spec, epochs)
    store = None
    done: set[str] = set()
    if spec.output is not None:
        from distmi.reduce.commit import ResultStore, load_results

        store = ResultStore(spec.output, spec.hash())
        if store.is_committed and not overwrite:
            table, manifest = load_results(spec.output)
            if manifest.get("spec_hash") == spec.hash():
                if log is not None:
                    log(f"{spec.output} already holds this plane")
                return PlaneResult(sort_plane(table, spec.layers, ds.dimension), manifest,
                                   Path(spec.output), 0, len(units))
        store.begin({"plane_spec": spec.model_dump(mode="json")}, overwrite=overwrite)
        store.uncommit()
        done = store.done_batches({u.key: u.batch_id for u in units})
        if done and log is not None:
            log(f"resuming: {len(done)} of {len(units)} units already committed")
    todo = [u for u in units if u.key not in done]
    own = executor is None
    executor = make_plane_executor(spec, address) if executor is None else executor
    rows: list[dict[str, list[Any]]] = []
    n_done = len(done)
    if progress is not None:
        progress(n_done, len(units))
    try:
        for out in executor.run(todo, plane_task(spec)):
            if store is not None:
                info = {"seconds": out.seconds, "worker": out.worker, "node_id": out.node_id}
                store.write_part(batch_key(out.batch_id), out.batch_id, out.columns, info)
            rows.append(out.columns)
            n_done += 1
            if progress is not None:
                progress(n_done, len(units))
    finally:
        if own:
            executor.close()
    if store is not None:
        frame = store.read_parts([u.key for u in units])
    else:
        frame = pd.concat([pd.DataFrame(r) for r in rows], ignore_index=True)
    table = sort_plane(frame, spec.layers, ds.dimension)
    manifest: dict[str, Any] = {
        "analysis": "infoplane",
        "spec": spec.model_dump(mode="json"),
        "spec_hash": spec.hash(),
        "dimension": ds.dimension,
        "epochs": epochs,
        "unit": "nat",
        "executor": getattr(executor, "name", type(executor).__name__),
        "timings": {"wall_s": round(time.perf_counter() - t_start, 3),
                    "units_run": len(todo), "units_resumed": len(done)},
        "committed_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if store is not None:
        out_dir = Path(spec.output)
        table.to_csv(out_dir / CSV, index=False)
        result = PlaneResult(table, manifest, out_dir, len(todo), len(done))
        from distmi.analyses.infoplane.figure import save_figure

        save_figure(result.figure(title=_title(spec)), out_dir / FIGURE)
        manifest = store.commit(table, [u.key for u in units], manifest)
        result.manifest = manifest
        return result
    return PlaneResult(table, manifest, None, len(todo), len(done))


def _title(spec: PlaneSpec) -> str:
    if spec.method == "sliced":
        return f"information plane: sliced MI ({spec.base.upper()}, {spec.n_slices} slices)"
    return f"information plane: PCA-{spec.n_components} + {spec.estimator.upper()}"
