"""Capture throughput and memory: one process vs Ray actors, and a plain transformers loop.

Suites (each configuration runs in its own child process, so peak memory is measured per run
and every side sees the same machine load):

- ``minilm``: all-MiniLM-L6-v2 (offline) on N generated concept texts (default 20,000), all
  6 layers mean-pooled, batch 64:
    * ``plain``: the loop a user would write with transformers (tokenize a batch, forward with
      ``output_hidden_states``, masked mean per layer, keep the means in memory) -- the
      reference for what the store adds;
    * ``local``: :func:`distmi.engine.capture_run.run_capture` in one process (torch threads =
      the machine's cores), and ``local 1t`` with one thread;
    * ``ray``: the same capture on 2 Ray actors of 1 CPU / 1 thread each.
- ``bert-base``: a BERT-base-sized encoder (12 layers x 768, random weights from a
  ``BertConfig``, no download) on N texts truncated to 32 tokens (default 10,000), all 12
  layers mean-pooled, in one process and on 2 Ray actors.

Ray workers run at the default priority here (``RAY_worker_niceness=0``; Ray's own default is
15, which on a machine shared with other jobs would starve the actors and not the one-process
run). Printed per run: wall seconds, CPU seconds (all processes of the run), inputs/s, inputs per
CPU-second, the split of worker time between the model (forward + pooling + copy) and the store
(conversion, hashing, Parquet), and the peak resident memory of every process (driver and each
actor) against the target (2 GB for MiniLM, 4 GB for BERT-base). Ratios compare the runs of one
suite, measured side by side.

    python benchmarks/bench_capture.py                       # both suites, full size
    python benchmarks/bench_capture.py --suite minilm --n 2000
    python benchmarks/bench_capture.py --suite bert-base --n 10000 --json out.json
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

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = {"minilm": 2048, "bert-base": 4096}


def texts_of_32_tokens(n: int = 10_000, seed: int = 0):
    """N texts of 4 concept sentences each, truncated to 32 tokens by the capture."""
    from distmi.examples.texts import concept_texts
    from distmi.store.capture_inputs import TextInputs

    texts, concepts = concept_texts(4 * n, seed)
    joined = [" ".join(texts[4 * i: 4 * i + 4]) for i in range(n)]
    return TextInputs(joined, {k: v[::4] for k, v in concepts.items()})


def _request(suite: str, n: int, batch: int, threads: int | None):
    from distmi.store.capture_inputs import InputsRef
    from distmi.store.capture_models import resolve_model
    from distmi.store.capture_session import CaptureRequest

    if suite == "minilm":
        return CaptureRequest(resolve_model("minilm"),
                              InputsRef("set", "concept_texts", {"n": n, "seed": 0}),
                              ("encoder.layer.*",), pooling="mean", batch_size=batch,
                              rows_per_part=2048, device="cpu", threads=threads)
    return CaptureRequest(resolve_model("bert-base-random"),
                          InputsRef("factory", texts_of_32_tokens, {"n": n}, max_length=32),
                          ("all",), pooling="mean", batch_size=batch, rows_per_part=1024,
                          device="cpu", threads=threads)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_plain(suite: str, n: int, batch: int) -> dict:
    """The transformers loop a user would write (means kept in memory)."""
    import numpy as np
    import torch

    from distmi.store.capture_inputs import open_inputs
    from distmi.store.capture_models import load_model, load_tokenizer

    req = _request(suite, n, batch, None)
    t_load = time.perf_counter()
    model = load_model(req.model, "cpu")
    inputs = open_inputs(req.inputs, load_tokenizer(req.model.tokenizer))
    t0, c0 = time.perf_counter(), time.process_time()
    n_layers = model.config.num_hidden_layers
    out = [np.empty((n, model.config.hidden_size), np.float32) for _ in range(n_layers)]
    with torch.inference_mode():
        for start in range(0, n, batch):
            b = next(inputs.batches(start, min(start + batch, n), batch))
            hidden = model(**b.inputs, output_hidden_states=True).hidden_states
            m = b.inputs["attention_mask"].to(torch.float32)[:, :, None]
            for k in range(n_layers):
                out[k][start: start + b.n_rows] = ((hidden[k + 1] * m).sum(1) / m.sum(1)).numpy()
    return {"config": "plain", "wall_s": time.perf_counter() - t_load,
            "loop_wall_s": time.perf_counter() - t0, "cpu_s": time.process_time(),
            "loop_cpu_s": time.process_time() - c0,
            "rss_mb": {"driver": _peak_mb()}, "model_s": None, "store_s": None}


def child_capture(suite: str, n: int, batch: int, executor: str, workers: int) -> dict:
    from distmi.engine.capture_run import run_capture
    from distmi.engine.requests import ExecutorSettings

    threads = 1 if executor in ("local1", "ray") else None
    req = _request(suite, n, batch, threads)
    t_ray = 0.0
    if executor == "ray":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        # Ray starts workers with niceness 15; on a machine shared with other jobs that starves
        # the actors against the one-process run, so both run at the default priority here
        os.environ.setdefault("RAY_worker_niceness", "0")
        import ray

        t = time.perf_counter()
        for attempt in range(3):  # a heavily loaded machine can time out Ray's start-up
            try:
                ray.init(address="local", num_cpus=workers, include_dashboard=False,
                         log_to_driver=False)
                break
            except Exception:
                if attempt == 2:
                    raise
                time.sleep(10)
        t_ray = time.perf_counter() - t
    settings = ExecutorSettings(executor="local" if executor == "local1" else executor,
                                workers=workers, cpus_per_worker=1.0)
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        t0 = time.perf_counter()
        out = run_capture(req, Path(tmp) / "ds", settings=settings)
        wall, driver_cpu = time.perf_counter() - t0, time.process_time()
        ds = out.dataset
        size_mb = sum(p.file.size for name in ds.layers for p in ds.layer_info(name).parts) / 1e6
        n_layers, n_units = len(ds.layers), ds.layer_shape(ds.layers[0])[1]
    stats = out.shard_stats
    rss = {"driver": _peak_mb()}
    cpu = driver_cpu
    if executor == "ray":
        by_pid: dict[int, dict] = {}
        for s in stats:
            cur = by_pid.setdefault(s["pid"], {"rss": 0.0, "cpu": 0.0})
            cur["rss"] = max(cur["rss"], s["peak_rss_mb"])
            cur["cpu"] = max(cur["cpu"], s["process_cpu_seconds"])
        for k, (pid, v) in enumerate(sorted(by_pid.items())):
            rss[f"actor{k} (pid {pid})"] = v["rss"]
            cpu += v["cpu"]
        import ray

        ray.shutdown()
    name = {"local": "local", "local1": "local 1t"}.get(executor, f"ray x{workers}")
    return {"config": name, "wall_s": wall,
            "ray_init_s": t_ray, "cpu_s": cpu, "rss_mb": rss,
            "loop_cpu_s": sum(s["cpu_seconds"] for s in stats),
            "loop_wall_s": max(sum(s["seconds"] for s in stats if s["pid"] == p)
                               for p in {s["pid"] for s in stats}),
            "model_s": sum(s["model_s"] for s in stats),
            "store_s": sum(s["store_s"] for s in stats),
            "shard_s": sum(s["seconds"] for s in stats), "dataset_mb": size_mb,
            "layers": n_layers, "units": n_units}


def _run_child(args: argparse.Namespace, suite: str, config: str) -> dict | None:
    cmd = [sys.executable, __file__, "--child", config, "--suite", suite, "--n", str(args.n_for(suite)),
           "--batch-size", str(args.batch_size), "--workers", str(args.workers)]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"  {config}: FAILED (exit {proc.returncode})\n{proc.stderr[-2000:]}")
        return None
    return json.loads(lines[-1])


def _report(suite: str, n: int, runs: list[dict]) -> None:
    print(f"\n{suite}: {n} inputs")
    head = (f"{'run':10s} {'wall s':>8s} {'inputs/s':>9s} {'loop s':>8s} {'loop in/s':>9s} "
            f"{'CPU s':>8s} {'loop in/CPU-s':>13s} {'model s':>8s} {'store s':>8s}  "
            "peak RSS per process (MB)")
    print(head)
    limit = LIMIT_MB[suite]
    for r in runs:
        split = ("" if r["model_s"] is None else
                 f"{r['model_s']:8.1f} {r['store_s']:8.1f}")
        rss = ", ".join(f"{k} {v:.0f}" for k, v in r["rss_mb"].items())
        ok = all(v <= limit for v in r["rss_mb"].values())
        print(f"{r['config']:10s} {r['wall_s']:8.1f} {n / r['wall_s']:9.1f} "
              f"{r['loop_wall_s']:8.1f} {n / r['loop_wall_s']:9.1f} {r['cpu_s']:8.1f} "
              f"{n / r['loop_cpu_s']:13.2f} {split or ' ' * 17:17s}  {rss}  "
              f"[{'<=' if ok else '>'} {limit} MB: {'ok' if ok else 'MISSED'}]")
    print("  wall: end to end, model loading included (Ray start-up not); loop: the capture "
          "itself (per actor, the busiest); CPU: every process of the run")
    by = {r["config"]: r for r in runs}
    base = by.get("local")
    if base is not None:
        for name, r in by.items():
            if name != "local":
                print(f"  {name} / local: {base['wall_s'] / r['wall_s']:.2f}x inputs/s end to "
                      f"end, {base['loop_wall_s'] / r['loop_wall_s']:.2f}x in the loop, "
                      f"{base['loop_cpu_s'] / r['loop_cpu_s']:.2f}x inputs per loop CPU-second")
        if base.get("store_s") is not None:
            share = base["store_s"] / max(base["shard_s"], 1e-9)
            print(f"  local: the store takes {100 * share:.0f}% of the worker's capture time "
                  f"({base['dataset_mb']:.0f} MB written, {base['layers']} layers x "
                  f"{base['units']} units)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=["minilm", "bert-base", "all"], default="all")
    ap.add_argument("--n", type=int, default=None, help="inputs (default 20000 / 10000)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--configs", default="plain,local,local1,ray",
                    help="runs per suite: plain (MiniLM only), local (torch's threads), "
                         "local1 (1 thread), ray")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.n_for = lambda suite: args.n or (20_000 if suite == "minilm" else 10_000)
    if args.child is not None:
        suite, n = args.suite, args.n_for(args.suite)
        if args.child == "plain":
            result = child_plain(suite, n, args.batch_size)
        else:
            result = child_capture(suite, n, args.batch_size, args.child, args.workers)
        print(json.dumps(result))
        return
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"bench_capture: {os.cpu_count()} CPUs, load average {' '.join(load)} at start")
    figures = {}
    for suite in (["minilm", "bert-base"] if args.suite == "all" else [args.suite]):
        runs = []
        for config in args.configs.split(","):
            if config == "plain" and suite != "minilm":
                continue
            r = _run_child(args, suite, config)
            if r is not None:
                runs.append(r)
        if runs:
            _report(suite, args.n_for(suite), runs)
        figures[suite] = runs
    with open("/proc/loadavg") as f:
        print(f"load average at the end: {' '.join(f.read().split()[:3])}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
