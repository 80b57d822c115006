"""Statistical figures of the conformance suite: accuracy, error bars and coverage per method.

For each method, one batched ``pairwise_mi`` call over independent bivariate-Gaussian datasets
(the settings of ``distmi.testing.settings``: 50 datasets at 0.1 and 50 at 0.5 nats for the
classical estimators, 30 + 30 at n = 2000 with default critics for the neural bounds) and
prints per MI level: mean error, sd per dataset, mean reported std, two-sided coverage of the
truth by the 95% interval, and the share of lower interval ends at or below the truth; then
the CPU seconds of the call. These are the figures quoted in docs/estimators.md.

    python benchmarks/bench_conformance.py                 # every method (neural: minutes)
    python benchmarks/bench_conformance.py --methods gmm ksg sliced
"""

from __future__ import annotations

import argparse
import os
import time

from distmi.estimators.registry import available_methods
from distmi.testing.case import MethodCase
from distmi.testing.checks_stats import summarize
from distmi.testing.settings import settings_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=None)
    args = parser.parse_args()
    methods = args.methods or available_methods()
    load = os.getloadavg()[0]
    print(f"load average {load:.1f}; CPU seconds include every thread of the process")
    print(f"{'method':8} {'MI':>4} {'n':>5} {'sets':>4} {'error':>8} {'sd':>7} {'std':>7} "
          f"{'cover':>6} {'lower':>6} {'cpu s':>7}")
    for name in methods:
        case = MethodCase(name, settings_for(name))
        t0 = time.process_time()
        rows = summarize(case)
        cpu = time.process_time() - t0
        for k, row in enumerate(rows):
            print(f"{name:8} {row['mi']:4.1f} {case.settings.accuracy_n:5d} "
                  f"{row['datasets']:4d} {row['mean_error']:+8.4f} {row['sd']:7.4f} "
                  f"{row['mean_std']:7.4f} {row['coverage']:6.2f} {row['lower_coverage']:6.2f} "
                  + (f"{cpu:7.1f}" if k == 0 else ""), flush=True)


if __name__ == "__main__":
    main()
