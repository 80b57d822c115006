"""Running a job's work units into its result folder, and the two-stage sweep.

A two-stage job (``screen:`` in the spec) runs two executor passes
(:mod:`distmi.engine.screen_plan`):

1. **screen pass**: null-table batches and screen batches; their parts go to ``OUTPUT/parts``.
   The driver then computes p-values against the null tables, q-values per FDR family and the
   selection to refine (:mod:`distmi.reduce.screen_table`);
2. **refine pass**: the job's estimator on the selected pairs; parts go to
   ``OUTPUT/refine/parts`` (its own store, so resuming the screen pass never discards refine
   parts of an interrupted run).

Then ``OUTPUT/null_tables.parquet`` (every null table, long format) is written, and the runner
commits the merged table and the manifest, which records both files' sha256 and the refine
parts. Every stage resumes from its committed parts; the selection is recomputed from the
committed screen parts, which are deterministic, so the refine pass plans the same batches.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from distmi.core.storage import StorePath
from distmi.engine.plan import Plan, batch_key
from distmi.engine.screen_plan import plan_refine, plan_screen
from distmi.reduce.attribution import sort_table
from distmi.reduce.commit import ResultStore

if TYPE_CHECKING:
    import pandas as pd

    from distmi.engine.executors import Executor
    from distmi.engine.worker import TaskConfig
    from distmi.jobs.spec import JobSpec

NULL_TABLES = "null_tables.parquet"
REFINE = "refine"


def execute_batches(executor: Executor, batches: Sequence[Any], task: TaskConfig,
                    store: ResultStore, on_pairs: Callable[[int], None] | None = None) -> int:
    """Run ``batches`` and commit each output as a part of ``store``; returns the number run.

    ``on_pairs(n)`` is called after each batch with the number of pairs it held (for a
    null-table batch: its permutations, each about the cost of one pair).
    """
    n_run = 0
    for out in executor.run(list(batches), task):
        info = {"seconds": out.seconds, "cpu_seconds": out.cpu_seconds, "worker": out.worker,
                "node_id": out.node_id}
        store.write_part(batch_key(out.batch_id), out.batch_id, out.columns, info)
        n_run += 1
        if on_pairs is not None:
            on_pairs(len(out.columns.get("layer", out.columns.get("permutation", ()))))
    return n_run


@dataclass
class StagesOutcome:
    """What the passes of a job produced (the runner commits it)."""

    table: pd.DataFrame
    keys: list[str]  # parts of the main store listed in the manifest
    batches_total: int
    batches_run: int
    batches_resumed: int
    provenance: dict[str, Any]


def _sha256(path: StorePath) -> str:
    import hashlib

    h = hashlib.sha256()
    for chunk in path.iter_chunks():
        h.update(chunk)
    return h.hexdigest()


def _cpu(store: ResultStore, keys: list[str]) -> float:
    """CPU seconds of the work units behind ``keys`` (summed over workers)."""
    return round(sum(store.part_info(k).get("cpu_seconds", 0.0) for k in keys), 3)


def _write_null_tables(path: StorePath, null: pd.DataFrame) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = null.sort_values(["null_key", "permutation"], kind="mergesort").reset_index(drop=True)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    path.write_bytes(sink.getvalue().to_pybytes())  # atomic (temporary sibling, rename)
    sizes = frame.groupby("null_key").size()
    return {"path": path.name, "sha256": _sha256(path), "rows": len(frame),
            "tables": {str(k): int(v) for k, v in sizes.items()}}


class _Progress:
    """Work done / total across both passes, in pairs (a null-table permutation counts as one
    pair: it costs about as much); the total grows once the refine pass is planned."""

    def __init__(self, progress: Callable[[int, int], None] | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)


def _min_discoveries(screen: Any, sp: Any) -> int | None:
    """Pairs of the largest family that must be discovered together (1: single pairs can)."""
    if screen.fdr is None or sp.n_permutations == 0:
        return None
    m = sp.max_family
    scale = float(np.sum(1.0 / np.arange(1, m + 1))) if screen.fdr_method == "by" else 1.0
    return max(1, math.ceil(m * scale / (screen.fdr * (sp.n_permutations + 1)) - 1e-12))


def _resume(store: ResultStore, batches: Sequence[Any], what: str,
            log: Callable[[str], None] | None) -> tuple[dict[str, str], set[str], list[Any]]:
    """(planned key -> id, committed keys, batches still to run) of one pass."""
    planned = {b.key: b.batch_id for b in batches}
    done = store.done_batches(planned)
    if done and log is not None:
        log(f"resuming: {len(done)} of {len(planned)} {what} batches already committed")
    return planned, done, [b for b in batches if b.key not in done]


def _significance(rows: pd.DataFrame, null: pd.DataFrame | None, screen: Any) -> pd.DataFrame:
    """Screen rows with screen_estimate, p_value, q_value and significant."""
    from distmi.reduce.screen_table import add_significance, screen_pvalues, statistic_columns

    comps = screen.components
    rows = rows.copy()
    rows["screen_estimate"] = rows[statistic_columns(comps)[0]]
    if null is None:
        return add_significance(rows, np.full(len(rows), np.nan), None, screen.fdr_method,
                                screen.fdr_scope)
    return add_significance(rows, screen_pvalues(rows, null, comps), screen.fdr,
                            screen.fdr_method, screen.fdr_scope)


def run_two_stage(spec: JobSpec, ds: Any, plan: Plan, store: ResultStore, executor: Executor,
                  task: TaskConfig, *, overwrite: bool,
                  progress: Callable[[int, int], None] | None,
                  log: Callable[[str], None] | None) -> StagesOutcome:
    """Screen every pair, refine the selected ones (see module docstring)."""
    import pandas as pd

    from distmi.reduce.screen_table import merge_stages, select_for_refine

    screen = spec.screen.request()
    sp = plan_screen(plan, screen, ds)
    task = dataclasses.replace(task, screen=screen)
    min_disc = _min_discoveries(screen, sp)
    if min_disc is not None and min_disc > 1 and log is not None:
        log(f"screen: with {sp.n_permutations} permutations the smallest p-value is "
            f"1/{sp.n_permutations + 1}, so a family of {sp.max_family} pairs needs at least "
            f"{min_disc} discoveries together at fdr={screen.fdr}; use n_permutations: auto "
            "to find single pairs")
    # screen pass: null tables and screen statistics
    planned, done, todo = _resume(store, sp.batches, "screen-pass", log)
    n_perms = sum(b.stop - b.start for b in sp.null_batches)
    tick = _Progress(progress, plan.n_pairs + n_perms)
    tick(sum(b.n_pairs for b in sp.screen_batches if b.key in done)
         + sum(b.stop - b.start for b in sp.null_batches if b.key in done))
    t0 = time.perf_counter()
    n_run = execute_batches(executor, todo, task, store, tick)
    screen_s = time.perf_counter() - t0
    null = store.read_parts([b.key for b in sp.null_batches]) if sp.null_batches else None
    rows = _significance(sort_table(store.read_parts([b.key for b in sp.screen_batches])), null,
                         screen)
    keep = select_for_refine(rows, screen.fdr if null is not None else None, screen.max_refine,
                             screen.max_refine_per_family, screen.fdr_scope)
    # refine pass: the job's estimator on the selected pairs, in its own store
    refine_batches = plan_refine(spec.plan_request(), rows[keep], ds)
    rstore = ResultStore(store.location / REFINE, store.spec_hash, dataset_hash=store.dataset_hash)
    rstore.begin({"stage": "refine"}, overwrite=overwrite)
    planned2, done2, todo2 = _resume(rstore, refine_batches, "refine", log)
    tick.total += sum(b.n_pairs for b in refine_batches)
    tick(sum(b.n_pairs for b in refine_batches if b.key in done2))
    t1 = time.perf_counter()
    n_run2 = execute_batches(executor, todo2, task, rstore, tick)
    refine_s = time.perf_counter() - t1
    keys2 = sorted(planned2)
    table = merge_stages(rows, rstore.read_parts(keys2) if keys2 else None, screen.method,
                         screen.components)
    if null is None:
        null = pd.DataFrame(columns=["null_key", "permutation"])
    ok = rows["status"] == "ok"
    provenance = {
        "screen": {
            **dataclasses.asdict(screen),
            "components": list(screen.components),
            "n_permutations_used": sp.n_permutations,
            "null_tables": _write_null_tables(store.location / NULL_TABLES, null),
            "families": len(sp.families),
            "largest_family": sp.max_family,
            "min_discoveries_per_family": min_disc,
            "pairs_screened": len(rows),
            "pairs_tested": int(ok.sum()),
            "pairs_significant": int(rows["significant"].sum()),
            "pairs_refined": int(sum(b.n_pairs for b in refine_batches)),
            "refine_parts": [{"path": f"{REFINE}/parts/{k}.parquet",
                              "sha256": _sha256(rstore.parts / f"{k}.parquet")} for k in keys2],
            "timings": {"screen_pass_s": round(screen_s, 4), "refine_pass_s": round(refine_s, 4),
                        "refine_batches_run": n_run2, "refine_batches_resumed": len(done2),
                        "cpu_s": {
                            "null_tables": _cpu(store, [b.key for b in sp.null_batches]),
                            "screen": _cpu(store, [b.key for b in sp.screen_batches]),
                            "refine": _cpu(rstore, keys2)}},
        },
    }
    return StagesOutcome(table, sorted(planned), len(planned) + len(planned2), n_run + n_run2,
                         len(done) + len(done2), provenance)
