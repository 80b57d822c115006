"""Eq. 3 (shared critic) against eq. 2 (separate estimates) where the answer is known.

A linear-Gaussian network x (3) -> h (4) -> o (2) with unit noise has closed-form MI for every
link and every within-layer pair, so eq. 2's value of each link is known exactly
(beta = "mean", units in index order as in the seed). The program prints, per link, the
closed-form eq. 2 value, distmi's eq. 2 estimate (KSG links) and the eq. 3 shared-critic bound,
and their mean errors; then the same two bounds on the bundled iris MLP.

    .venv/bin/python benchmarks/nif_eq3.py --n 4000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iris", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "nif"))
    from conftest import gaussian_mi, gaussian_network

    import distmi

    acts, cov = gaussian_network(args.n, seed=args.seed)
    common = dict(estimator="ksg", beta="mean", redundancy_order="index", n_bootstrap=0,
                  n_permutations=99, random_state=args.seed)
    t0 = time.perf_counter()
    eq2 = distmi.nif.flow_from_activations(acts, None, **common)
    t2 = time.perf_counter() - t0
    t0 = time.perf_counter()
    eq3 = distmi.nif.flow_from_activations(acts, None, bound="shared-critic", **common)
    t3 = time.perf_counter() - t0
    offset = {"input": 0, "h": 3, "logits": 7}
    rows = []
    for (a, i, b, j) in eq2.links[["src_layer", "src_unit", "dst_layer", "dst_unit"]].itertuples(
            index=False):
        rel = gaussian_mi(cov, offset[a] + i, offset[b] + j)
        red = sum(gaussian_mi(cov, offset[a] + i, offset[a] + u) for u in range(i))
        rows.append(max(rel - (red / i if i else 0.0), 0.0))
    truth = np.array(rows)
    e2, e3 = eq2.links["nif"].to_numpy(), eq3.links["nif"].to_numpy()
    print(f"linear-Gaussian network 3-4-2, n={args.n}, beta='mean', index order")
    print(f"{'link':<16}{'eq.2 truth':>11}{'eq.2 est':>10}{'eq.3':>8}")
    for k, (a, i, b, j) in enumerate(eq2.links[["src_layer", "src_unit", "dst_layer",
                                                "dst_unit"]].itertuples(index=False)):
        print(f"{a}[{i}]->{b}[{j}]".ljust(16) + f"{truth[k]:>11.3f}{e2[k]:>10.3f}{e3[k]:>8.3f}")
    print(f"mean error vs eq.2 truth: eq.2 estimate {np.mean(e2 - truth):+.3f} "
          f"(MAE {np.mean(np.abs(e2 - truth)):.3f}), eq.3 {np.mean(e3 - truth):+.3f} "
          f"(MAE {np.mean(np.abs(e3 - truth)):.3f}); eq.3 >= eq.2 truth on "
          f"{np.mean(e3 >= truth - 1e-9):.0%} of links; links zeroed by eq.2: "
          f"{int((truth == 0).sum())}, by eq.3: {int((e3 == 0).sum())}")
    print(f"seconds: eq.2 {t2:.1f}, eq.3 {t3:.1f}")
    if args.iris:
        from distmi.examples.tabular import load_bundled

        b = load_bundled("iris")
        x, y = b.train
        kw = dict(n_bootstrap=0, n_permutations=99, feature_names=b.feature_names,
                  class_names=b.class_names)
        f2 = distmi.nif.information_flow(b.model, x, y, **kw)
        t0 = time.perf_counter()
        f3 = distmi.nif.information_flow(b.model, x, y, bound="shared-critic", **kw)
        t3 = time.perf_counter() - t0
        from scipy.stats import spearmanr

        v2, v3 = f2.links["nif"].to_numpy(), f3.links["nif"].to_numpy()
        print(f"\niris MLP (KSG links, beta='mean', relevance order): {len(v2)} links; "
              f"eq.3 - eq.2 mean {np.mean(v3 - v2):+.3f}, eq.3 >= eq.2 on "
              f"{np.mean(v3 >= v2 - 1e-9):.0%}; Spearman {spearmanr(v2, v3).statistic:.2f}; "
              f"links at 0: eq.2 {int((v2 == 0).sum())}, eq.3 {int((v3 == 0).sum())}; "
              f"eq.3 {t3:.1f} s")
        print("attribution eq.2:\n" + f2.attribution.round(3).to_string())
        print("attribution eq.3:\n" + f3.attribution.round(3).to_string())


if __name__ == "__main__":
    main()
