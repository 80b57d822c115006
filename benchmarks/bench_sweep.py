"""Sweep screening benchmark: distmi's rank screen against what users pick instead, side by side.

The workload is a sweep of 256 units against one continuous target y (n samples):

- units 0-127: x = rho y + sqrt(1 - rho^2) e, rho from 0.05 to 0.9 (MI = -0.5 log(1 - rho^2));
- units 128-191: x = y^2 + s e, s from 0.5 to 4 (non-monotone; MI by numerical integration);
- units 192-255: independent noise.

Tools, each on the same arrays in this process:

- ``distmi screen``: ``distmi.screen_pairs`` (copula KSG + Gaussian copula, min-P
  permutation p-values, BH q-values); defaults (1 thread, ``n_permutations="auto"``) and tuned
  (2 threads);
- ``sklearn KSG``: ``sklearn.feature_selection.mutual_info_regression`` (k=3), defaults and
  tuned (``n_jobs=2``);
- ``Gaussian copula``: written here (rank -> normal scores -> -0.5 log(1 - rho^2)), vectorised;
- ``distmi KSG``: ``distmi.pairwise_mi(method="ksg", n_bootstrap=0)`` (the estimator).

It prints pairs/s, the error on the units with known MI, and how many non-monotone units each
tool finds: distmi by its own q-values (q <= 0.05); the tools without p-values by an *oracle*
threshold (the 99th percentile of their estimates on the noise units), which favours them.

``--throughput`` measures the screen at model scale instead: U units x (1 continuous + 1
4-class target) at n=10,000 on 2 threads, the statistics and p-values per pair, the null
tables as a fixed cost per shape, and the rate with the tables shared by L layers.

    .venv/bin/python benchmarks/bench_sweep.py                    # n=5000, ~2 min
    .venv/bin/python benchmarks/bench_sweep.py --n 10000
    .venv/bin/python benchmarks/bench_sweep.py --throughput       # n=10000, 2048 units
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from scipy.special import ndtri


def sweep_data(n: int, seed: int = 0):
    """(X (n, 256), y (n, 1), truth (256,), kind (256,)) of the documented workload."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    X = np.empty((n, 256))
    truth = np.zeros(256)
    kind = np.array(["linear"] * 128 + ["square"] * 64 + ["noise"] * 64)
    rho = np.linspace(0.05, 0.9, 128)
    X[:, :128] = rho * y[:, None] + np.sqrt(1 - rho**2) * rng.normal(size=(n, 128))
    truth[:128] = -0.5 * np.log1p(-(rho**2))
    s = np.linspace(0.5, 4.0, 64)
    X[:, 128:192] = y[:, None] ** 2 + s * rng.normal(size=(n, 64))
    truth[128:192] = [square_mi(v) for v in s]
    X[:, 192:] = rng.normal(size=(n, 64))
    return X, y[:, None], truth, kind


def square_mi(s: float) -> float:
    """I(Y^2 + s E; Y) for independent standard normals Y, E: h(X) - h(s E), numerically."""
    ys = np.linspace(-9, 9, 3601)
    wy = np.exp(-0.5 * ys**2) / np.sqrt(2 * np.pi) * (ys[1] - ys[0])
    xs = np.linspace(-8 * s, 81 + 8 * s, 12000)
    dens = np.zeros_like(xs)
    for chunk in np.array_split(np.arange(ys.size), 20):
        z = (xs[:, None] - ys[chunk] ** 2) / s
        dens += (np.exp(-0.5 * z**2) / (np.sqrt(2 * np.pi) * s)) @ wy[chunk]
    dx = xs[1] - xs[0]
    pos = dens > 1e-300
    h_x = -np.sum(dens[pos] * np.log(dens[pos])) * dx
    return float(h_x - 0.5 * np.log(2 * np.pi * np.e * s * s))


def gaussian_copula_mi(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gaussian-copula MI of every column of X with y (Ince et al. 2017), vectorised numpy."""
    n = len(X)

    def scores(a: np.ndarray) -> np.ndarray:
        ranks = np.argsort(np.argsort(a, axis=0), axis=0)
        g = ndtri((ranks + 1.0) / (n + 1.0))
        return (g - g.mean(0)) / g.std(0)

    rho = (scores(X) * scores(y)).mean(0)
    return -0.5 * np.log1p(-np.minimum(rho**2, 1 - 1e-15))


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def summarise(name, est, wall, cpu, truth, kind, found_sq, found_noise, pvalues, note=""):
    lin, sq = kind == "linear", kind == "square"
    mae_lin = np.mean(np.abs(est[lin] - truth[lin]))
    mae_sq = np.mean(np.abs(est[sq] - truth[sq]))
    return (f"| {name} | {wall:.2f} | {cpu:.2f} | {256 / wall:.0f} | {mae_lin:.4f} | "
            f"{np.mean(est[sq]):.3f} (truth {np.mean(truth[sq]):.3f}, MAE {mae_sq:.3f}) | "
            f"{found_sq}/64 | {found_noise}/64 | {pvalues}{note} |")


def oracle_found(est, kind):
    thr = np.quantile(est[kind == "noise"], 0.99)
    return int(np.sum(est[kind == "square"] > thr)), int(np.sum(est[kind == "noise"] > thr))


def compare(args) -> None:
    from sklearn.feature_selection import mutual_info_regression

    import distmi

    X, y, truth, kind = sweep_data(args.n)
    print(f"sweep: 256 units x 1 continuous target, n={args.n}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    distmi.screen_pairs(X[:200, :2], y[:200], n_permutations=0, fdr=None)  # compile once
    rows = []
    header = ("| tool | wall s | CPU s | pairs/s | MAE linear units | y^2 units: mean MI | "
              "y^2 found | noise flagged | p-values |")
    for label, threads, perms in (
            ("distmi screen, defaults (1 thread, auto permutations)", 1, "auto"),
            ("distmi screen, tuned (2 threads, 2000 permutations)", 2, 2000)):
        t, wall, cpu = timed(lambda th=threads, b=perms: distmi.screen_pairs(
            X, y, threads=th, n_permutations=b))
        _, w_stat, c_stat = timed(lambda th=threads: distmi.screen_pairs(
            X, y, n_permutations=0, fdr=None, threads=th))
        sig = t.significant.to_numpy()
        est = t.screen_estimate.to_numpy()
        fdp = sig[kind == "noise"].sum() / max(sig.sum(), 1)
        rows.append(summarise(label, est, wall, cpu, truth, kind,
                              int(sig[kind == "square"].sum()), int(sig[kind == "noise"].sum()),
                              f"yes (q <= 0.05; {sig.sum()} discoveries, FDP {fdp:.3f})",
                              f"; statistics alone {w_stat:.2f} s wall, {c_stat:.2f} s CPU"))
    for label, jobs in (("scikit-learn KSG, defaults", None), ("scikit-learn KSG, n_jobs=2", 2)):
        est, wall, cpu = timed(lambda j=jobs: mutual_info_regression(X, y[:, 0], n_neighbors=3,
                                                                     random_state=0, n_jobs=j))
        fs, fn = oracle_found(est, kind)
        rows.append(summarise(label, est, wall, cpu, truth, kind, fs, fn, "no (oracle threshold)"))
    est, wall, cpu = timed(lambda: gaussian_copula_mi(X, y))
    fs, fn = oracle_found(est, kind)
    rows.append(summarise("Gaussian copula (numpy)", est, wall, cpu, truth, kind, fs, fn,
                          "no (oracle threshold)"))
    t, wall, cpu = timed(lambda: distmi.pairwise_mi(X, y, method="ksg", n_bootstrap=0))
    est = t.estimate.to_numpy()
    fs, fn = oracle_found(est, kind)
    rows.append(summarise("distmi KSG estimator (k=3)", est, wall, cpu, truth, kind, fs, fn,
                          "no (oracle threshold)"))
    print(header)
    print("|" + "---|" * 9)
    for r in rows:
        print(r)
    base = next(r for r in rows if r.startswith("| scikit-learn KSG, defaults"))
    base_wall = float(base.split("|")[2])
    ours = float(rows[0].split("|")[2])
    tuned = float(rows[1].split("|")[2])
    base_cpu = float(base.split("|")[3])
    print(f"ratio, wall: scikit-learn KSG defaults / distmi screen defaults = "
          f"{base_wall / ours:.2f}x; / distmi tuned = {base_wall / tuned:.2f}x (distmi includes "
          f"its p-values and null table); CPU: {base_cpu / float(rows[0].split('|')[3]):.2f}x "
          f"and {base_cpu / float(rows[1].split('|')[3]):.2f}x")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def throughput(args) -> None:
    """Per-pair costs of the screen as a worker pays them, and the rates they give."""
    from distmi.kernels.rank_screen import SCREEN_METHODS, screen_statistics
    from distmi.kernels.significance import min_p_pvalues
    from distmi.reduce.screen_stats import (
        auto_permutations,
        categorical_null_key,
        continuous_null_key,
        null_statistics,
        tie_broken_ranks,
    )

    n, units, threads = args.n_throughput, args.units, args.threads
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, units)).astype(np.float32).astype(np.float64)  # float32 data
    y = rng.normal(size=(n, 1))
    labels = rng.integers(0, 4, size=n)
    comps = SCREEN_METHODS["ksg+gaussian"]
    print(f"throughput: {units} units x (1 continuous + 1 4-class target), n={n}, screen "
          f"ksg+gaussian k=5, {threads} threads; load average {os.getloadavg()[0]:.1f}")
    ids = [("unit", "bench", i) for i in range(units)]
    tie_broken_ranks(X[:200, :2], 0, ids[:2])
    screen_statistics(comps, np.arange(200, dtype=np.int32)[None], np.arange(200)[None],
                      np.zeros((1, 2), np.int64))
    rx, w_rank, c_rank = timed(lambda: tie_broken_ranks(X, 0, ids))
    ry = tie_broken_ranks(y, 0, [("target", "y")])
    pairs = np.stack([np.arange(units), np.zeros(units, np.int64)], axis=1)
    costs = {"rank per unit": c_rank / units}
    print(f"  ranks: {w_rank:.2f} s wall / {c_rank:.2f} s CPU for {units} units "
          f"({c_rank / units * 1e3:.3f} ms CPU per unit, shared by all its targets)")
    for label, partner, discrete, key in (
            ("continuous", ry, False, continuous_null_key(n)),
            ("categorical", labels, True, categorical_null_key(labels))):
        obs, w_stat, c_stat = timed(lambda p=partner, d=discrete: screen_statistics(
            comps, rx, p, pairs, k=5, discrete=d, threads=threads))
        table, w_tab, c_tab = timed(lambda key=key: null_statistics(comps, 5, key, 0, 0, 2000,
                                                                     threads=threads))
        _, _, c_p = timed(lambda o=obs, tb=table: min_p_pvalues(o, tb))
        costs[label] = (c_stat + c_p) / units
        costs[label + " permutation"] = c_tab / 2000
        print(f"  {label}: statistics {w_stat:.2f} s wall / {c_stat:.2f} s CPU = "
              f"{units / w_stat:.0f} pairs/s wall ({units / c_stat:.0f} per CPU-second); "
              f"p-values against a table {c_p * 1e3:.1f} ms CPU for {units} pairs; null table "
              f"{c_tab / 2000 * 1e3:.3f} ms CPU per permutation ({w_tab:.1f} s wall for 2000)")
    print("  pairs/s with p-values on 2 cores (from the CPU costs above, null tables included, "
          "n_permutations auto):")
    for name, layers, per_layer, n_cont, n_cat in (
            ("this sweep: 1 layer", 1, units, 1, 1),
            ("6 layers x 384 units x (1 continuous + 3 categorical)", 6, 384, 1, 3),
            ("32 layers x 4096 units x (10 continuous + 10 categorical)", 32, 4096, 10, 10)):
        b = auto_permutations(per_layer, 0.05, len(comps))
        pairs_total = layers * per_layer * (n_cont + n_cat)
        cpu = (layers * per_layer * (costs["rank per unit"] + n_cont * costs["continuous"]
                                     + n_cat * costs["categorical"])
               + b * (costs["continuous permutation"] * (n_cont > 0)
                      + n_cat * costs["categorical permutation"]))
        print(f"    {name}: {pairs_total} pairs, B={b} -> {pairs_total / cpu * 2:.0f} pairs/s "
              f"({cpu / 2 / 60:.1f} min on 2 cores)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="samples of the comparison sweep")
    parser.add_argument("--throughput", action="store_true", help="model-scale throughput only")
    parser.add_argument("--n-throughput", type=int, default=10_000)
    parser.add_argument("--units", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.throughput:
        throughput(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
