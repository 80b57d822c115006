"""Sliced-MI benchmark: distmi's batched slices vs a reference-style one-slice-at-a-time loop.

Workload of the sliced-MI experiments of Goldfeld & Greenewald (2021): X, Y in R^50 with
Y = 0.5 X + noise, n = 3000 samples, m = 2000 random 1-D slices, KSG with k = 3. Side by side in one process on
the very same slices:

- distmi: ``mutual_information(x, y, method="sliced", n_slices=m, k=3)`` (one projection
  product, all slices in the compiled exact column kernel), with ``--n-jobs`` threads; the
  numba kernel is compiled (or loaded from its disk cache) once per process before timing,
  and that one-off cost is printed on its own;
- reference A: scikit-learn's ``mutual_info_regression(theta^T x, phi^T y, n_neighbors=3)``
  per slice (k-d trees, what the reference experiments call per slice); for every
  ``--n-jobs`` value above 1 it also runs with that many joblib worker processes over the
  slices (scikit-learn's own way to use several cores), so each thread count is compared
  like for like;
- reference B: a per-slice KSG with scipy ``cKDTree`` (``distmi.kernels.knn``'s tree path).

Ratios lead with like-for-like pairs (distmi with N threads vs the reference with N
workers); the ratios against the single-threaded reference follow, labelled as such. Only the
estimation is timed (not imports). The call with the API's defaults (error bar from
the slices' per-point terms, one permutation null) is timed too. ``--ref-slices`` times the references on the first
slices only and extrapolates linearly to m (each slice is an independent, equal-cost problem);
the printout says when it does. Error bars and the permutation null are off for the timing
(``n_bootstrap=0, n_permutations=0``): both sides compute the same m slice estimates.

    .venv/bin/python benchmarks/bench_sliced.py                       # full reference loop
    .venv/bin/python benchmarks/bench_sliced.py --ref-slices 200      # quicker, extrapolated
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one BLAS thread on both sides

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-slices", type=int, default=2000)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--ref-slices", type=int, default=None,
                        help="time the references on this many slices and extrapolate")
    parser.add_argument("--n-jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed distmi runs per n_jobs (the first pays the page faults of "
                             "fresh 50 MB arrays; the best is reported)")
    args = parser.parse_args()

    from sklearn.feature_selection import mutual_info_regression

    import distmi
    from distmi.estimators.ksg_config import prepare_rows
    from distmi.kernels.knn import kdtree_ksg_counts
    from distmi.kernels.ksg_mi import ksg_from_counts
    from distmi.kernels.slicing import random_frames

    rng = np.random.default_rng(args.seed)
    n, d, m, k = args.n, args.d, args.n_slices, args.k
    x = rng.normal(size=(n, d))
    y = 0.5 * x + rng.normal(size=(n, d))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    print(f"workload: m={m} slices x n={n} samples, d_x=d_y={d}, k={k}")

    start = time.perf_counter()  # one-off: compile the kernel, or load it from numba's cache
    distmi.mutual_information(x[:50], y[:50], method="sliced", n_slices=2, k=k, n_bootstrap=0,
                              n_permutations=0, random_state=args.seed)
    print(f"one-off kernel compile / cache load: {time.perf_counter() - start:.2f} s")
    results = {}
    cpu = {}
    for n_jobs in args.n_jobs:
        times = []
        for _ in range(args.repeats):
            start, c0 = time.perf_counter(), time.process_time()
            res = distmi.mutual_information(x, y, method="sliced", n_slices=m, k=k,
                                            n_bootstrap=0, n_permutations=0,
                                            random_state=args.seed, n_jobs=n_jobs)
            times.append(time.perf_counter() - start)
            cpu[n_jobs] = min(cpu.get(n_jobs, float("inf")), time.process_time() - c0)
        results[n_jobs] = (min(times), res)
        print(f"distmi (n_jobs={n_jobs}): best {min(times):.2f} s of "
              f"{', '.join(f'{t:.2f}' for t in times)}, SMI = {res.value:.5f} "
              f"(slice SE {res.diagnostics['slice_se']:.5f}), "
              f"{m * n / min(times):.3g} slice-samples/s")
    values = next(iter(results.values()))[1].diagnostics["slice_values"]
    start = time.perf_counter()  # the call with its defaults: error bar from the slices, 1 null
    default = distmi.mutual_information(x, y, method="sliced", n_slices=m, k=k,
                                        random_state=args.seed)
    t_default = time.perf_counter() - start
    print(f"distmi with its defaults (n_jobs=1, error bar from the slices' per-point terms, one "
          f"permutation null): {t_default:.2f} s, SMI = {default.value:.5f} +- {default.std:.5f}, "
          f"null {default.diagnostics['null_value']:.5f}")

    fx = random_frames(d, m, 1, args.seed, "x")[..., 0]  # the very slices distmi used
    fy = random_frames(d, m, 1, args.seed, "y")[..., 0]
    n_ref = m if args.ref_slices is None else min(args.ref_slices, m)

    start, c0 = time.perf_counter(), time.process_time()
    sk = np.array([
        mutual_info_regression((x @ fx[j])[:, None], y @ fy[j], n_neighbors=k, random_state=0)[0]
        for j in range(n_ref)
    ])
    t_sk = (time.perf_counter() - start) * m / n_ref
    c_sk = (time.process_time() - c0) * m / n_ref

    start = time.perf_counter()
    tree = []
    for j in range(n_ref):
        px = prepare_rows((x @ fx[j])[None], args.seed, "x", 1e-10)
        py = prepare_rows((y @ fy[j])[None], args.seed, "y", 1e-10)
        nx, ny = kdtree_ksg_counts(px.T, py.T, k, 1)
        tree.append(ksg_from_counts(nx[None], ny[None], k, 1)[0])
    t_tree = (time.perf_counter() - start) * m / n_ref
    tree = np.array(tree)

    # scikit-learn's best use of N cores: joblib processes over the slices (like for like)
    from joblib import Parallel, delayed

    def sk_slice(j: int) -> float:
        return mutual_info_regression((x @ fx[j])[:, None], y @ fy[j], n_neighbors=k,
                                      random_state=0)[0]

    t_sk_par = {1: t_sk}
    for n_jobs in [j for j in args.n_jobs if j > 1]:
        with Parallel(n_jobs=n_jobs) as pool:
            pool(delayed(sk_slice)(j) for j in range(min(n_jobs, n_ref)))  # start the workers
            start = time.perf_counter()
            par = np.array(pool(delayed(sk_slice)(j) for j in range(n_ref)))
            t_sk_par[n_jobs] = (time.perf_counter() - start) * m / n_ref
        assert np.allclose(par, sk)
    # on N cores the loop's best is the faster of its parallel and its serial run
    t_sk_best = {j: min(t, t_sk) for j, t in t_sk_par.items()}

    note = "" if n_ref == m else f" (timed on {n_ref} slices, extrapolated to {m})"
    print(f"reference A, sklearn mutual_info_regression loop: {t_sk:.2f} s{note}, "
          f"{m * n / t_sk:.3g} slice-samples/s")
    for n_jobs, t in t_sk_par.items():
        if n_jobs > 1:
            print(f"reference A with {n_jobs} joblib processes: {t:.2f} s{note}")
    print(f"reference B, per-slice cKDTree KSG loop: {t_tree:.2f} s{note}, "
          f"{m * n / t_tree:.3g} slice-samples/s")
    print("like for like (distmi with N threads vs the sklearn loop on N cores):")
    for n_jobs, (t, _) in results.items():
        if n_jobs in t_sk_best:
            print(f"  {n_jobs} thread(s): {t_sk_best[n_jobs] / t:.1f}x "
                  f"(sklearn loop {t_sk_best[n_jobs]:.2f} s, the faster of serial and parallel)")
    print("against the single-threaded loops (not like for like above 1 thread):")
    for n_jobs, (t, _) in results.items():
        print(f"  n_jobs={n_jobs}: {t_sk / t:.1f}x vs sklearn loop, "
              f"{t_tree / t:.1f}x vs cKDTree loop")
    print(f"CPU seconds: distmi n_jobs=1 {cpu[args.n_jobs[0]]:.2f} s, sklearn loop {c_sk:.2f} s: "
          f"{c_sk / cpu[args.n_jobs[0]]:.1f}x (the ratio that survives a loaded machine)")
    print(f"speed-up of the default call (estimate + error bar + null) vs the sklearn loop "
          f"(estimate only): {t_sk / t_default:.1f}x")
    ours = values[:n_ref]
    print(f"agreement on the {n_ref} reference slices: max |distmi - cKDTree KSG| = "
          f"{np.abs(ours - tree).max():.2e}; max |max(distmi, 0) - sklearn| = "
          f"{np.abs(np.maximum(ours, 0) - sk).max():.2e} (sklearn clips at 0 and adds its own "
          f"1e-10 noise)")


if __name__ == "__main__":
    main()
