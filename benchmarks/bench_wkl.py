"""WKL accuracy benchmark: bias and spread of WKL against KSG on Gaussian MI with known truth.

Workload of issue 14's target: X, Y in R^d with covariance [[I, rho I], [rho I, I]] (true MI
-d/2 log(1 - rho^2)), n samples, R independent data sets; both estimators run on the very same
data sets in this process (WKL with its defaults, KSG with k = 3 and k = 5; no error bars).
Prints per estimator the mean error (bias) with its standard error, the spread (sd), the RMSE,
the seconds per estimate and the ratio |bias WKL| / |bias KSG| (target <= 0.5).

    .venv/bin/python benchmarks/bench_wkl.py                          # d=5, rho=0.6, n=3000, R=30
    .venv/bin/python benchmarks/bench_wkl.py --d 1 --rho 0.9 --reps 50
    .venv/bin/python benchmarks/bench_wkl.py --wkl-args weights=paper k=20
    .venv/bin/python benchmarks/bench_wkl.py --entropy                # entropy bias, d = 1..10

``--entropy`` measures the default WKL entropy instead: mean error and its standard error over
``--reps`` Gaussian data sets (one batched call per d) at n samples, for N(0, I_d) and for
N(0, A A^T) with A = I + 0.3 G / sqrt(d) (G standard normal): the bias bounds of the tests.
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np


def _parse_kv(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = int(value)
        except ValueError:
            out[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--d", type=int, default=5)
    parser.add_argument("--rho", type=float, default=0.6)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wkl-args", nargs="*", default=[], help="extra WKL settings key=value")
    parser.add_argument("--entropy", action="store_true", help="entropy bias table, d = 1..10")
    args = parser.parse_args()

    import distmi

    if args.entropy:
        entropy_table(args.n, args.reps, args.seed)
        return

    d, rho, n = args.d, args.rho, args.n
    truth = -0.5 * d * math.log(1 - rho * rho)
    print(f"workload: Gaussian X, Y in R^{d}, rho={rho}, n={n}, {args.reps} data sets; "
          f"true MI {truth:.4f} nats")
    wkl_kw = _parse_kv(args.wkl_args)
    estimators = {
        "wkl" + (f" {wkl_kw}" if wkl_kw else ""): dict(method="wkl", **wkl_kw),
        "ksg k=3": dict(method="ksg", k=3),
        "ksg k=5": dict(method="ksg", k=5),
    }
    values = {name: [] for name in estimators}
    seconds = dict.fromkeys(estimators, 0.0)
    for r in range(args.reps):
        rng = np.random.default_rng([args.seed, r])
        x = rng.normal(size=(n, d))
        y = rho * x + math.sqrt(1 - rho * rho) * rng.normal(size=(n, d))
        for name, kw in estimators.items():
            start = time.perf_counter()
            res = distmi.mutual_information(x, y, n_bootstrap=0, random_state=r, **kw)
            seconds[name] += time.perf_counter() - start
            values[name].append(res.value)
    bias = {}
    print(f"{'estimator':28s} {'bias':>9s} {'(se)':>8s} {'sd':>8s} {'rmse':>8s} {'s/estimate':>10s}")
    for name, vals in values.items():
        v = np.array(vals)
        bias[name] = v.mean() - truth
        se = v.std(ddof=1) / math.sqrt(len(v))
        rmse = math.sqrt(np.mean((v - truth) ** 2))
        print(f"{name:28s} {bias[name]:+9.4f} {se:8.4f} {v.std(ddof=1):8.4f} {rmse:8.4f} "
              f"{seconds[name] / len(v):10.3f}")
    wkl_name = next(iter(estimators))
    for ksg in ("ksg k=3", "ksg k=5"):
        print(f"|bias wkl| / |bias {ksg}| = {abs(bias[wkl_name]) / abs(bias[ksg]):.3f} "
              "(target <= 0.5)")


def entropy_table(n: int, reps: int, seed: int) -> None:
    from distmi.estimators.wkl import wkl_entropy_batch
    from distmi.kernels.wkl import gaussian_entropy

    print(f"WKL entropy, defaults, n={n}, {reps} data sets per d: mean error (standard error)")
    print(f"{'d':>3s} {'N(0, I)':>18s} {'N(0, A A^T)':>18s} {'s per set':>10s}")
    for d in range(1, 11):
        rng = np.random.default_rng([seed, d])
        a = np.eye(d) + 0.3 * rng.normal(size=(d, d)) / math.sqrt(d)
        cells = []
        start = time.perf_counter()
        for cov_root in (np.eye(d), a):
            z = rng.normal(size=(reps, n, d)) @ cov_root.T
            h = wkl_entropy_batch(z)
            err = h - gaussian_entropy(cov_root @ cov_root.T)
            cells.append(f"{err.mean():+.4f} ({err.std(ddof=1) / math.sqrt(reps):.4f})")
        per = (time.perf_counter() - start) / (2 * reps)
        print(f"{d:3d} {cells[0]:>18s} {cells[1]:>18s} {per:10.3f}")


if __name__ == "__main__":
    main()
