"""GMM-MI benchmark: distmi vs the reference ``gmm-mi`` 0.8.2, side by side in one run.

The reference runs in its own virtual environment (it needs scikit-learn < 1.6) through
``benchmarks/reference/gmm_mi_runner.py`` on the very same data, one CPU thread per process;
both timings cover estimation only (no interpreter start-up). The N=2000 and categorical cases
report the median of ``--repeats`` runs on each side.

    python benchmarks/bench_gmm.py --reference-python refvenv/bin/python [--cases ...]

Cases:

- gauss (rho=0.6, N=2000), gammaexp1 (alpha=1, N=2000), gammaexp01_20k (alpha=0.1, N=20000;
  the reference takes ~12 min), categorical (x|y ~ N(2y,1), P(y=1)=0.1, N=5000): one estimate
  each with ``--n-bootstrap`` replicates.
- sweep: 256 pairs at N=5000 with ``--sweep-bootstrap`` (20) replicates per pair, distmi's
  defaults and a tuned setting. The reference is timed on ``--sweep-reference-pairs`` pairs
  drawn at random, one after another on one thread, and its per-pair time extrapolated to 256
  pairs; with ``--threads T`` (distmi on T threads) the reference's time is divided by T, i.e.
  credited with perfect scaling over T independent processes (it has no parallelism of its
  own), so the ratio compares equal thread counts and never favours distmi. Prints EM
  iterations per stage.
- families: distmi's error on every 1-D family of ``distmi.testing.mi_families`` at N=5000
  (``--family-datasets`` datasets each, no bootstrap) and the mean absolute error; with
  ``families_reference`` the reference's error on the same datasets too.
- coverage: coverage of 95% intervals (BCa, basic, percentile) over 300 Gaussian datasets
  (N=1000, rho 0.3/0.6/0.9, 200 replicates), one batched call.
- oneline: ``distmi.mutual_information(x, y)`` with every default, N=5000.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from scipy import integrate, special, stats

HERE = Path(__file__).resolve().parent


def gaussian(rng, n, rho):
    x = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    return x, -0.5 * math.log(1 - rho**2)


def gamma_exp(rng, n, alpha):
    x = rng.gamma(alpha, 1.0, size=n)
    y = rng.exponential(1.0 / x)
    return np.stack([np.log(x), np.log(y)], 1), special.digamma(alpha + 1) - math.log(alpha)


def categorical_truth(p1: float) -> float:
    """I(X;Y) for x|y ~ N(2y, 1), P(y=1) = p1, by numerical integration."""
    prior = np.array([1 - p1, p1])

    def integrand(x, c):
        dens = prior * stats.norm.pdf(x, loc=2 * np.arange(2), scale=1)
        return stats.norm.pdf(x, 2 * c, 1) * (np.log(stats.norm.pdf(x, 2 * c, 1)) - np.log(dens.sum()))

    return float(sum(prior[c] * integrate.quad(integrand, -12, 14, args=(c,))[0] for c in range(2)))


def run_reference(python: str, blocks: list[np.ndarray], n_bootstrap: int, categorical=False):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, **{f"block_{i}": b for i, b in enumerate(blocks)})
        cmd = [python, str(HERE / "reference" / "gmm_mi_runner.py"), str(path), str(n_bootstrap)]
        if categorical:
            cmd.append("categorical")
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def timed(fn, repeats: int = 1):
    """Run ``fn`` ``repeats`` times; return its value and the median wall time."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return value, float(np.median(times))


def timed_cpu(fn):
    """Value, wall seconds and CPU seconds (this process, all threads) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - start, time.process_time() - cpu


def report(name, truth, ours, ours_s, ref, ref_s, note="", failed=None):
    """Print one case; no ratio when the reference failed (a crash is not a speed)."""
    print(f"\n== {name} ==  true MI {truth:.4f}" if truth is not None else f"\n== {name} ==")
    print(f"  distmi : {ours}   {ours_s:8.2f} s")
    print(f"  gmm-mi : {ref}   {ref_s:8.2f} s {note}")
    if failed:
        print(f"  speed-up: none (the reference failed: {failed})")
        return float("nan")
    ratio = ref_s / ours_s if ours_s > 0 else float("nan")
    print(f"  speed-up: {ratio:.1f}x")
    return ratio


def main() -> None:
    import torch

    import distmi

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-python", default=str(Path("refvenv/bin/python")))
    parser.add_argument("--cases", nargs="+",
                        default=["gauss", "gammaexp1", "categorical", "sweep", "families",
                                 "coverage", "oneline", "gammaexp01_20k"])
    parser.add_argument("--n-bootstrap", type=int, default=50)
    parser.add_argument("--sweep-reference-pairs", type=int, default=8)
    parser.add_argument("--sweep-bootstrap", type=int, default=20)
    parser.add_argument("--family-datasets", type=int, default=3)
    parser.add_argument("--select-samples", type=int, default=None,
                        help="families case: choose K on this many rows (default: distmi's)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per side for the N=2000 cases (median reported)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for distmi (the reference always gets one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    nb = args.n_bootstrap
    print(f"distmi {distmi.__version__}, torch threads {torch.get_num_threads()}, "
          f"bootstrap {nb}, python {sys.version.split()[0]}")

    def one(name, data, truth, repeats):
        ours, t_ours = timed(lambda: distmi.mutual_information(
            data[:, 0], data[:, 1], n_bootstrap=nb, random_state=0), repeats)
        refs = run_reference(args.reference_python, [data] * repeats, nb)
        ref = refs[0]
        ref["seconds"] = float(np.median([r["seconds"] for r in refs]))
        fmt = f"{ours.value:.4f} +- {ours.std:.4f} (K={ours.diagnostics['n_components']})"
        rfmt = f"{ref['mi']:.4f} +- {ref['std']:.4f} (K={ref['n_components']})" + (
            f" ERROR {ref['error']}" if ref["error"] else "")
        report(name, truth, fmt, t_ours, rfmt, ref["seconds"],
               failed=next((r["error"] for r in refs if r["error"]), None))

    # warm-up (imports, allocator, first-call dispatch) so timings cover estimation only,
    # like the reference runner's, which times inside an already started interpreter
    warm = np.random.default_rng(1).normal(size=(300, 2))
    distmi.mutual_information(warm[:, 0], warm[:, 1], n_bootstrap=2)
    rng = np.random.default_rng(12345)
    if "gauss" in args.cases:
        data, truth = gaussian(rng, 2000, 0.6)
        one("Gaussian rho=0.6, N=2000", data, truth, args.repeats)
    if "gammaexp1" in args.cases:
        data, truth = gamma_exp(rng, 2000, 1.0)
        one("gamma-exponential alpha=1, N=2000", data, truth, args.repeats)
    if "categorical" in args.cases:
        n, p1 = 5000, 0.1
        y = (rng.random(n) < p1).astype(int)
        x = rng.normal(2.0 * y, 1.0)
        truth = categorical_truth(p1)
        ours, t_ours = timed(lambda: distmi.mutual_information(
            x, y, discrete_y=True, n_bootstrap=nb, random_state=0), args.repeats)
        refs = run_reference(args.reference_python, [np.stack([x, y], 1)] * args.repeats, nb,
                             categorical=True)
        ref = refs[0]
        ref["seconds"] = float(np.median([r["seconds"] for r in refs]))
        report(f"categorical x|y~N(2y,1), P(y=1)={p1}, N={n}", truth,
               f"{ours.value:.4f} +- {ours.std:.4f} (error {ours.value - truth:+.4f})", t_ours,
               f"{ref['mi']:.4f} +- {ref['std']:.4f} (error {ref['mi'] - truth:+.4f})", ref["seconds"],
               failed=next((r["error"] for r in refs if r["error"]), None))
    if "sweep" in args.cases:
        sweep(args, np.random.default_rng(2026))
    if "gammaexp01_20k" in args.cases:
        data, truth = gamma_exp(rng, 20000, 0.1)
        one("gamma-exponential alpha=0.1, N=20000", data, truth, 1)
    if "families" in args.cases or "families_reference" in args.cases:
        families(args, "families_reference" in args.cases)
    if "coverage" in args.cases:
        coverage()
    if "oneline" in args.cases:
        oneline()


def sweep_data(rng, n=5000, p=16):
    """16 x 16 = 256 pairs: Gaussian pairs of varied correlation (16 related, the rest
    independent) and 4 x 16 pairs with a tanh unit."""
    latent = rng.normal(size=(n, p))
    X = latent + 0.3 * rng.normal(size=(n, p))
    rho = np.linspace(-0.9, 0.9, p)
    Y = rho * latent[:, ::-1] + np.sqrt(1 - rho**2) * rng.normal(size=(n, p))
    Y[:, :4] = np.tanh(2 * latent[:, :4]) + 0.3 * rng.normal(size=(n, 4))
    return X, Y


def sweep(args, rng) -> None:
    import torch

    import distmi

    nb = args.sweep_bootstrap
    X, Y = sweep_data(rng)
    runs = [
        ("distmi defaults", dict(n_bootstrap=nb)),
        ("distmi defaults, no bootstrap", dict(n_bootstrap=0)),
        ("distmi tuned (select_samples=2000)", dict(n_bootstrap=nb, select_samples=2000)),
        ("distmi with the jackknife acceleration (10 refits; the former default)",
         dict(n_bootstrap=nb, acceleration="jackknife")),
        ("distmi with fresh k-means++ starts per K (the reference's scheme)",
         dict(n_bootstrap=nb, init="kmeans++")),
    ]
    print(f"\n== 256-pair sweep, N=5000, {nb} bootstrap replicates, distmi on "
          f"{torch.get_num_threads()} thread(s) ==")
    tables = {}
    for label, kw in runs:
        table, wall, cpu = timed_cpu(lambda kw=kw: distmi.pairwise_mi(X, Y, random_state=0, **kw))
        tables[label] = (table, wall, cpu)
        stages = {c[len("em_iter_"):]: int(table[c].sum()) for c in table.columns
                  if c.startswith("em_iter_")}
        per_pair = {k: round(v / len(table), 1) for k, v in stages.items()}
        print(f"  {label}: {wall:.2f} s wall, {cpu:.2f} s CPU, {len(table) / wall:.1f} pairs/s; "
              f"K {np.bincount(table.n_components).tolist()} (count per K)")
        print(f"    EM iterations per stage, total {stages}, per pair {per_pair}")
    table = tables["distmi defaults"][0]
    m = args.sweep_reference_pairs
    pick = np.random.default_rng(0).choice(len(table), size=m, replace=False)
    blocks = [np.stack([X[:, table.x_index[i]], Y[:, table.y_index[i]]], 1) for i in pick]
    ref = run_reference(args.reference_python, blocks, nb)
    if any(r["error"] for r in ref):
        print("  gmm-mi crashed on a reference pair; no ratio:", [r["error"] for r in ref])
        return
    per_pair_ref = float(np.mean([r["seconds"] for r in ref]))
    per_pair_cpu = float(np.mean([r["cpu_seconds"] for r in ref]))
    threads = torch.get_num_threads()
    extrapolated = per_pair_ref * len(table) / threads
    cpu_total = per_pair_cpu * len(table)
    diffs = [abs(table.estimate[i] - r["mi"]) for i, r in zip(pick, ref, strict=True)]
    print(f"  gmm-mi 0.8.2: {m} pairs timed, {per_pair_ref:.2f} s wall ({per_pair_cpu:.2f} s CPU) "
          f"per pair on one thread -> {extrapolated:.0f} s for {len(table)} pairs on {threads} "
          f"thread(s) (extrapolated, perfect scaling credited), {cpu_total:.0f} s CPU; "
          f"|distmi - gmm-mi| on those pairs: max {max(diffs):.4f}, gmm-mi std median "
          f"{np.median([r['std'] for r in ref]):.4f}")
    for label, (_, wall, cpu) in tables.items():
        print(f"  speed-up, {label}: {extrapolated / wall:.1f}x wall, {cpu_total / cpu:.1f}x CPU time")


def families(args, with_reference: bool) -> None:
    import distmi
    from distmi.testing.mi_families import FAMILIES, batch

    nd = args.family_datasets
    select = {} if args.select_samples is None else {"select_samples": args.select_samples}
    print(f"\n== 1-D families, N=5000, {nd} datasets each, no bootstrap{', ' if select else ''}"
          f"{', '.join(f'{k}={v}' for k, v in select.items())} (error = estimate - truth, mean "
          "over datasets) ==")
    rows = []
    for i, (name, fam) in enumerate(FAMILIES.items()):
        X, Y = batch(name, 5000, nd, seed=300 + i)
        table, wall, _ = timed_cpu(lambda X=X, Y=Y: distmi.pairwise_mi(
            X, Y, pairs=[(j, j) for j in range(nd)], n_bootstrap=0, **select))
        err = table.estimate.to_numpy() - fam.truth()
        line = (f"  {name:16s} true {fam.truth():.4f}  distmi {err.mean():+.4f} "
                f"(sd {err.std():.4f}, K {table.n_components.tolist()}, {wall:.1f} s)")
        ref_err = np.nan
        if with_reference:
            ref = run_reference(args.reference_python, [np.stack([X[:, j], Y[:, j]], 1)
                                                        for j in range(nd)], 0)
            vals = np.array([r["mi"] for r in ref])
            ref_err = float(np.mean(vals - fam.truth())) if np.isfinite(vals).all() else np.nan
            line += f"  gmm-mi {ref_err:+.4f}" if np.isfinite(ref_err) else "  gmm-mi crashed"
        rows.append((err.mean(), ref_err))
        print(line, flush=True)
    errs = np.array(rows)
    print(f"  mean absolute error over {len(rows)} families: distmi {np.mean(np.abs(errs[:, 0])):.4f}"
          + (f", gmm-mi {np.nanmean(np.abs(errs[:, 1])):.4f}" if with_reference else ""))


def coverage() -> None:
    import distmi
    import distmi.estimators.gmm_methods
    from distmi.core.results import percentile_interval
    from distmi.kernels.significance import basic_interval, bca_interval

    n, m, nb = 1000, 300, 200
    rng = np.random.default_rng(42)
    rho = np.array([0.3, 0.6, 0.9])[np.arange(m) % 3]
    X = rng.normal(size=(n, m))
    Y = rho * X + np.sqrt(1 - rho**2) * rng.normal(size=(n, m))
    truth = -0.5 * np.log1p(-(rho**2))
    table, wall, _ = timed_cpu(lambda: distmi.pairwise_mi(
        X, Y, pairs=[(i, i) for i in range(m)], n_bootstrap=nb))
    print(f"\n== coverage of 95% intervals: {m} Gaussian datasets, N={n}, {nb} replicates "
          f"({wall:.1f} s) ==")
    # every interval from the same replicates (the estimator stores them in its diagnostics)
    results = distmi.estimators.gmm_methods.estimate_pairs(
        X, Y, np.array([(i, i) for i in range(m)]), discrete_y=False, n_bootstrap=nb,
        random_state=0)
    est = np.array([r.value for r in results])
    boot = np.array([r.diagnostics["bootstrap"] for r in results])
    accel = np.array([r.diagnostics["acceleration"] for r in results])
    methods = {
        "bca (default)": bca_interval(est, boot, 0.95, accel),
        "basic": basic_interval(est, boot, 0.95),
        "percentile": tuple(np.array([percentile_interval(b) for b in boot]).T),
    }
    for name, (lo, hi) in methods.items():
        cov = (lo <= truth) & (truth <= hi)
        per = ", ".join(f"rho {r}: {cov[rho == r].mean():.3f}" for r in (0.3, 0.6, 0.9))
        print(f"  {name:14s} coverage {cov.mean():.3f} ({per}); point estimate inside "
              f"{np.mean((lo <= est) & (est <= hi)):.3f}")
    assert np.allclose(methods["bca (default)"][0], table.ci_low)


def oneline() -> None:
    import distmi

    rng = np.random.default_rng(7)
    x = rng.normal(size=5000)
    y = np.sin(2 * x) + 0.5 * rng.normal(size=5000)
    result, wall, cpu = timed_cpu(lambda: distmi.mutual_information(x, y))
    print(f"\n== one-line call distmi.mutual_information(x, y), N=5000, defaults "
          f"(n_bootstrap=100, BCa) ==\n  {result!r}, K={result.diagnostics['n_components']}: "
          f"{wall:.2f} s wall, {cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
