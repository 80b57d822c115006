"""The SMI experiments' synthetic study: how well SMI and MI estimates track the true MI as the
dimension grows, for the WKL, KSG and GMM bases.

For every dimension d and every true MI value I in ``--mi`` (default 0, 0.4, ..., 2.0 nats),
X, Y in R^d are Gaussian with cov [[I_d, rho I_d], [rho I_d, I_d]] and rho^2 = 1 - exp(-2 I / d)
(so I(X; Y) = I exactly, spread over all d coordinates); n samples (3000). Per data set:

- SMI with each base (``method="sliced"``, ``--slices`` projections, 2000; the GMM base with
  ``--gmm-slices``, also 2000 by default: every slice is a GMM-MI fit, ~3 ms at n = 3000);
- MI with the same estimator on the full X, Y (``method="wkl" / "ksg" / "gmm"``; GMM only up to
  ``--gmm-max-d``).

For each (d, estimator) the Pearson correlation between the true MI values and the estimates
is computed per run and averaged over ``--runs`` runs (10, as the SMI experiments averaged), as
in their Figure 2. Prints the table and writes ``--out`` (CSV of every estimate, the
correlation table, and the figure as PNG) after every run, so a stopped study keeps its
finished runs.

    .venv/bin/python benchmarks/bench_smi_study.py --out out/smi-study
    .venv/bin/python benchmarks/bench_smi_study.py --dims 1 5 20 --runs 1 --slices 200 --out /tmp/s

Runs are independent: ``--first-run 5 --runs 5 --out b`` in a second process does runs 5-9,
and ``--merge a b --out c`` combines the folders' estimates into one table and figure.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

BASES = ("wkl", "ksg", "gmm")


def gaussian_pair(d: int, mi: float, n: int, seed: tuple) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rho = math.sqrt(1.0 - math.exp(-2.0 * mi / d))
    x = rng.normal(size=(n, d))
    return x, rho * x + math.sqrt(1.0 - rho * rho) * rng.normal(size=(n, d))


def correlation(truth: np.ndarray, est: np.ndarray) -> float:
    ok = np.isfinite(est)
    if ok.sum() < 3 or np.ptp(est[ok]) == 0:
        return math.nan
    return float(np.corrcoef(truth[ok], est[ok])[0, 1])


def study_figure(table, title: str):
    """Correlation with the true MI against d: one line per estimator, SMI solid, MI dashed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.4), layout="constrained")
    ax = fig.add_subplot()
    colours = {"wkl": "tab:red", "ksg": "tab:blue", "gmm": "tab:green"}
    for base in BASES:
        for kind, style in (("smi", "-"), ("mi", "--")):
            rows = table[(table.base == base) & (table.kind == kind)].sort_values("d")
            if rows.empty or rows.corr_mean.isna().all():
                continue
            ax.errorbar(rows.d, rows.corr_mean, yerr=rows.corr_sd.fillna(0), fmt="o" + style,
                        color=colours[base], capsize=2, markersize=4,
                        label=f"{'SMI' if kind == 'smi' else 'MI'}, {base.upper()}")
    ax.set_xscale("log")
    ax.set_xlabel("dimension d of X and of Y")
    ax.set_ylabel("correlation with the true MI")
    ax.set_title(title)
    ax.axhline(0, color="0.8", linewidth=0.8)
    ax.legend(fontsize=8, ncols=2)
    return fig


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 2, 3, 5, 10, 20, 30, 50, 75, 100])
    parser.add_argument("--mi", type=float, nargs="+", default=[0.0, 0.4, 0.8, 1.2, 1.6, 2.0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--slices", type=int, default=2000)
    parser.add_argument("--gmm-slices", type=int, default=2000)
    parser.add_argument("--gmm-max-d", type=int, default=10)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--first-run", type=int, default=0,
                        help="index of the first run (its seeds), to split runs over processes")
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="only combine the estimates.csv of these study folders into --out")
    parser.add_argument("--bases", nargs="+", default=list(BASES))
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("out/smi-study"))
    args = parser.parse_args()

    import distmi

    args.out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        parts = [pd.read_csv(folder / "estimates.csv") for folder in args.merge]
        frame = pd.concat(parts).drop_duplicates(["run", "d", "true_mi", "base", "kind"])
        args.runs = frame.run.nunique()
        write_results(frame, args, float(frame.seconds.sum()), merged=True)
        return
    rows = []
    t0 = time.perf_counter()
    for run in range(args.first_run, args.first_run + args.runs):
        for d in args.dims:
            for mi in args.mi:
                x, y = gaussian_pair(d, mi, args.n, (run, d, int(mi * 1000)))
                for base in args.bases:
                    slices = args.gmm_slices if base == "gmm" else args.slices
                    extra = {"n_jobs": args.n_jobs} if base != "gmm" else {}
                    start = time.perf_counter()
                    smi = distmi.mutual_information(
                        x, y, method="sliced", base=base, n_slices=slices, n_bootstrap=0,
                        n_permutations=0, random_state=run, **extra).value
                    rows.append({"run": run, "d": d, "true_mi": mi, "base": base, "kind": "smi",
                                 "estimate": smi, "seconds": time.perf_counter() - start})
                    if base == "gmm" and d > args.gmm_max_d:
                        continue
                    start = time.perf_counter()
                    try:
                        est = distmi.mutual_information(x, y, method=base, n_bootstrap=0,
                                                        random_state=run).value
                    except distmi.DistmiError as exc:  # e.g. WKL weights impossible in 2d dims
                        print(f"  {base} MI at d={d}: {exc}")
                        est = math.nan
                    rows.append({"run": run, "d": d, "true_mi": mi, "base": base, "kind": "mi",
                                 "estimate": est, "seconds": time.perf_counter() - start})
            print(f"run {run}, d={d}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
        write_results(pd.DataFrame(rows), args, time.perf_counter() - t0)


def write_results(frame, args, seconds: float, merged: bool = False) -> None:
    """Write the estimates, the correlation table and the figure of the runs done so far (after
    every run, so a long study that is stopped keeps its finished runs)."""
    runs = frame.run.nunique()
    frame.to_csv(args.out / "estimates.csv", index=False)
    corr = (frame.groupby(["base", "kind", "d", "run"])
            .apply(lambda g: correlation(g.true_mi.to_numpy(), g.estimate.to_numpy()),
                   include_groups=False)
            .rename("corr").reset_index())
    table = (corr.groupby(["base", "kind", "d"])["corr"].agg(corr_mean="mean", corr_sd="std")
             .reset_index())
    secs = frame.groupby(["base", "kind", "d"])["seconds"].mean().rename("seconds").reset_index()
    table = table.merge(secs, on=["base", "kind", "d"])
    table.to_csv(args.out / "correlations.csv", index=False)
    wide = table.pivot_table(index="d", columns=["kind", "base"], values="corr_mean")
    settings = ("merged folders" if merged else f"n={args.n}, {args.slices} slices, GMM base "
                f"{args.gmm_slices} slices")
    print(f"\ncorrelation with the true MI (mean of {runs} of {args.runs} runs; {settings}), "
          f"{seconds:.0f} s of estimation")
    print(wide.round(3).to_string())
    fig = study_figure(table, f"Gaussian X, Y in R^d, n={args.n}, MI 0-{max(args.mi):g} nats, "
                              f"{runs} runs")
    fig.savefig(args.out / "smi_study.png", dpi=130)
    print(f"wrote {args.out / 'estimates.csv'}, {args.out / 'correlations.csv'}, "
          f"{args.out / 'smi_study.png'}")


if __name__ == "__main__":
    main()
