"""Two-stage sweeps through the engine: 1 vs 2 Ray workers, and memory at model scale.

``--mode workers`` (default): one generated dataset (``--layers`` x ``--units`` units, n
samples, 2 continuous + 2 categorical targets, a few planted units), one two-stage job (screen
with p-values and the auto null tables, then GMM-MI refine of at most ``--max-refine`` pairs),
run with the in-process executor and with Ray at 1 and 2 workers (1 CPU each). Prints wall
time, screen-stage and refine-stage pairs/s, the CPU seconds of the work units (null tables,
screen batches, refine batches, summed over the workers), and checks that every table is
identical to the in-process one.

``--mode memory``: a 4096-unit x 20-target sweep (10 continuous, 10 categorical targets) at
n=20,000 with the in-process executor in a child process (the worker and the driver in one
process, so an upper bound of a Ray worker), screen plus a GMM refine of ``--max-refine``
pairs; prints the child's peak resident memory.

    .venv/bin/python benchmarks/bench_sweep_scale.py                        # ~5-10 min
    .venv/bin/python benchmarks/bench_sweep_scale.py --mode memory --permutations 2000 \
        --fdr none --max-refine 32                                          # ~10-20 min
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np


def make_dataset(path: Path, layers: int, units: int, n: int, n_cont: int, n_cat: int,
                 seed: int = 0):
    """Noise units with a few planted ones per layer; float32 on disk (streamed per layer)."""
    from distmi.store import write_dataset

    rng = np.random.default_rng(seed)
    targets, kinds = {}, {}
    for t in range(n_cont):
        targets[f"c{t}"] = rng.normal(size=n)
        kinds[f"c{t}"] = "continuous"
    for t in range(n_cat):
        k = 2 + t % 5
        targets[f"k{t}"] = rng.choice(k, size=n, p=np.arange(1, k + 1) / np.arange(1, k + 1).sum())
        kinds[f"k{t}"] = "categorical"
    sources = {}
    for layer in range(layers):
        npy = path.parent / f"layer{layer}.npy"
        arr = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(n, units))
        for start in range(0, units, 256):
            stop = min(start + 256, units)
            block = rng.normal(size=(n, stop - start)).astype(np.float32)
            if start == 0:
                block[:, 0] += 0.5 * targets["c0"]
                block[:, 1] = targets["c0"] ** 2 + block[:, 1]
                block[:, 2] += 0.5 * (targets["k0"] == 1)
            arr[:, start:stop] = block
        arr.flush()
        del arr
        sources[f"layer{layer}"] = str(npy)
    return write_dataset(path, sources, targets, kinds, model_id="bench-sweep")


def job_doc(ds: Path, out: Path, args, executor: str, workers: int = 1) -> dict:
    targets = [f"c{t}" for t in range(args.n_cont)] + [f"k{t}" for t in range(args.n_cat)]
    return {
        "name": "bench-sweep",
        "dataset": {"path": str(ds)},
        "targets": targets,
        "screen": {"n_permutations": args.permutations, "fdr": args.fdr,
                   "max_refine": args.max_refine},
        "estimator": {"method": "gmm", "params": {"max_components": 4}},
        "n_bootstrap": args.bootstrap,
        "null_permutations": 0,
        "seed": 0,
        "output": str(out),
        "scaling": {"executor": executor, "workers": workers, "cpus_per_worker": 1,
                    "batch_size": args.batch_size, "units_per_shard": 256},
    }


def stage_seconds(out: Path, field: str = "cpu_seconds") -> dict[str, float]:
    """Seconds of the work units (``cpu_seconds`` or wall ``seconds``, summed over workers) by
    kind, from the part files."""
    import pyarrow.parquet as pq

    sums = {"null": 0.0, "screen": 0.0, "refine": 0.0}
    for folder in (out / "parts", out / "refine" / "parts"):
        for f in folder.glob("*.parquet"):
            meta = pq.read_schema(f).metadata
            bid = meta[b"distmi.batch_id"].decode()
            kind = bid.split("|")[0]
            info = json.loads(meta[b"distmi.info"].decode())
            sums[kind if kind in sums else "refine"] += info.get(field, float("nan"))
    return sums


def workers(args) -> None:
    import pandas as pd

    from distmi.engine.ray_executor import RayExecutor, ensure_ray
    from distmi.jobs import run_job
    from distmi.jobs.spec import parse_spec

    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    t0 = time.perf_counter()
    make_dataset(tmp / "data", args.layers, args.units, args.n, args.n_cont, args.n_cat)
    pairs = args.layers * args.units * (args.n_cont + args.n_cat)
    print(f"dataset: {args.layers} layers x {args.units} units, n={args.n}, targets "
          f"{args.n_cont} continuous + {args.n_cat} categorical = {pairs} pairs "
          f"({time.perf_counter() - t0:.0f} s to write); load average {os.getloadavg()[0]:.1f}")
    runs = [("in-process", "local", 1)]
    runs += [(f"Ray, {w} worker(s)", "ray", w) for w in args.workers]
    ref = None
    t_init = None
    for label, executor, w in runs:
        out = tmp / f"out-{executor}-{w}"
        spec = parse_spec(job_doc(tmp / "data", out, args, executor, w))
        ex = None
        if executor == "ray":
            if t_init is None:
                t_init = time.perf_counter()
                ensure_ray(num_cpus=2)
                t_init = time.perf_counter() - t_init
                print(f"ray.init (not counted): {t_init:.1f} s")
            ex = RayExecutor(workers=w, cpus_per_worker=1)
        c0 = time.process_time()
        res = run_job(spec, executor=ex)
        m = res.manifest
        wall = m["timings"]["wall_s"]
        sc = m["screen"]
        screen_s, refine_s = sc["timings"]["screen_pass_s"], sc["timings"]["refine_pass_s"]
        secs = stage_seconds(out)
        n_cpu = secs["null"] + secs["screen"]
        per_core = (f"screen pass {pairs / max(n_cpu, 1e-9):.0f} pairs per CPU-second incl. "
                    f"tables ({pairs / max(secs['screen'], 1e-9):.0f} without)")
        if sc["pairs_refined"]:
            per_core += f", refine {sc['pairs_refined'] / max(secs['refine'], 1e-9):.2f} pairs per CPU-second"
        same = "" if ref is None else (
            ", table identical" if res.table.equals(ref) else ", TABLE DIFFERS")
        if ref is None:
            ref = res.table
            pd.testing.assert_frame_equal(res.table, ref)
        print(f"| {label} | {wall:.1f} | {screen_s:.1f} ({pairs / screen_s:.0f} pairs/s) | "
              f"{refine_s:.1f} ({sc['pairs_refined'] / max(refine_s, 1e-9):.2f} pairs/s) | "
              f"{secs['null']:.1f} / {secs['screen']:.1f} / {secs['refine']:.1f} | "
              f"B={sc['n_permutations_used']}, {sc['pairs_significant']} significant, "
              f"{sc['pairs_refined']} refined; {per_core}; driver CPU "
              f"{time.process_time() - c0:.1f} s{same} |", flush=True)
    print("columns: run | wall s | screen pass s (pairs/s) | refine pass s (pairs/s) | "
          "work-unit CPU seconds null / screen / refine (summed over workers) | notes")


def memory(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_mem_"))
    t0 = time.perf_counter()
    make_dataset(tmp / "data", 1, 4096, args.n_memory, 10, 10)
    print(f"dataset: 4096 units x 20 targets (10 continuous, 10 categorical), n={args.n_memory}"
          f" ({time.perf_counter() - t0:.0f} s to write); load average {os.getloadavg()[0]:.1f}")
    args.n_cont, args.n_cat = 10, 10
    doc = job_doc(tmp / "data", tmp / "out", args, "local")
    code = (
        "import json, resource, sys, time; from distmi.jobs import run_job; "
        "from distmi.jobs.spec import parse_spec; t = time.perf_counter(); "
        f"r = run_job(parse_spec(json.loads({json.dumps(json.dumps(doc))}))); "
        "m = r.manifest['screen']; "
        "print(json.dumps({'wall_s': time.perf_counter() - t, 'rows': len(r.table), "
        "'B': m['n_permutations_used'], 'refined': m['pairs_refined'], "
        "'significant': m['pairs_significant'], 'timings': m['timings'], "
        "'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ}, check=False)
    if proc.returncode:
        print(proc.stderr[-3000:])
        raise SystemExit(proc.returncode)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"in-process job (driver + worker in one process): {result['rows']} rows, "
          f"B={result['B']}, {result['significant']} significant, {result['refined']} refined "
          f"(GMM, n_bootstrap={args.bootstrap}), {result['wall_s']:.0f} s wall, timings "
          f"{result['timings']}")
    print(f"peak resident memory of the job process: {result['peak_rss_mb']:.0f} MB "
          f"(target: <= 4096 MB per worker); children total "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["workers", "memory"], default="workers")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n-memory", type=int, default=20_000)
    parser.add_argument("--n-cont", type=int, default=2)
    parser.add_argument("--n-cat", type=int, default=2)
    parser.add_argument("--permutations", default="auto")
    parser.add_argument("--max-refine", type=int, default=32)
    parser.add_argument("--fdr", default="0.05", help="'none': refine the --max-refine largest")
    parser.add_argument("--bootstrap", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64, help="refine pairs per work unit")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if args.permutations != "auto":
        args.permutations = int(args.permutations)
    args.fdr = None if args.fdr == "none" else float(args.fdr)
    if args.mode == "workers":
        workers(args)
    else:
        memory(args)


if __name__ == "__main__":
    main()
