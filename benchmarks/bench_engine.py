"""Engine benchmark: a 1000-unit GMM sweep, Ray executor vs the in-process executor.

Runs the same job (units x 1 categorical target, GMM-MI with bootstrap and a permutation null)
with the in-process executor (the baseline) and with the Ray executor at 1 and 2 workers, in one
process, checks that the committed tables are identical, and prints wall times, units per
second and the ratios. Ray start-up (``ray.init``) is timed separately; actor start-up (a
fresh worker process importing torch and distmi) is measured with a one-batch warm-up job of
the same worker count and reported, so the "after start-up" ratio subtracts it.

    .venv/bin/python benchmarks/bench_engine.py                 # 1000 units, ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_engine.py --units 200     # quick look
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np


def make_dataset(path: Path, units: int, samples: int, seed: int = 0):
    """``units`` units, a tenth of them shifted by a 3-class label (the rest noise)."""
    from distmi.store import write_dataset

    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, size=samples)
    x = rng.normal(size=(samples, units))
    x[:, : units // 10] += 0.8 * label[:, None]
    return write_dataset(path, {"layer": x.astype(np.float32)}, {"label": label},
                         {"label": "categorical"}, model_id="bench")


def spec_for(ds_path: Path, out: Path, args, executor: str, workers: int = 1, units=None):
    from distmi.jobs.spec import parse_spec

    return parse_spec({
        "name": "bench-engine",
        "dataset": {"path": str(ds_path)},
        "layers": ["layer"],
        "units": units or "all",
        "targets": ["label"],
        "estimator": {"method": "gmm", "params": {"max_components": args.max_components}},
        "n_bootstrap": args.bootstrap,
        "null_permutations": 1,
        "seed": 0,
        "output": str(out),
        "scaling": {"executor": executor, "workers": workers, "cpus_per_worker": 1,
                    "batch_size": args.batch_size},
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--bootstrap", type=int, default=10)
    parser.add_argument("--max-components", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from distmi.engine.ray_executor import RayExecutor, ensure_ray
    from distmi.jobs import run_job

    tmp = Path(tempfile.mkdtemp(prefix="bench_engine_"))
    ds = make_dataset(tmp / "data", args.units, args.samples)
    print(f"job: {args.units} units x 1 target, n={args.samples}, GMM max_components="
          f"{args.max_components}, n_bootstrap={args.bootstrap}, 1 null permutation, "
          f"batch_size={args.batch_size}; cores: {os.cpu_count()}")

    # warm-up: imports and the first kernel calls are paid once, not by the baseline
    run_job(spec_for(ds.path, tmp / "warm-local", args, "local", units={"range": [0, 1]}))
    t0 = time.perf_counter()
    base = run_job(spec_for(ds.path, tmp / "local", args, "local"))
    t_local = time.perf_counter() - t0
    rate = args.units / t_local
    print(f"in-process executor (baseline): {t_local:8.2f} s  {rate:7.1f} units/s")

    t0 = time.perf_counter()
    ensure_ray(None, num_cpus=os.cpu_count())
    print(f"ray.init (embedded local):      {time.perf_counter() - t0:8.2f} s (not counted below)")
    for w in args.workers:
        t0 = time.perf_counter()
        run_job(spec_for(ds.path, tmp / f"warm{w}", args, "ray", w, units={"range": [0, w]}),
                executor=RayExecutor(workers=w, cpus_per_worker=1, retries=1))
        t_start = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = run_job(spec_for(ds.path, tmp / f"ray{w}", args, "ray", w),
                      executor=RayExecutor(workers=w, cpus_per_worker=1, retries=1))
        t_ray = time.perf_counter() - t0
        pd.testing.assert_frame_equal(res.table, base.table, check_exact=True)
        after = max(t_ray - t_start, 1e-9)
        print(f"ray executor, {w} worker(s):     {t_ray:8.2f} s  {args.units / t_ray:7.1f} units/s"
              f"  ratio vs in-process {t_ray / t_local:5.2f} (after actor start-up ~{t_start:.1f} s:"
              f" {after / t_local:5.2f}, {args.units / after:6.1f} units/s)  table identical")
    # the same baseline again: on shared machines the load drifts, this shows by how much
    t0 = time.perf_counter()
    run_job(spec_for(ds.path, tmp / "local-again", args, "local"))
    t_again = time.perf_counter() - t0
    print(f"in-process executor, again:     {t_again:8.2f} s  {args.units / t_again:7.1f} units/s"
          f"  (first/again = {t_local / t_again:4.2f}: the machine's drift)")


if __name__ == "__main__":
    main()
