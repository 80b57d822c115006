"""Statistics of the sweep screen: false discoveries on noise, planted units found.

1. **Noise only** (``--seeds`` datasets, default 20): 2000 units x 4 targets (a Gaussian and a
   Student-t(2) continuous target, a balanced 3-class and an imbalanced 5-class label), n=2000,
   every unit independent of every target. ``distmi.screen_pairs`` with its defaults
   (ksg+gaussian, ``n_permutations="auto"``, BH at fdr=0.05 within each target: one family of
   2000 tests per target, as a job's ``layer-target`` families). The false discovery proportion
   of a family is V / max(R, 1) (= 1 if it makes any discovery, all being false); BH keeps its
   mean <= 0.05. Printed: mean FDP over the seeds x 4 families with its binomial standard
   error, and the rejection rate at p <= 0.05 (should be ~0.05: the p-values are uniform).
2. **Planted** (one dataset, n=2000): 2000 units of which 20 linear (rho = 0.2, MI 0.020
   nats), 20 x = y^2 + 2 e (non-monotone), 20 shifted by 0.35 sd in one class of a 3-class
   label; the rest noise. Printed: units found per kind (recall) and the FDP.

    .venv/bin/python benchmarks/bench_sweep_stats.py              # ~10-20 min on 2 cores
    .venv/bin/python benchmarks/bench_sweep_stats.py --seeds 5    # quick look
    .venv/bin/python benchmarks/bench_sweep_stats.py --skip-planted --first-seed 9 --seeds 11
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np


def noise_only(seeds: int, n: int, units: int, threads: int, first: int = 0) -> None:
    import distmi

    fdp, rejections, tested = [], 0, 0
    t0, c0 = time.perf_counter(), time.process_time()
    for seed in range(first, first + seeds):
        rng = np.random.default_rng(1000 + seed)
        X = rng.normal(size=(n, units))
        Y = np.column_stack([rng.normal(size=n), rng.standard_t(2, size=n)])
        labels = [rng.integers(0, 3, size=n),
                  rng.choice(5, size=n, p=[0.5, 0.2, 0.15, 0.1, 0.05])]
        tables = [distmi.screen_pairs(X, Y, random_state=seed, threads=threads)]
        tables += [distmi.screen_pairs(X, lab, discrete_y=True, random_state=seed,
                                       threads=threads) for lab in labels]
        for t in tables:
            for _, fam in t.groupby("y_index"):
                r = int(fam.significant.sum())
                fdp.append(1.0 if r else 0.0)
                rejections += int((fam.p_value <= 0.05).sum())
                tested += len(fam)
        print(f"  seed {seed}: discoveries per family "
              f"{[int(f.significant.sum()) for t in tables for _, f in t.groupby('y_index')]}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    fdp = np.array(fdp)
    se = np.sqrt(0.05 * 0.95 / fdp.size)
    print(f"noise only: {seeds} seeds x 4 targets x {units} units, n={n}: mean FDP "
          f"{fdp.mean():.4f} over {fdp.size} families (target <= 0.05, binomial SE {se:.4f}: "
          f"{'PASS' if fdp.mean() <= 0.05 + 2 * se else 'FAIL'}); P(p <= 0.05) = "
          f"{rejections / tested:.4f} over {tested} null pairs; "
          f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU")


def planted(n: int, units: int, threads: int) -> None:
    import distmi

    rng = np.random.default_rng(7)
    y = rng.normal(size=n)
    label = rng.integers(0, 3, size=n)
    X = rng.normal(size=(n, units))
    X[:, :20] = 0.2 * y[:, None] + np.sqrt(1 - 0.04) * X[:, :20]
    X[:, 20:40] = y[:, None] ** 2 + 2.0 * X[:, 20:40]
    X[:, 40:60] += 0.35 * (label == 1)[:, None]
    kind = np.array(["linear"] * 20 + ["square"] * 20 + ["shift"] * 20 + ["noise"] * (units - 60))
    t0 = time.perf_counter()
    cont = distmi.screen_pairs(X, y[:, None], threads=threads)
    cat = distmi.screen_pairs(X, label, discrete_y=True, threads=threads)
    sig_c, sig_l = cont.significant.to_numpy(), cat.significant.to_numpy()
    found = {"linear": sig_c[kind == "linear"].sum(), "square": sig_c[kind == "square"].sum(),
             "shift": sig_l[kind == "shift"].sum()}
    false = sig_c[(kind == "noise") | (kind == "shift")].sum() + sig_l[kind != "shift"].sum()
    total = sig_c.sum() + sig_l.sum()
    print(f"planted, n={n}, {units} units: found linear {found['linear']}/20, y^2 "
          f"{found['square']}/20, categorical shift {found['shift']}/20; {false} false of {total} "
          f"discoveries (FDP {false / max(total, 1):.3f}); {time.perf_counter() - t0:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0, help="resume a split run")
    parser.add_argument("--skip-noise", action="store_true")
    parser.add_argument("--skip-planted", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.skip_planted:
        planted(args.n, args.units, args.threads)
    if not args.skip_noise:
        noise_only(args.seeds, args.n, args.units, args.threads, args.first_seed)


if __name__ == "__main__":
    main()
