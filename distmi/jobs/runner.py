"""``run_job``: spec -> dataset -> plan -> executor -> part files -> committed attribution table.

A job with a ``screen:`` section runs as a two-stage sweep (:mod:`distmi.jobs.stages`): a rank
screen of every pair with p-values and q-values, then the job's estimator on the pairs it keeps.

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
from distmi.engine.plan import Plan, make_plan
from distmi.engine.worker import TaskConfig
from distmi.jobs.datasets import resolve_dataset
from distmi.jobs.spec import JobSpec, spec_hash, spec_to_dict
from distmi.jobs.stages import StagesOutcome, execute_batches, run_two_stage
from distmi.reduce.attribution import sort_table
from distmi.reduce.commit import ResultStore, load_results, results_dataset_hash

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


def task_config(spec: JobSpec, dataset_path: str,
                dataset_sha256: str | None = None) -> TaskConfig:
    """The worker configuration of a job (workers refuse a dataset other than
    ``dataset_sha256``, the manifest hash the job was planned on)."""
    from distmi.estimators.registry import get_method

    return TaskConfig(
        dataset_path=dataset_path,
        dataset_sha256=dataset_sha256,
        method=spec.estimator.method,
        params=spec.estimator_params(),
        n_bootstrap=spec.n_bootstrap,
        null_permutations=spec.null_permutations,
        root_seed=spec.seed,
        threads=spec.scaling.threads_per_worker,
        method_spec=get_method(spec.estimator.method),
    )


def plan_job(spec: JobSpec, log: Callable[[str], None] | None = None,
             address: str | None = None) -> tuple[Any, Plan]:
    """Ensure the dataset exists (building a bundled one or running the capture stage on the
    job's executor when needed), then plan the batches."""
    from distmi.jobs.spec import check_estimator

    check_estimator(spec)  # unknown methods and bad parameters fail before any work
    ds = resolve_dataset(spec.dataset, log=log, address=address,
                         settings=spec.scaling.executor_settings(spec.retries),
                         threads=spec.scaling.threads_per_worker)
    plan = make_plan(spec.plan_request(), ds)
    if spec.screen is not None:  # a plan the screen cannot serve fails before any work
        from distmi.engine.screen_plan import check_screen

        check_screen(plan, spec.screen.request(), ds.n_samples)
    return ds, plan


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
        progress: called as ``progress(done, total)`` in pairs (work units), after each batch
            (a two-stage job also counts its null-table permutations, and its total grows when
            the refine stage is planned).
        log: called with one-line messages (dataset build, resume counts).
    """
    t_start = time.perf_counter()
    ds, plan = plan_job(spec, log, address)
    shash = spec_hash(spec)
    store = ResultStore(spec.output, shash, dataset_hash=ds.manifest_hash)
    total_pairs = plan.n_pairs
    if store.is_committed and not overwrite:
        try:
            table, manifest = load_results(store.location)
        except CorruptDataError as exc:  # rebuilt below from the parts that still check out
            if log is not None:
                log(f"the committed results in {spec.output} are damaged ({exc}); rebuilding "
                    "them from the parts")
        else:
            if store.holds(manifest):
                if log is not None:
                    log(f"{spec.output} already holds the committed results of this job")
                if progress is not None:
                    progress(total_pairs, total_pairs)
                return JobResult(table, manifest, spec.output, 0,
                                 manifest.get("timings", {}).get("batches_total",
                                                                 len(plan.batches)))
            if manifest.get("spec_hash") == shash and log is not None:
                log(f"{spec.output} holds this job's results on another dataset "
                    f"({str(results_dataset_hash(manifest))[:12]}...); the dataset {ds.path} "
                    f"({ds.manifest_hash[:12]}...) changed: computing again")
    store.begin({"spec": spec_to_dict(spec), "dataset_manifest_sha256": ds.manifest_hash},
                overwrite=overwrite)
    store.uncommit()
    own = executor is None
    if executor is None:
        executor = make_executor(spec.scaling.executor_settings(spec.retries), address)
    task = task_config(spec, ds.uri, ds.manifest_hash)
    t_exec = time.perf_counter()
    try:
        if spec.screen is None:
            outcome = _one_stage(plan, store, executor, task, progress, log)
        else:
            outcome = run_two_stage(spec, ds, plan, store, executor, task, overwrite=overwrite,
                                    progress=progress, log=log)
    finally:
        if own:
            executor.close()
    exec_s = time.perf_counter() - t_exec
    table, keys = outcome.table, outcome.keys
    infos = [store.part_info(k) for k in keys]
    compute_s = sum(i.get("seconds", 0.0) for i in infos)
    compute_cpu_s = sum(i.get("cpu_seconds", 0.0) for i in infos)
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
            "compute_cpu_s_sum": round(compute_cpu_s, 4),
            "batches_total": outcome.batches_total,
            "batches_run": outcome.batches_run,
            "batches_resumed": outcome.batches_resumed,
            "retried": getattr(executor, "n_retried", 0),
        },
        "committed_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **outcome.provenance,
    }
    manifest = store.commit(table, keys, provenance)
    return JobResult(table, manifest, spec.output, outcome.batches_run, outcome.batches_resumed)


def _one_stage(plan: Plan, store: ResultStore, executor: Executor, task: TaskConfig,
               progress: Progress | None, log: Callable[[str], None] | None) -> StagesOutcome:
    """Every pair with the job's estimator (a job without ``screen:``)."""
    total = len(plan.batches)
    planned = {b.key: b.batch_id for b in plan.batches}
    done = store.done_batches(planned)
    todo = [b for b in plan.batches if b.key not in done]
    if done and log is not None:
        log(f"resuming: {len(done)} of {total} batches already committed in {store.path}")
    done_pairs = [sum(b.n_pairs for b in plan.batches if b.key in done)]

    def tick(n: int) -> None:
        done_pairs[0] += n
        if progress is not None:
            progress(done_pairs[0], plan.n_pairs)

    tick(0)
    n_run = execute_batches(executor, todo, task, store, tick)
    keys = list(planned)
    table = sort_table(store.read_parts(keys))
    return StagesOutcome(table, keys, total, n_run, len(done), {})


def _distmi_version() -> str:
    from distmi.core.version import __version__

    return __version__
