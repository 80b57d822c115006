"""False discovery rate of the screen on noise, and planted units found (slow: many seeds).

The full-size check (2000 units x 4 targets x 20 seeds, n=2000) is
``benchmarks/bench_sweep_stats.py``; this is the same check at a size a test run affords.
"""

from __future__ import annotations

import numpy as np
import pytest

import distmi

pytestmark = pytest.mark.slow


def test_mean_fdp_on_noise_is_at_most_the_fdr_level():
    fdp = []
    for seed in range(25):
        rng = np.random.default_rng(500 + seed)
        n, units = 400, 300
        X = rng.normal(size=(n, units))
        Y = np.column_stack([rng.normal(size=n), rng.standard_t(2, size=n)])
        tables = [distmi.screen_pairs(X, Y, random_state=seed),
                  distmi.screen_pairs(X, rng.integers(0, 3, size=n), discrete_y=True,
                                      random_state=seed),
                  distmi.screen_pairs(X, rng.choice(4, size=n, p=[0.55, 0.25, 0.15, 0.05]),
                                      discrete_y=True, random_state=seed)]
        for t in tables:
            for _, fam in t.groupby("y_index"):
                fdp.append(float(fam.significant.any()))  # every discovery is false
    fdp = np.array(fdp)
    assert fdp.mean() <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / fdp.size)


def test_planted_units_are_found_at_n_2000():
    rng = np.random.default_rng(8)
    n, units = 2000, 400
    y = rng.normal(size=n)
    label = rng.integers(0, 3, size=n)
    X = rng.normal(size=(n, units))
    X[:, :10] = 0.2 * y[:, None] + np.sqrt(0.96) * X[:, :10]
    X[:, 10:20] = y[:, None] ** 2 + 2.0 * X[:, 10:20]
    X[:, 20:30] += 0.35 * (label == 1)[:, None]
    cont = distmi.screen_pairs(X, y[:, None], threads=2)
    cat = distmi.screen_pairs(X, label, discrete_y=True, threads=2)
    assert cont.significant[:20].all() and cat.significant[20:30].all()
    false = cont.significant[20:].sum() + cat.significant[:20].sum() + cat.significant[30:].sum()
    assert false <= 3
