"""GMM-MI bootstrap intervals: bias-correcting by default, coverage on Gaussians, warm starts.

Coverage runs many independent datasets as one batched ``pairwise_mi`` call (pair i is
dataset i). With true coverage 95%, the 90-98% band the intervals must land in is > 3
binomial standard errors wide below and ~2 above at these sizes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import distmi
from distmi.core.results import percentile_interval
from distmi.kernels.significance import basic_interval, bca_interval, jackknife_acceleration
from distmi.testing.mi_families import batch

RHOS = (0.3, 0.6, 0.9)


def _gaussian_datasets(n: int, m: int, seed: int):
    rng = np.random.default_rng(seed)
    rho = np.array(RHOS)[np.arange(m) % len(RHOS)]
    X = rng.normal(size=(n, m))
    Y = rho * X + np.sqrt(1 - rho**2) * rng.normal(size=(n, m))
    return X, Y, rho, -0.5 * np.log1p(-(rho**2))


def _coverage(n: int, m: int, n_bootstrap: int, seed: int, **params):
    X, Y, rho, truth = _gaussian_datasets(n, m, seed)
    table = distmi.pairwise_mi(X, Y, pairs=[(i, i) for i in range(m)], n_bootstrap=n_bootstrap,
                               **params)
    covered = ((table.ci_low <= truth) & (truth <= table.ci_high)).to_numpy()
    return covered, rho, table


def test_default_interval_is_bca_with_jackknife_acceleration():
    rng = np.random.default_rng(1)
    x = rng.normal(size=1500)
    y = np.tanh(x) + 0.5 * rng.normal(size=1500)
    r = distmi.mutual_information(x, y, n_bootstrap=60)
    assert r.params["ci_method"] == "bca" and r.params["n_jackknife"] == 10
    boot = np.array([r.diagnostics["bootstrap"]])
    jack = np.array([r.diagnostics["jackknife"]])
    assert jack.shape == (1, 10)
    low, high = bca_interval(np.array([r.value]), boot, 0.95, jackknife_acceleration(jack))
    assert r.ci == (low[0], high[0])
    assert r.diagnostics["bias_corrected"] == pytest.approx(2 * r.value - boot.mean())
    # the other intervals come from the same replicates (the shared significance kernels)
    b = distmi.mutual_information(x, y, n_bootstrap=60, ci_method="basic")
    low, high = basic_interval(np.array([r.value]), boot, 0.95)
    assert b.value == r.value and b.ci == (low[0], high[0]) and "jackknife" not in b.diagnostics
    p = distmi.mutual_information(x, y, n_bootstrap=60, ci_method="percentile", ci_level=0.9)
    assert p.ci == percentile_interval(boot[0], 0.9)
    no_accel = distmi.mutual_information(x, y, n_bootstrap=60, n_jackknife=0)
    low, high = bca_interval(np.array([r.value]), boot, 0.95)
    assert no_accel.ci == (low[0], high[0])


def test_bad_interval_parameters():
    x = np.random.default_rng(0).normal(size=200)
    with pytest.raises(distmi.core.errors.InvalidParameterError, match="ci_method"):
        distmi.mutual_information(x, x + 1e-3 * x**2, ci_method="studentized")
    with pytest.raises(distmi.core.errors.InvalidParameterError, match="n_jackknife must be 0"):
        distmi.mutual_information(x, x**3, n_jackknife=2)


def test_bca_coverage_on_gaussians():
    """240 datasets (n = 1000, rho 0.3/0.6/0.9), 100 replicates: 95% BCa intervals cover the
    truth 90-98% of the time overall and >= 85% for every rho."""
    covered, rho, table = _coverage(1000, 240, 100, seed=5)
    assert 0.90 <= covered.mean() <= 0.98, covered.mean()
    for r in RHOS:
        assert covered[rho == r].mean() >= 0.85, (r, covered[rho == r].mean())
    # the intervals are not trivially wide: about 2 x 1.96 bootstrap standard errors
    width = (table.ci_high - table.ci_low) / table["std"]
    assert 3.0 < width.median() < 4.8


@pytest.mark.slow
@pytest.mark.parametrize("ci_method", ["bca", "basic"])
def test_interval_coverage_on_gaussians_at_scale(ci_method):
    """400 datasets at n = 5000 with 400 replicates each (the BCa tails need a few hundred)."""
    covered, rho, _ = _coverage(5000, 402, 400, seed=6, ci_method=ci_method)
    assert 0.90 <= covered.mean() <= 0.98, covered.mean()
    for r in RHOS:
        assert covered[rho == r].mean() >= 0.85, (r, covered[rho == r].mean())


def test_warm_started_bootstrap_equals_cold_started():
    """Replicates warm-started from the full fit agree with replicates fitted from scratch
    (grown from one component by splits on each replicate) to within the Monte Carlo error
    of a B-replicate bootstrap: the mean within 2 std / sqrt(B), the std within
    2 / sqrt(2 (B - 1)) relative, each interval end within 0.5 std."""
    X, Y = batch("bimodal", 2000, 1, seed=3)
    b = 60
    warm = distmi.mutual_information(X[:, 0], Y[:, 0], n_bootstrap=b, random_state=2)
    cold = distmi.mutual_information(X[:, 0], Y[:, 0], n_bootstrap=b, random_state=2,
                                     bootstrap_init="cold")
    assert warm.diagnostics["n_components"] >= 3  # a mixture, not the trivial one-component case
    assert warm.value == cold.value
    bw, bc = np.array(warm.diagnostics["bootstrap"]), np.array(cold.diagnostics["bootstrap"])
    assert abs(bw.mean() - bc.mean()) <= 2 * cold.std / math.sqrt(b)
    assert abs(warm.std / cold.std - 1) <= 2 / math.sqrt(2 * (b - 1))
    assert abs(warm.ci[0] - cold.ci[0]) <= 0.5 * cold.std
    assert abs(warm.ci[1] - cold.ci[1]) <= 0.5 * cold.std
    # the warm start is the cheap one
    assert warm.diagnostics["em_iter_bootstrap"] < cold.diagnostics["em_iter_bootstrap"]
