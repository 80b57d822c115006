"""Runs the reference implementation (PyPI ``gmm-mi`` 0.8.2) on saved data and prints JSON.

Executed by ``benchmarks/bench_gmm.py`` with the Python of a separate virtual environment
(gmm-mi needs scikit-learn < 1.6), e.g.::

    python -m venv refvenv && refvenv/bin/pip install gmm-mi==0.8.2 "scikit-learn<1.6"

Usage: python gmm_mi_runner.py DATA.npz N_BOOTSTRAP [categorical]
"""

import json
import sys
import time
import warnings

import numpy as np
from gmm_mi.mi import EstimateMI
from gmm_mi.param_holders import MIDistParamHolder

warnings.filterwarnings("ignore")


def main() -> None:
    path, n_bootstrap = sys.argv[1], int(sys.argv[2])
    categorical = len(sys.argv) > 3 and sys.argv[3] == "categorical"
    arrays = np.load(path)
    out = []
    for key in sorted(arrays.files, key=lambda k: int(k.split("_")[1])):
        data = arrays[key]
        params = MIDistParamHolder(n_bootstrap=n_bootstrap)
        start, cpu = time.perf_counter(), time.process_time()
        estimator = EstimateMI()
        try:
            if categorical:
                mi, std = estimator.fit_estimate_categorical(
                    data[:, 0], data[:, 1].astype(int), mi_dist_params=params
                )
            else:
                mi, std = estimator.fit_estimate(data, mi_dist_params=params)
            error = None
        except Exception as exc:  # the reference crashes on some resamples
            mi, std, error = float("nan"), float("nan"), f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu
        n_comp = getattr(estimator, "best_components", None)
        std = float("nan") if std is None else std  # a single fit (n_bootstrap=0) has no std
        out.append({"mi": float(mi), "std": float(std), "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                    "n_components": None if n_comp is None else int(n_comp), "error": error})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
