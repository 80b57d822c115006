"""WKL nearest-neighbour kernels: microseconds per point of the compiled 1-D and 2-D kernels.

Slices like those of the information-plane benchmark (n = 10^4 points: a random projection
of a 784-d input against one of a ReLU layer, standardised, jitter 1e-10), timed per kernel:

- 2-D, one order k (``mean_log_knn_2d_compiled(x, y, [k])``): the counting-selection kernel
  for k >= ``SELECT_K``, the sorted buffer below;
- 2-D, orders [1, k]: always the sorted-buffer kernel (several orders), i.e. the buffer's cost
  at k, for comparison;
- 1-D, one order j (``mean_log_knn_1d_sorted``) on sorted rows.

Runs against whatever version of distmi is importable, so the same command on an older
checkout gives the "before" figures.

    .venv/bin/python benchmarks/bench_wkl_kernels.py
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np


def plane_slices(n: int, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, n) x and y: projections of a 784-d input and of a ReLU layer of it."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    x = 0.6 * rng.normal(size=(10, 784))[labels] + rng.normal(size=(n, 784))
    layer = np.maximum(x @ rng.normal(size=(784, 256)) / math.sqrt(784), 0.0)
    px = (x @ rng.normal(size=(784, rows))).T
    pl = (layer @ rng.normal(size=(256, rows))).T

    def standard(v: np.ndarray) -> np.ndarray:
        v = (v - v.mean(1, keepdims=True)) / v.std(1, keepdims=True)
        return np.ascontiguousarray(v + 1e-10 * rng.normal(size=v.shape))

    return standard(px), standard(pl)


def per_point(fn, points: int, repeats: int) -> float:
    fn()  # compile or load the cache
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / points * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, nargs="+", default=[5, 8, 10, 25])
    parser.add_argument("--j", type=int, nargs="+", default=[1, 3, 5, 25])
    args = parser.parse_args()

    from distmi.kernels.wkl_compiled import mean_log_knn_1d_sorted, mean_log_knn_2d_compiled

    x, y = plane_slices(args.n, args.rows, 0)
    ox, oy = np.argsort(x, axis=1), np.argsort(y, axis=1)
    points = x.size
    print(f"n = {args.n}, {args.rows} slices, best of {args.repeats}; us per point")
    for k in args.k:
        one = per_point(lambda k=k: mean_log_knn_2d_compiled(
            x, y, np.array([k]), order_x=ox, order_y=oy), points, args.repeats)
        buf = per_point(lambda k=k: mean_log_knn_2d_compiled(
            x, y, np.array([1, k]), order_x=ox, order_y=oy), points, args.repeats)
        print(f"  2-D k = {k:3d}: one order {one:.3f}, sorted buffer (orders [1, k]) {buf:.3f}")
    xs = np.sort(x, axis=1)
    for j in args.j:
        t = per_point(lambda j=j: mean_log_knn_1d_sorted(xs, np.array([j])), points,
                      args.repeats)
        print(f"  1-D j = {j:3d}: {t * 1e3:.1f} ns")


if __name__ == "__main__":
    main()
