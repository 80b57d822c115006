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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

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

    ``on_pairs(n)`` is called after each batch with the number of pairs it held.
    """
    n_run = 0
    for out in executor.run(list(batches), task):
        info = {"seconds": out.seconds, "worker": out.worker, "node_id": out.node_id}
        store.write_part(batch_key(out.batch_id), out.batch_id, out.columns, info)
        n_run += 1
        if on_pairs is not None:
            on_pairs(len(out.columns.get("layer", ())))
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


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_null_tables(path: Path, null: pd.DataFrame) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distmi.core.atomic import atomic_write_bytes

    frame = null.sort_values(["null_key", "permutation"], kind="mergesort").reset_index(drop=True)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    sizes = frame.groupby("null_key").size()
    return {"path": path.name, "sha256": _sha256(path), "rows": len(frame),
            "tables": {str(k): int(v) for k, v in sizes.items()}}


def run_two_stage(spec: JobSpec, ds: Any, plan: Plan, store: ResultStore, executor: Executor,
                  task: TaskConfig, *, overwrite: bool,
                  progress: Callable[[int, int], None] | None,
                  log: Callable[[str], None] | None) -> StagesOutcome:
    """Screen every pair, refine the selected ones (see module docstring)."""
    import pandas as pd

    from distmi.reduce.screen_table import (
        add_significance,
        merge_stages,
        screen_pvalues,
        select_for_refine,
        statistic_columns,
    )

    screen = spec.screen.request()
    sp = plan_screen(plan, screen, ds)
    task = dataclasses.replace(task, screen=screen)
    min_disc = None
    if screen.fdr is not None and sp.n_permutations > 0:
        min_disc = math.ceil(sp.max_family / (screen.fdr * (sp.n_permutations + 1)) - 1e-12)
        if min_disc > 1 and log is not None:
            log(f"screen: with {sp.n_permutations} permutations the smallest p-value is "
                f"1/{sp.n_permutations + 1}, so a family of {sp.max_family} pairs needs at least "
                f"{min_disc} discoveries together at fdr={screen.fdr}; use n_permutations: auto "
                "to find single pairs")
    planned = {b.key: b.batch_id for b in sp.batches}
    done = store.done_batches(planned)
    todo = [b for b in sp.batches if b.key not in done]
    if done and log is not None:
        log(f"resuming: {len(done)} of {len(planned)} screen-pass batches already committed")
    total = [plan.n_pairs]
    count = [sum(b.n_pairs for b in sp.screen_batches if b.key in done)]

    def tick(n: int) -> None:
        count[0] += n
        if progress is not None:
            progress(count[0], total[0])

    tick(0)
    t0 = time.perf_counter()
    n_run = execute_batches(executor, todo, task, store, tick)
    screen_s = time.perf_counter() - t0
    rows = sort_table(store.read_parts([b.key for b in sp.screen_batches]))
    comps = screen.components
    rows["screen_estimate"] = rows[statistic_columns(comps)[0]]
    if sp.null_batches:
        null = store.read_parts([b.key for b in sp.null_batches])
        p_values = screen_pvalues(rows, null, comps)
    else:
        null = pd.DataFrame(columns=["null_key", "permutation"])
        p_values = np.full(len(rows), np.nan)
    rows = add_significance(rows, p_values, screen.fdr if sp.null_batches else None,
                            screen.fdr_method, screen.fdr_scope)
    keep = select_for_refine(rows, screen.fdr if sp.null_batches else None, screen.max_refine,
                             screen.max_refine_per_family, screen.fdr_scope)
    refine_batches = plan_refine(spec.plan_request(), rows[keep], ds)
    rstore = ResultStore(Path(spec.output) / REFINE, store.spec_hash)
    rstore.begin({"stage": "refine"}, overwrite=overwrite)
    planned2 = {b.key: b.batch_id for b in refine_batches}
    done2 = rstore.done_batches(planned2)
    todo2 = [b for b in refine_batches if b.key not in done2]
    total[0] += sum(b.n_pairs for b in refine_batches)
    count[0] += sum(b.n_pairs for b in refine_batches if b.key in done2)
    tick(0)
    t1 = time.perf_counter()
    n_run2 = execute_batches(executor, todo2, task, rstore, tick)
    refine_s = time.perf_counter() - t1
    keys2 = sorted(planned2)
    refined = rstore.read_parts(keys2) if keys2 else None
    table = merge_stages(rows, refined, screen.method, comps)
    null_info = _write_null_tables(Path(spec.output) / NULL_TABLES, null)
    refine_parts = [
        {"path": f"{REFINE}/parts/{k}.parquet", "sha256": _sha256(rstore.parts / f"{k}.parquet")}
        for k in keys2
    ]
    ok = rows["status"] == "ok"
    provenance = {
        "screen": {
            **dataclasses.asdict(screen),
            "components": list(comps),
            "n_permutations_used": sp.n_permutations,
            "null_tables": null_info,
            "families": len(sp.families),
            "largest_family": sp.max_family,
            "min_discoveries_per_family": min_disc,
            "pairs_screened": len(rows),
            "pairs_tested": int(ok.sum()),
            "pairs_significant": int(rows["significant"].sum()),
            "pairs_refined": int(sum(b.n_pairs for b in refine_batches)),
            "refine_parts": refine_parts,
            "timings": {"screen_pass_s": round(screen_s, 4), "refine_pass_s": round(refine_s, 4),
                        "refine_batches_run": n_run2,
                        "refine_batches_resumed": len(done2)},
        },
    }
    return StagesOutcome(table, sorted(planned), len(planned) + len(planned2), n_run + n_run2,
                         len(done) + len(done2), provenance)
