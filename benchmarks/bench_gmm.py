"""GMM-MI benchmark: distmi vs the reference ``gmm-mi`` 0.8.2, side by side in one run.

The reference runs in its own virtual environment (it needs scikit-learn < 1.6) through
``benchmarks/reference/gmm_mi_runner.py`` on the very same data; both sides use one CPU thread
and 50 bootstrap replicates, and both timings cover estimation only (no interpreter start-up).
The N=2000 and categorical cases report the median of ``--repeats`` runs on each side.

    python benchmarks/bench_gmm.py --reference-python refvenv/bin/python [--cases ...]

Cases: gauss (rho=0.6, N=2000), gammaexp1 (alpha=1, N=2000), gammaexp01_20k (alpha=0.1,
N=20000; the reference takes ~12 min), categorical (x|y ~ N(2y,1), P(y=1)=0.1, N=5000), and
sweep (256 pairs at N=5000; the reference is timed on a subset and extrapolated).
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
                        default=["gauss", "gammaexp1", "categorical", "sweep", "gammaexp01_20k"])
    parser.add_argument("--n-bootstrap", type=int, default=50)
    parser.add_argument("--sweep-reference-pairs", type=int, default=8)
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
        n, p = 5000, 16
        # 16 x 16 = 256 pairs: Gaussian pairs of varied correlation and some nonlinear ones
        latent = rng.normal(size=(n, p))
        X = latent + 0.3 * rng.normal(size=(n, p))
        rho = np.linspace(-0.9, 0.9, p)
        Y = rho * latent[:, ::-1] + np.sqrt(1 - rho**2) * rng.normal(size=(n, p))
        Y[:, :4] = np.tanh(2 * latent[:, :4]) + 0.3 * rng.normal(size=(n, 4))
        table, t_ours = timed(lambda: distmi.pairwise_mi(X, Y, n_bootstrap=nb, random_state=0))
        m = args.sweep_reference_pairs
        pick = np.random.default_rng(0).choice(len(table), size=m, replace=False)
        blocks = [np.stack([X[:, table.x_index[i]], Y[:, table.y_index[i]]], 1) for i in pick]
        ref = run_reference(args.reference_python, blocks, nb)
        ref_total = sum(r["seconds"] for r in ref)
        extrapolated = ref_total / m * len(table)
        diffs = [abs(table.estimate[i] - r["mi"]) for i, r in zip(pick, ref, strict=True)]
        stds = [r["std"] for r in ref]
        report("256-pair sweep, N=5000", None,
               f"{len(table)} pairs, K in [{table.n_components.min()}, {table.n_components.max()}]",
               t_ours,
               f"{m} pairs in {ref_total:.1f} s -> {extrapolated:.0f} s for 256 (extrapolated); "
               f"|distmi - gmm-mi| on those pairs: max {max(diffs):.4f}, gmm-mi std median "
               f"{np.median(stds):.4f}", extrapolated,
               failed=next((r["error"] for r in ref if r["error"]), None))
    if "gammaexp01_20k" in args.cases:
        data, truth = gamma_exp(rng, 20000, 0.1)
        one("gamma-exponential alpha=0.1, N=20000", data, truth, 1)


if __name__ == "__main__":
    main()
