"""Information-plane benchmark: the SMI experiments' MNIST-scale workload against a per-slice loop.

Workload shape of the SMI experiments' information plane (10k samples, 1k projections,
WKL with k = 25; here 4 layers x 30 epochs, both I(X; L) and I(L; Y) with error bars):
X is 784-dimensional (10 class prototypes plus noise, 10 classes), and the four layers
(widths 1152, 256, 128, 10, a small MNIST CNN's sizes) come from a random ReLU network whose
weights move from one random draw to another over the epochs. Data are made in memory (the
estimation is what is timed; reading 30 x 4 layers from the store is not).

- distmi: :class:`distmi.analyses.infoplane.compute.SlicedPlane` (what every plane work unit
  runs: blocks of slices, X side kept, compiled 1-D / 2-D kernels), ``--threads`` threads;
- reference: the same estimator (WKL with the same k and weights, same standardised slices)
  one slice at a time, as the SMI experiments computed it: project, then scipy k-d trees for
  H(x), H(l), H(x, l) and every H(l | class). Timed on ``--ref-slices`` slices of the first
  unit and extrapolated linearly to the workload (every slice is an equal, independent
  problem); the values are checked against distmi's on those slices.

Both timings are printed as wall and CPU seconds; ``--epochs`` runs fewer epochs and
extrapolates to 30 (printed as such).

    .venv/bin/python benchmarks/bench_infoplane.py                         # full workload
    .venv/bin/python benchmarks/bench_infoplane.py --epochs 2 --ref-slices 20
    .venv/bin/python benchmarks/bench_infoplane.py --profile     # where distmi's time goes
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

WIDTHS = (1152, 256, 128, 10)


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    prototypes = rng.normal(size=(10, 784))
    x = 0.6 * prototypes[labels] + rng.normal(size=(n, 784))
    return x, labels


def layer_acts(x: np.ndarray, epoch: int, epochs: int, seed: int) -> list[np.ndarray]:
    """Activations of the 4 layers at ``epoch``: weights (1 - t) A + t B, t = epoch / epochs."""
    t = epoch / max(epochs - 1, 1)
    h, out = x, []
    for i, width in enumerate(WIDTHS):
        rng_a = np.random.default_rng([seed, i, 0])
        rng_b = np.random.default_rng([seed, i, 1])
        shape = (h.shape[1], width)
        w = ((1 - t) * rng_a.normal(size=shape) + t * rng_b.normal(size=shape)) / math.sqrt(shape[0])
        h = h @ w
        if i < len(WIDTHS) - 1:
            h = np.maximum(h, 0.0)
        out.append(h)
    return out


def reference_unit(x, acts, labels, frames_x, frames_l, k, seed, jitter, count, tree="scipy"):
    """The same WKL estimator, one slice at a time with k-d trees; (I(X;L), I(L;Y)) per slice.

    ``tree``: ``"scipy"`` (``cKDTree``, the fastest common choice) or ``"sklearn"``
    (``sklearn.neighbors.KDTree``, the trees of the SMI experiments' estimator library).
    """
    from scipy.spatial import cKDTree
    from scipy.special import digamma
    from sklearn.neighbors import KDTree

    from distmi.core.seeds import derive_rng

    n = len(x)
    noise_x = jitter * derive_rng(seed, "ksg-jitter", "x").standard_normal(n)
    noise_l = jitter * derive_rng(seed, "ksg-jitter", "y").standard_normal(n)

    def entropy(z: np.ndarray) -> float:  # KL with the k-th neighbour, max-norm (d <= 3: w = e_k)
        z = z.reshape(len(z), -1)
        if tree == "scipy":
            r = cKDTree(z).query(z, k=k + 1, p=np.inf)[0][:, k]
        else:
            r = KDTree(z, metric="chebyshev").query(z, k=k + 1)[0][:, k]
        d = z.shape[1]
        return digamma(len(z)) - digamma(k) + d * math.log(2.0) + d * np.log(r).mean()

    def standard(v: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return (v - v.mean()) / v.std() + noise

    codes, counts = np.unique(labels, return_counts=True)
    out = []
    for j in range(count):
        px = standard(x @ frames_x[j, :, 0], noise_x)
        pl = standard(acts @ frames_l[j, :, 0], noise_l)
        h_l = entropy(pl)
        i_xl = entropy(px) + h_l - entropy(np.stack([px, pl], 1))
        i_ly = h_l - sum(c / n * entropy(pl[labels == code]) for code, c in zip(codes, counts,
                                                                                 strict=True))
        out.append((i_xl, i_ly))
    return np.array(out)


def profile_epoch(args) -> None:
    """cProfile of distmi on the 4 units of one epoch, one thread: share of each function."""
    import cProfile
    import pstats

    from distmi.analyses.infoplane.compute import SlicedPlane
    from distmi.estimators.sliced import parse_sliced_config

    x, labels = make_data(args.n, args.seed)
    cfg = parse_sliced_config(n_slices=args.n_slices, base="wkl", k=args.k, n_jobs=1)
    plane = SlicedPlane(x, labels, cfg, args.seed, n_bootstrap=1,
                        n_permutations=args.n_permutations)
    plane.estimate("warm-up", x[:, :8], 1)
    acts = layer_acts(x, 0, 30, args.seed)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for li, a in enumerate(acts):
        plane.estimate(f"layer{li}", a, li)
    profiler.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats
    rows = sorted(((tt, f"{func[2]} ({os.path.basename(func[0])})")
                   for func, (_, _, tt, _, _) in stats.items()), reverse=True)[:10]
    print(f"one epoch (4 units), 1 thread: {total:.1f} s; own time of the top functions:")
    for tt, name in rows:
        print(f"  {100 * tt / total:5.1f} %  {tt:6.2f} s  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n-slices", type=int, default=1000)
    parser.add_argument("--k", type=int, default=25)
    parser.add_argument("--epochs", type=int, default=30, help="epochs run (of 30)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-permutations", type=int, default=0)
    parser.add_argument("--ref-slices", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true",
                        help="only profile distmi on one epoch with one thread: where the time goes")
    args = parser.parse_args()
    if args.profile:
        profile_epoch(args)
        return

    from distmi.analyses.infoplane.compute import SlicedPlane
    from distmi.estimators.sliced import parse_sliced_config

    total_epochs = 30
    x, labels = make_data(args.n, args.seed)
    cfg = parse_sliced_config(n_slices=args.n_slices, base="wkl", k=args.k, n_jobs=args.threads)
    print(f"workload: n={args.n}, {args.n_slices} slices, WKL k={args.k}, layers {WIDTHS}, "
          f"X 784-d, 10 classes, {total_epochs} epochs, I(X;L) and I(L;Y) with error bars, "
          f"{args.n_permutations} null shuffles; distmi with {args.threads} threads")
    plane = SlicedPlane(x, labels, cfg, args.seed, n_bootstrap=1,
                        n_permutations=args.n_permutations)
    plane.estimate("warm-up", x[:, :8], 1)  # numba cache load, X side of every block
    wall = cpu = 0.0
    units = 0
    first_unit = None
    for epoch in range(args.epochs):
        acts = layer_acts(x, epoch, total_epochs, args.seed)
        for li, a in enumerate(acts):
            w0, c0 = time.perf_counter(), time.process_time()
            res = plane.estimate(f"layer{li}", a, 1000 * epoch + li)
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            units += 1
            if first_unit is None:
                first_unit = (a, res)
        print(f"  epoch {epoch}: {units} units, {wall:.1f} s wall, {cpu:.1f} s CPU so far")
    scale = total_epochs / args.epochs
    t_ours = wall * scale
    note = "" if args.epochs == total_epochs else f" (ran {args.epochs} epochs, x{scale:g})"
    print(f"distmi: {t_ours:.1f} s wall ({t_ours / 60:.1f} min), {cpu * scale:.1f} s CPU for "
          f"{len(WIDTHS) * total_epochs} units{note}; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")

    acts0 = layer_acts(x, 0, total_epochs, args.seed)
    ref0 = None
    for tree in ("scipy", "sklearn"):
        # untimed warm-up: the first call imports scipy.spatial / sklearn.neighbors (~0.3 s),
        # which would otherwise be charged to the timed slices of the first layer
        reference_unit(x, acts0[0], labels, plane.frames_x, plane.frames("layer0", WIDTHS[0]),
                       args.k, args.seed, cfg.jitter, 1, tree)
        per_slice, per_slice_cpu = [], []
        for li, a in enumerate(acts0):
            frames_l = plane.frames(f"layer{li}", a.shape[1])
            w0, c0 = time.perf_counter(), time.process_time()
            ref = reference_unit(x, a, labels, plane.frames_x, frames_l, args.k, args.seed,
                                 cfg.jitter, args.ref_slices, tree)
            per_slice.append((time.perf_counter() - w0) / args.ref_slices)
            per_slice_cpu.append((time.process_time() - c0) / args.ref_slices)
            ref0 = ref if li == 0 and ref0 is None else ref0
        t_ref = sum(per_slice) * args.n_slices * total_epochs
        c_ref = sum(per_slice_cpu) * args.n_slices * total_epochs
        print(f"reference {tree} k-d tree per-slice WKL loop (1 thread): "
              f"{', '.join(f'{t * 1e3:.0f}' for t in per_slice)} ms wall per slice for the 4 "
              f"layers, timed on {args.ref_slices} slices each; workload extrapolated to "
              f"{args.n_slices} slices x {total_epochs} epochs: {t_ref:.0f} s wall "
              f"({t_ref / 3600:.1f} h), {c_ref:.0f} s CPU")
        print(f"  speed-up vs the {tree} loop: {t_ref / t_ours:.1f}x wall (distmi "
              f"{args.threads} threads, loop 1 thread); {t_ref / (t_ours * args.threads):.1f}x "
              f"against the loop spread over {args.threads} processes (perfect scaling assumed);"
              f" CPU seconds {c_ref / (cpu * scale):.1f}x")
    check_cfg = parse_sliced_config(n_slices=args.ref_slices, base="wkl", k=args.k)
    check = SlicedPlane(x, labels, check_cfg, args.seed, 0, 0).estimate("layer0", acts0[0], 0)
    ours = np.array([check["i_xl"].value, check["i_ly"].value])
    print(f"agreement on the {args.ref_slices} reference slices of layer0, epoch 0: distmi "
          f"I(X;L) {ours[0]:.6f}, I(L;Y) {ours[1]:.6f}; reference {ref0[:, 0].mean():.6f}, "
          f"{ref0[:, 1].mean():.6f} (max difference {np.abs(ours - ref0.mean(0)).max():.1e})")
    _, res = first_unit
    print(f"first unit (layer0, epoch 0): I(X;L) = {res['i_xl'].value:.4f} +- "
          f"{res['i_xl'].std:.4f}, I(L;Y) = {res['i_ly'].value:.4f} +- {res['i_ly'].std:.4f}")


if __name__ == "__main__":
    main()
