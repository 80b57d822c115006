"""Link estimation on the engine: the activations go to the store, the links run as jobs.

A NIF run writes the node activations (and the class indicators as categorical targets) to an
activation dataset and runs up to three ordinary engine jobs on it, all with the registry
method ``"nif-link"`` (:mod:`distmi.analyses.nif.linkmethod`):

==============  =================  ========================================================
job             pairs              what
==============  =================  ========================================================
``links``       ``adjacent-layers``  every (unit of layer k, unit of layer k+1): input ->
                                   hidden ... (-> logits)
``classes``     ``unit-target``    input features and the last hidden layer vs each class
                                   indicator 1[y = c] (the raw feature MI of the comparison,
                                   and the last links of the graph)
``redundancy``  ``unit-unit``      every unordered unit pair of each source layer (eq. 2),
                                   skipped when beta = 0
==============  =================  ========================================================

The same code runs every batch in this process (``executor="local"``) or on Ray actors
(``executor="ray"``), so both give the same numbers; a stopped run started again with the
same ``output`` resumes from the committed batches. The data's sha256 is part of every job's
identity, so results of other data are never reused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distmi.analyses.nif import linkmethod
from distmi.analyses.nif.graph import CLASSES, FlowGraph
from distmi.core.errors import SpecError
from distmi.core.seeds import derive_seed

DATASET = "activations"
JOBS = ("links", "classes", "redundancy")
STATE = "nif-run.json"


@dataclass(frozen=True)
class EngineSettings:
    """How the link jobs run (never changes the numbers).

    Attributes:
        executor: ``"local"`` (this process), ``"ray"`` (embedded Ray, or ``address``), or an
            executor object with ``run``/``close`` (see :mod:`distmi.engine.executors`).
        workers: Ray actors.
        address: Ray address to attach to (``"auto"``, ``"ray://HEAD:10001"``).
        batch_size: pairs per work unit.
        threads: torch threads per worker.
        retries: re-runs of a failed batch.
    """

    executor: Any = "local"
    workers: int = 2
    address: str | None = None
    batch_size: int = 256
    threads: int = 1
    retries: int = 2


@dataclass
class LinkEstimates:
    """Everything the link jobs produced, keyed in graph order.

    Attributes:
        links: one row per link: src_layer, src_unit, dst_layer, dst_unit, mi, std, ci_low,
            ci_high, status (``ok``/``constant``), rank_mi and the base estimator's scalar
            diagnostics (``stop_reason``, ``diverged`` for neural bounds).
        link_reps: (n_links, B) half-sample replicates of ``mi``.
        pairs: within-layer pairs: layer, unit_i < unit_j, mi, status (empty when beta = 0).
        pair_reps: (n_pairs, B).
        raw: input feature vs class indicator rows (feature, class, mi, std, ci_low, ci_high,
            rank_mi, status), with ``raw_reps``.
        info: dataset path and hash, batches run/resumed per job, timings.
    """

    links: pd.DataFrame
    link_reps: np.ndarray
    pairs: pd.DataFrame
    pair_reps: np.ndarray
    raw: pd.DataFrame
    raw_reps: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def data_fingerprint(acts: dict[str, np.ndarray], labels: np.ndarray | None) -> str:
    """sha256 over layer names, shapes and bytes (float32) and the labels."""
    h = hashlib.sha256()
    for name, a in acts.items():
        arr = np.ascontiguousarray(a, dtype=np.float32)
        h.update(f"{name}:{arr.shape}".encode())
        h.update(arr.tobytes())
    if labels is not None:
        h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def class_target(c: int) -> str:
    return f"class_{c}"


def _write_dataset(root: Path, acts: dict[str, np.ndarray], labels: np.ndarray | None,
                   n_classes: int, fingerprint: str) -> Any:
    from distmi.store import open_dataset, write_dataset

    path = root / DATASET
    model_id = f"nif-{fingerprint[:32]}"
    if (path / "manifest.json").is_file():
        ds = open_dataset(path)
        if ds.model_id == model_id:
            return ds
    targets = {}
    if labels is not None:
        targets = {class_target(c): (labels == c).astype(np.int64) for c in range(n_classes)
                   if 0 < int((labels == c).sum()) < len(labels)}
    kinds = dict.fromkeys(targets, "categorical")
    return write_dataset(path, {k: np.asarray(v, np.float32) for k, v in acts.items()},
                         targets or None, kinds or None, model_id=model_id, overwrite=True)


def _job(name: str, root: Path, ds_path: Path, pairs: str, layers: list[str],
         targets: list[str], params: dict, n_bootstrap: int, seed: int,
         engine: EngineSettings) -> Any:
    from distmi.jobs.spec import parse_spec

    executor = engine.executor if isinstance(engine.executor, str) else "local"
    return parse_spec({
        "name": f"nif-{name}",
        "dataset": {"path": str(ds_path)},
        "layers": layers,
        "targets": targets,
        "pairs": pairs,
        "estimator": {"method": linkmethod.METHOD_NAME, "params": params},
        "n_bootstrap": n_bootstrap,
        "null_permutations": 0,
        "seed": seed,
        "output": str(root / name),
        "scaling": {"executor": executor, "workers": engine.workers,
                    "threads_per_worker": engine.threads, "batch_size": engine.batch_size,
                    "address": engine.address},
        "retries": engine.retries,
    }, f"(NIF {name} job)")


def _check_state(root: Path, fingerprint: str, settings: dict, overwrite: bool) -> None:
    state = root / STATE
    doc = {"data_sha256": fingerprint, "settings": settings}
    if state.is_file() and not overwrite:
        old = json.loads(state.read_text())
        if old != doc:
            raise SpecError(
                f"{root} holds a NIF run of other data or settings (data sha256 "
                f"{str(old.get('data_sha256'))[:12]}..., this run {fingerprint[:12]}...); choose "
                "another output folder or pass overwrite=True (--overwrite) to replace it."
            )
    if overwrite:
        for name in JOBS:
            job_dir = root / name
            if job_dir.is_dir():
                from distmi.reduce.commit import ResultStore

                ResultStore(job_dir, "").clear()
    root.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(doc, indent=2, sort_keys=True))


def _parse(table: pd.DataFrame, n_bootstrap: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of an engine table with replicates (P, B) and rank statistics unpacked."""
    diags = [json.loads(d) if isinstance(d, str) and d else {} for d in table["diagnostics"]]
    reps = np.zeros((len(table), n_bootstrap))
    rank = np.zeros(len(table))
    extra: dict[str, list[Any]] = {"stop_reason": [], "diverged": []}
    for i, d in enumerate(diags):
        if "replicates" in d:
            reps[i] = json.loads(d["replicates"])
        rank[i] = d.get("rank_mi", 0.0)
        extra["stop_reason"].append(d.get("stop_reason", ""))
        extra["diverged"].append(bool(d.get("diverged", False)))
    out = table[["layer", "unit", "target", "target_unit", "estimate", "std", "ci_low",
                 "ci_high", "status"]].copy()
    out["rank_mi"] = rank
    for k, v in extra.items():
        out[k] = v
    return out.reset_index(drop=True), reps


def run_link_jobs(
    root: str | Path,
    acts: dict[str, np.ndarray],
    labels: np.ndarray | None,
    graph: FlowGraph,
    *,
    base: str,
    base_params: dict[str, Any],
    n_bootstrap: int,
    seed: int,
    redundancy: bool,
    engine: EngineSettings,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> LinkEstimates:
    """Write the dataset, run the link jobs and return their tables (see module docstring)."""
    from distmi.engine.executors import make_executor
    from distmi.jobs.runner import run_job

    root = Path(root)
    linkmethod.ensure_registered()
    fingerprint = data_fingerprint(acts, labels)
    n_classes = graph.layers[-1].n_units
    settings = {"base": base, "base_params": base_params, "n_bootstrap": n_bootstrap,
                "seed": seed, "redundancy": redundancy}
    _check_state(root, fingerprint, json.loads(json.dumps(settings, default=str)), overwrite)
    ds = _write_dataset(root, acts, labels, n_classes, fingerprint)
    params = {"base": base, "base_params": base_params,
              "replicate_seed": derive_seed(seed, "nif", "replicates"),
              "tie_seed": derive_seed(seed, "nif", "rank-ties"), "data_sha256": fingerprint}
    names = list(acts)  # input, hidden..., (logits)
    targets = [t for t in ds.target_kinds]
    sources = [layer.name for layer in graph.layers if layer.kind in ("input", "hidden")]
    last_hidden = graph.hidden[-1].name if graph.hidden else None
    jobs = {"links": _job("links", root, ds.path, "adjacent-layers", names, [],
                          {**params, "rank_test": True}, n_bootstrap, seed, engine)}
    class_layers = ["input"] + ([last_hidden] if graph.outputs == CLASSES and last_hidden else [])
    if targets:
        jobs["classes"] = _job("classes", root, ds.path, "unit-target", class_layers, targets,
                               {**params, "rank_test": True}, n_bootstrap, seed, engine)
    red_layers = [s for s in sources if acts[s].shape[1] >= 2]
    if redundancy and red_layers:
        jobs["redundancy"] = _job("redundancy", root, ds.path, "unit-unit", red_layers, [],
                                  {**params, "rank_test": False}, n_bootstrap, seed, engine)
    own = isinstance(engine.executor, str)
    scaling = next(iter(jobs.values())).scaling
    executor = (make_executor(scaling.executor_settings(engine.retries), engine.address)
                if own else engine.executor)
    tables, info = {}, {"dataset": str(ds.path), "data_sha256": fingerprint, "jobs": {}}
    try:
        for name, spec in jobs.items():
            result = run_job(spec, executor=executor, log=log)
            tables[name] = result.table
            info["jobs"][name] = {"pairs": len(result.table),
                                  "batches_run": result.batches_run,
                                  "batches_resumed": result.batches_resumed,
                                  "wall_s": result.manifest.get("provenance", result.manifest)
                                  .get("timings", {}).get("wall_s")}
    finally:
        if own:
            executor.close()
    info["executor"] = getattr(executor, "name", type(executor).__name__)
    return _assemble(tables, graph, n_bootstrap, info)


def _assemble(tables: dict[str, pd.DataFrame], graph: FlowGraph, n_bootstrap: int,
              info: dict[str, Any]) -> LinkEstimates:
    """Engine tables -> LinkEstimates in graph order (sources, then destinations, by unit)."""
    order = {name: k for k, name in enumerate(graph.names)}
    links, link_reps = _parse(tables["links"], n_bootstrap)
    links = links.rename(columns={"layer": "src_layer", "unit": "src_unit",
                                  "target": "dst_layer", "target_unit": "dst_unit",
                                  "estimate": "mi"})
    frames, reps = [links], [link_reps]
    raw = pd.DataFrame(columns=["feature", "class", "mi", "std", "ci_low", "ci_high",
                                "rank_mi", "status"])
    raw_reps = np.zeros((0, n_bootstrap))
    if "classes" in tables:
        cls, cls_reps = _parse(tables["classes"], n_bootstrap)
        cls = cls.rename(columns={"layer": "src_layer", "unit": "src_unit", "estimate": "mi"})
        cls["dst_layer"] = CLASSES
        cls["dst_unit"] = [int(t.split("_")[-1]) for t in cls["target"]]
        cls = cls.drop(columns=["target", "target_unit"])
        is_raw = (cls["src_layer"] == "input").to_numpy()
        raw = cls[is_raw].rename(columns={"src_unit": "feature", "dst_unit": "class"})
        raw = raw.drop(columns=["src_layer", "dst_layer"]).reset_index(drop=True)
        raw_reps = cls_reps[is_raw]
        if graph.outputs == CLASSES:
            keep = ~is_raw if len(graph.hidden) else is_raw
            frames.append(cls[keep])
            reps.append(cls_reps[keep])
    all_links = pd.concat(frames, ignore_index=True)
    all_reps = np.concatenate(reps)
    key = np.lexsort((all_links["dst_unit"].to_numpy(), all_links["src_unit"].to_numpy(),
                      all_links["dst_layer"].map(order).to_numpy(),
                      all_links["src_layer"].map(order).to_numpy()))
    all_links = all_links.iloc[key].reset_index(drop=True)
    all_reps = all_reps[key]
    cols = ["src_layer", "src_unit", "dst_layer", "dst_unit", "mi", "std", "ci_low", "ci_high",
            "status", "rank_mi", "stop_reason", "diverged"]
    pairs = pd.DataFrame(columns=["layer", "unit_i", "unit_j", "mi", "status"])
    pair_reps = np.zeros((0, n_bootstrap))
    if "redundancy" in tables:
        red, pair_reps = _parse(tables["redundancy"], n_bootstrap)
        pairs = red.rename(columns={"unit": "unit_i", "target_unit": "unit_j",
                                    "estimate": "mi"})[["layer", "unit_i", "unit_j", "mi",
                                                        "status"]]
    return LinkEstimates(all_links[cols], all_reps, pairs, pair_reps, raw, raw_reps, info)
