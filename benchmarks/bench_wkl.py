"""WKL accuracy benchmark: bias and spread of WKL against KSG on Gaussian MI with known truth.

Workload of issue 14's target: X, Y in R^d with covariance [[I, rho I], [rho I, I]] (true MI
-d/2 log(1 - rho^2)), n samples, R independent data sets; both estimators run on the very same
data sets in this process (WKL with its defaults, KSG with k = 3 and k = 5; no error bars).
Prints per estimator the mean error (bias) with its standard error, the spread (sd), the RMSE,
the seconds per estimate and the ratio |bias WKL| / |bias KSG| (target <= 0.5).

    .venv/bin/python benchmarks/bench_wkl.py                          # d=5, rho=0.6, n=3000, R=30
    .venv/bin/python benchmarks/bench_wkl.py --d 1 --rho 0.9 --reps 50
    .venv/bin/python benchmarks/bench_wkl.py --wkl-args weights=paper k=20
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
    args = parser.parse_args()

    import distmi

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


if __name__ == "__main__":
    main()
