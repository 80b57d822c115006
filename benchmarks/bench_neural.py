"""Grouped neural-bound training vs one pair at a time, side by side in one process.

Workload: the size of the neuron-interaction graph of a 4-16-16-3 MLP, ~600 independent
scalar-pair MI estimates. X has 30 columns and Y 20; half of the Y columns depend on an X
column. Both sides use the same bound, critic, batch size and steps, and the same number of
cores (like for like):

* grouped:  ``distmi.pairwise_mi(X, Y, method=...)``, every pair in one grouped network, on
  ``--threads`` torch threads;
* baseline: ``distmi.mutual_information(X[:, i], Y[:, j], method=...)`` for each pair, the
  same code path with a group of one, on ``--baseline-processes`` worker processes (default
  ``--threads``) of ``--baseline-threads`` torch threads each: a single small critic is bound
  by per-operation overhead, so its best use of several cores is several pairs at once. Only
  ``--subset`` pairs are run one at a time; their time is extrapolated to all pairs (printed
  as such) and their results are checked against the grouped ones.

With ``--fixed-steps`` (default) early stopping is off so both sides do exactly
``--steps`` steps per pair; ``--no-fixed-steps`` uses the default early stopping (a pair stops
at the same step grouped or alone, so the work is still the same).

    .venv/bin/python benchmarks/bench_neural.py --method mine --steps 300
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import distmi


def make_data(n: int, p: int, q: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    Y = rng.normal(size=(n, q))
    for j in range(0, min(p, q), 2):  # every other Y column depends on X column j (rho 0.71)
        Y[:, j] = 0.7 * X[:, j] + 0.7 * Y[:, j]
    return X, Y


_WORKER: dict = {}


def _init_worker(X: np.ndarray, Y: np.ndarray, kw: dict, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(X=X, Y=Y, kw=kw)


def _alone(pair: tuple[int, int]) -> tuple[float, int]:
    """One pair trained alone in a worker process: (estimate, steps)."""
    r = distmi.mutual_information(_WORKER["X"][:, pair[0]], _WORKER["Y"][:, pair[1]],
                                  **_WORKER["kw"])
    return r.value, r.diagnostics["steps"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="mine", choices=["mine", "nwj", "infonce", "smile"])
    ap.add_argument("--n", type=int, default=2000, help="samples")
    ap.add_argument("--p", type=int, default=30, help="X columns")
    ap.add_argument("--q", type=int, default=20, help="Y columns (pairs = p * q)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--hidden", default="32,32")
    ap.add_argument("--subset", type=int, default=30, help="pairs run one at a time")
    ap.add_argument("--group-size", type=int, default=None,
                    help="pairs per grouped network (default: distmi's automatic choice)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating timing rounds")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads of the grouped run")
    ap.add_argument("--baseline-threads", type=int, default=1,
                    help="torch threads of the one-at-a-time run (1, its fastest setting here: "
                         "a single small critic is bound by per-operation overhead)")
    ap.add_argument("--baseline-processes", type=int, default=None,
                    help="worker processes of the one-at-a-time run (default: --threads, so "
                         "both sides use the same number of cores: the baseline's best use of "
                         "several cores is several pairs at once)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--fixed-steps", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    procs = args.baseline_processes or args.threads
    X, Y = make_data(args.n, args.p, args.q, seed=0)
    pairs = [(i, j) for i in range(args.p) for j in range(args.q)]
    hidden = tuple(int(h) for h in args.hidden.split(","))
    kw = dict(method=args.method, batch_size=args.batch_size, max_steps=args.steps,
              hidden=hidden, n_bootstrap=100, random_state=0, device=args.device)
    if args.fixed_steps:
        kw["patience"] = args.steps + 1  # never stop early
    group_kw = {} if args.group_size is None else {"group_size": args.group_size}
    print(f"distmi {distmi.__version__}, torch {torch.__version__}, {platform.processor()}, "
          f"cores: grouped {args.threads} torch thread(s), one at a time {procs} process(es) x "
          f"{args.baseline_threads} thread(s)"
          + (" (like for like)" if procs * args.baseline_threads == args.threads else
             " (NOT like for like: the sides use different numbers of cores)")
          + f", device {args.device}")
    print(f"{len(pairs)} scalar pairs, n={args.n}, method={args.method}, "
          f"batch_size={args.batch_size}, hidden={hidden}, max_steps={args.steps}, "
          f"early stopping {'off' if args.fixed_steps else 'on'}")

    distmi.mutual_information(X[:, 0], Y[:, 0], **{**kw, "max_steps": 5})  # warm-up

    # Rounds alternate the two sides so both see the same load on a shared machine.
    rng = np.random.default_rng(1)
    subset = rng.choice(len(pairs), size=min(args.subset, len(pairs)), replace=False)
    t_grouped = t_subset = 0.0
    alone = []
    pool = None
    if procs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(procs, mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker,
                                   initargs=(X, Y, kw, args.baseline_threads))
        list(pool.map(_alone, [pairs[0]] * procs))  # start and warm the workers (not timed)
    for part in np.array_split(subset, args.rounds):
        torch.set_num_threads(args.threads)
        t0 = time.perf_counter()
        grouped = distmi.pairwise_mi(X, Y, pairs=pairs, **kw, **group_kw)
        t_g = time.perf_counter() - t0
        torch.set_num_threads(args.baseline_threads)
        t0 = time.perf_counter()
        if pool is None:
            alone += [(r.value, r.diagnostics["steps"]) for r in (
                distmi.mutual_information(X[:, pairs[k][0]], Y[:, pairs[k][1]], **kw)
                for k in part)]
        else:
            alone += list(pool.map(_alone, [pairs[k] for k in part]))
        t_s = time.perf_counter() - t0
        print(f"round       : grouped {t_g:.1f} s, {len(part)} pairs alone {t_s:.1f} s -> "
              f"ratio {t_s * len(pairs) / len(part) / t_g:.1f}x")
        t_grouped += t_g / args.rounds
        t_subset += t_s
    t_alone = t_subset * len(pairs) / len(subset)

    if pool is not None:
        pool.shutdown()
    diff = max(abs(grouped.estimate.iloc[k] - v) for k, (v, _) in zip(subset, alone,
                                                                       strict=True))
    steps_g = int(grouped.steps.sum())
    dep = grouped[(grouped.x_index == grouped.y_index) & (grouped.y_index % 2 == 0)]
    print(f"grouped     : {t_grouped:8.1f} s for {len(pairs)} pairs (mean of rounds) "
          f"({steps_g} pair-steps, {1e6 * t_grouped / steps_g:.1f} us per pair-step)")
    steps_alone = sum(steps for _, steps in alone)
    print(f"one-at-time : {t_subset:8.1f} s for {len(subset)} pairs -> extrapolated "
          f"{t_alone:.1f} s for {len(pairs)} pairs ({1e3 * t_subset / steps_alone:.2f} ms per "
          f"step)")
    print(f"speed-up    : {t_alone / t_grouped:8.1f}x (grouped on {args.threads} thread(s) vs "
          f"one at a time on {procs} process(es))")
    print(f"check       : max |grouped - alone| over the subset = {diff:.2e} nats (float32)")
    print(f"estimates   : dependent pairs (true 0.3466 nats) mean {dep.estimate.mean():.4f}, "
          f"independent pairs mean {grouped.estimate.drop(dep.index).mean():+.4f}")


if __name__ == "__main__":
    main()
