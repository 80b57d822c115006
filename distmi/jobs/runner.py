"""``run_job``: spec -> dataset -> plan -> executor -> part files -> committed attribution table.

Resuming is the default: batches whose part file is already committed in the output folder
(same spec hash) are skipped, and the final table equals an uninterrupted run's because every
batch's numbers depend only on its content and seed, never on scheduling.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from distmi.core.errors import CorruptDataError
from distmi.engine.executors import Executor, make_executor
from distmi.engine.plan import Plan, batch_key, make_plan
from distmi.engine.worker import TaskConfig
from distmi.jobs.datasets import resolve_dataset
from distmi.jobs.spec import JobSpec, spec_hash, spec_to_dict
from distmi.reduce.attribution import sort_table
from distmi.reduce.commit import ResultStore, load_results

if TYPE_CHECKING:
    import pandas as pd

Progress = Callable[[int, int], None]


@dataclass
class JobResult:
    """A finished job: the attribution table, the manifest and what this run did."""

    table: pd.DataFrame
    manifest: dict[str, Any]
    output: str
    batches_run: int
    batches_resumed: int


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def task_config(spec: JobSpec, dataset_path: str) -> TaskConfig:
    """The worker configuration of a job."""
    from distmi.estimators.registry import get_method

    return TaskConfig(
        dataset_path=dataset_path,
        method=spec.estimator.method,
        params=spec.estimator_params(),
        n_bootstrap=spec.n_bootstrap,
        null_permutations=spec.null_permutations,
        root_seed=spec.seed,
        threads=spec.scaling.threads_per_worker,
        method_spec=get_method(spec.estimator.method),
    )


def plan_job(spec: JobSpec, log: Callable[[str], None] | None = None) -> tuple[Any, Plan]:
    """Resolve the dataset (building a bundled one if asked) and plan the batches."""
    from distmi.estimators.registry import get_method

    get_method(spec.estimator.method)  # unknown methods fail before any work
    ds = resolve_dataset(spec.dataset, log=log)
    return ds, make_plan(spec.plan_request(), ds)


def run_job(
    spec: JobSpec,
    *,
    executor: Executor | None = None,
    address: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> JobResult:
    """Run (or resume) a job and commit its results to ``spec.output``.

    Args:
        spec: a validated job.
        executor: an executor instance (default: from ``spec.scaling``, closed at the end).
        address: Ray address to attach to (overrides ``scaling.address``).
        overwrite: discard results already in the output folder.
        progress: called as ``progress(done, total)`` in pairs (work units), after each batch.
        log: called with one-line messages (dataset build, resume counts).
    """
    t_start = time.perf_counter()
    ds, plan = plan_job(spec, log)
    shash = spec_hash(spec)
    store = ResultStore(spec.output, shash)
    total = len(plan.batches)
    total_pairs = plan.n_pairs
    if store.is_committed and not overwrite:
        try:
            table, manifest = load_results(store.location)
        except CorruptDataError as exc:  # rebuilt below from the parts that still check out
            if log is not None:
                log(f"the committed results in {spec.output} are damaged ({exc}); rebuilding "
                    "them from the parts")
        else:
            if manifest.get("spec_hash") == shash:
                if log is not None:
                    log(f"{spec.output} already holds the committed results of this job")
                if progress is not None:
                    progress(total_pairs, total_pairs)
                return JobResult(table, manifest, spec.output, 0, total)
    store.begin({"spec": spec_to_dict(spec), "dataset_manifest_sha256": ds.manifest_hash},
                overwrite=overwrite)
    store.uncommit()
    planned = {b.key: b.batch_id for b in plan.batches}
    done = store.done_batches(planned)
    todo = [b for b in plan.batches if b.key not in done]
    if done and log is not None:
        log(f"resuming: {len(done)} of {total} batches already committed in {spec.output}")
    done_pairs = sum(b.n_pairs for b in plan.batches if b.key in done)
    if progress is not None:
        progress(done_pairs, total_pairs)
    own = executor is None
    if executor is None:
        executor = make_executor(spec.scaling.executor_settings(spec.retries), address)
    t_exec = time.perf_counter()
    n_run = 0
    try:
        for out in executor.run(todo, task_config(spec, ds.uri)):
            info = {"seconds": out.seconds, "worker": out.worker, "node_id": out.node_id}
            store.write_part(batch_key(out.batch_id), out.batch_id, out.columns, info)
            n_run += 1
            done_pairs += len(out.columns["layer"])
            if progress is not None:
                progress(done_pairs, total_pairs)
    finally:
        if own:
            executor.close()
    exec_s = time.perf_counter() - t_exec
    keys = list(planned)
    table = sort_table(store.read_parts(keys))
    compute_s = sum(store.part_info(k).get("seconds", 0.0) for k in keys)
    provenance = {
        "job_name": spec.name,
        "spec": spec_to_dict(spec),
        "dataset": {"path": ds.uri, "manifest_sha256": ds.manifest_hash,
                    "model_id": ds.model_id, "n_samples": ds.n_samples},
        "distmi_version": _distmi_version(),
        "ray_version": _version("ray"),
        "seed": spec.seed,
        "method": spec.estimator.method,
        "params": spec.estimator_params(),
        "pairs": plan.mode,
        "n_pairs": plan.n_pairs,
        "unit": "nat",
        "executor": getattr(executor, "name", type(executor).__name__),
        "timings": {
            "wall_s": round(time.perf_counter() - t_start, 4),
            "execute_s": round(exec_s, 4),
            "compute_s_sum": round(compute_s, 4),
            "batches_total": total,
            "batches_run": n_run,
            "batches_resumed": len(done),
            "retried": getattr(executor, "n_retried", 0),
        },
        "committed_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    manifest = store.commit(table, keys, provenance)
    return JobResult(table, manifest, spec.output, n_run, len(done))


def _distmi_version() -> str:
    from distmi.core.version import __version__

    return __version__
