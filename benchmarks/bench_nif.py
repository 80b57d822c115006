"""NIF speed: whole studies on iris and digits, and grouped link training vs one pair at a time.

Parts (``--parts``):

* ``links``: the links of the iris NIF graph (input -> act1 -> act2 -> class indicators, plus
  the within-layer redundancy pairs; ~600 scalar pairs on the 120 training rows) trained by
  MINE, the seed's estimator, **grouped** (``estimate_pairs`` per block of pairs, what NIF's
  engine jobs call) and **one pair at a time** (``distmi.mutual_information``, the same code
  with a group of one). Same bound, critic, batch size and steps on both sides (early
  stopping off, ``--steps``); the one-at-a-time side runs ``--subset`` pairs and is
  extrapolated to all (printed as such). The same comparison for KSG (batched 1-D kernel vs
  one call per pair) follows.
* ``iris`` / ``digits``: the whole study of ``distmi nif --builtin NAME`` (links, redundancy,
  20 half-sample replicates, attribution, zero-flow test, pruning, pruning curve, IG/SHAP
  comparison, figures) with the defaults a user gets; prints wall and CPU seconds per stage.

    .venv/bin/python benchmarks/bench_nif.py --parts links iris digits
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import resource
import tempfile
import time

import numpy as np


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _iris_blocks():
    """(X, Y, pairs, discrete) blocks of the iris NIF graph, from the trained bundled MLP."""
    from distmi.analyses.nif.capture import capture_activations
    from distmi.analyses.nif.graph import build_graph
    from distmi.examples.tabular import load_bundled

    b = load_bundled("iris")
    x, y = b.train
    acts, _, _ = capture_activations(b.model, build_graph(b.model, None, "classes"), x)
    a = {k: v.astype(np.float64) for k, v in acts.items()}
    names = list(a)
    blocks = []
    for s, d in itertools.pairwise(names):  # adjacent layers
        p = np.array([(i, j) for i in range(a[s].shape[1]) for j in range(a[d].shape[1])])
        blocks.append((a[s], a[d], p, False))
    for s in names:  # redundancy pairs
        n = a[s].shape[1]
        blocks.append((a[s], a[s], np.array([(i, j) for i in range(n) for j in range(i + 1, n)]),
                       False))
    for c in range(3):  # last hidden -> class indicator c
        n = a[names[-1]].shape[1]
        blocks.append((a[names[-1]], (y == c).astype(np.int64),
                       np.array([(i, 0) for i in range(n)]), True))
    # drop constant columns (the engine does: their MI is exactly 0)
    out = []
    for X, Y, p, disc in blocks:
        ok = np.ptp(X[:, p[:, 0]], axis=0) > 0
        if not disc:
            ok &= np.ptp(Y[:, p[:, 1]], axis=0) > 0
        out.append((X, Y, p[ok], disc))
    return out


def bench_links(args: argparse.Namespace) -> None:
    import torch

    import distmi
    from distmi.estimators.registry import get_method

    blocks = _iris_blocks()
    n_pairs = sum(len(p) for _, _, p, _ in blocks)
    n = blocks[0][0].shape[0]
    print(f"\n== links of the iris NIF graph: {n_pairs} scalar pairs, n={n} training rows ==")
    kw = dict(batch_size=args.batch_size, max_steps=args.steps, patience=args.steps + 1,
              hidden=(32, 32))
    for method, params in (("mine", kw), ("ksg", {})):
        spec = get_method(method)
        torch.set_num_threads(args.threads)
        spec.estimate_pairs(blocks[0][0], blocks[0][1], blocks[0][2][:2], discrete_y=False,
                            n_bootstrap=0, random_state=0,
                            **({**params, "max_steps": 5} if method == "mine" else params))
        t0, c0 = time.perf_counter(), cpu_s()
        grouped = []
        for X, Y, p, disc in blocks:
            grouped += [r.value for r in spec.estimate_pairs(
                X, Y, p, discrete_y=disc, n_bootstrap=0, random_state=0, **params)]
        tg, cg = time.perf_counter() - t0, cpu_s() - c0
        rng = np.random.default_rng(0)
        flat = [(b, k) for b, (_, _, p, _) in enumerate(blocks) for k in range(len(p))]
        pick = rng.choice(len(flat), size=min(args.subset, len(flat)), replace=False)
        torch.set_num_threads(args.baseline_threads)
        t0, c0 = time.perf_counter(), cpu_s()
        diffs = []
        for f in pick:
            b, k = flat[f]
            X, Y, p, disc = blocks[b]
            i, j = p[k]
            r = distmi.mutual_information(X[:, i], Y if disc else Y[:, j], method=method,
                                          discrete_y=disc, n_bootstrap=0, random_state=0,
                                          **params)
            diffs.append(abs(r.value - grouped[f]))
        ts, cs = time.perf_counter() - t0, cpu_s() - c0
        scale = n_pairs / len(pick)
        print(f"{method}: grouped {n_pairs} pairs {tg:.2f} s wall / {cg:.2f} s CPU "
              f"({args.threads} thread(s)); one at a time {len(pick)} pairs {ts:.2f} s wall / "
              f"{cs:.2f} s CPU ({args.baseline_threads} thread), extrapolated to {n_pairs}: "
              f"{ts * scale:.1f} s wall / {cs * scale:.1f} s CPU")
        print(f"{method}: speed-up {ts * scale / tg:.1f}x wall, {cs * scale / cg:.1f}x CPU; "
              f"max |grouped - alone| over the subset {max(diffs):.2e} nats")
    torch.set_num_threads(args.threads)


def bench_study(name: str, args: argparse.Namespace) -> None:
    import torch

    from distmi.analyses.nif.report import run_study
    from distmi.examples.tabular import load_bundled

    torch.set_num_threads(args.threads)
    print(f"\n== whole NIF study: {name} (defaults of `distmi nif --builtin {name}`) ==")
    t0, c0 = time.perf_counter(), cpu_s()
    b = load_bundled(name)
    t_train, c_train = time.perf_counter() - t0, cpu_s() - c0
    with tempfile.TemporaryDirectory() as out:
        report = run_study(b, out, estimator=args.estimator or None)
    tm = report["timings"]
    layers = report["flow"]["layers"]
    print(f"{name}: layers {layers}, {report['flow']['n_links']} links, "
          f"train {t_train:.1f} s wall / {c_train:.1f} s CPU (not counted below)")
    for stage, v in tm["stages"].items():
        print(f"  {stage:<15} {v['wall_s']:>8.2f} s wall {v['cpu_s']:>8.2f} s CPU")
    for stage, v in tm["flow_detail"].items():
        if isinstance(v, dict):
            print(f"    flow.{stage:<11} {v['wall_s']:>8.2f} s wall {v['cpu_s']:>8.2f} s CPU")
    print(f"  {'total':<15} {tm['total_wall_s']:>8.2f} s wall {tm['total_cpu_s']:>8.2f} s CPU")
    pr = report["pruning"]
    print(f"  pruning: {pr['n_pruned']}/{pr['n_hidden']} zero-flow hidden neurons, test accuracy "
          f"{pr['test_accuracy_before']:.4f} -> {pr['test_accuracy_after']:.4f}, max logit change "
          f"{pr['max_logit_change_all_rows']:.2e}")
    for row in report.get("pruning_curve", []):
        print(f"  curve {row['order']:<7} keeps accuracy to fraction "
              f"{row['kept_accuracy_to_fraction']:.2f}, mean accuracy {row['mean_accuracy']:.3f}")
    for row in report.get("comparison", {}).get("ks", []):
        print(f"  K-S {row['attribution']:<5} statistic {row['ks_statistic']:.3f} "
              f"p {row['p_value']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["links", "iris", "digits"],
                    choices=["links", "iris", "wine", "breast_cancer", "digits"])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (grouped side)")
    ap.add_argument("--baseline-threads", type=int, default=1,
                    help="torch threads of the one-at-a-time side (1: its fastest here)")
    ap.add_argument("--steps", type=int, default=300, help="MINE steps per pair (both sides)")
    ap.add_argument("--batch-size", type=int, default=30, help="MINE batch (NIF's iris default)")
    ap.add_argument("--subset", type=int, default=30, help="pairs run one at a time")
    ap.add_argument("--estimator", default=None, help="link estimator of the studies")
    args = ap.parse_args()
    load = os.getloadavg()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    for part in args.parts:
        if part == "links":
            bench_links(args)
        else:
            bench_study(part, args)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
