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


def test_default_interval_is_bca_with_influence_acceleration():
    rng = np.random.default_rng(1)
    x = rng.normal(size=1500)
    y = np.tanh(x) + 0.5 * rng.normal(size=1500)
    r = distmi.mutual_information(x, y, n_bootstrap=60)
    assert r.params["ci_method"] == "bca" and r.params["acceleration"] == "influence"
    assert "jackknife" not in r.diagnostics and r.diagnostics["em_iter_jackknife"] == 0
    boot = np.array([r.diagnostics["bootstrap"]])
    a = r.diagnostics["acceleration"]
    assert a != 0.0 and abs(a) < 0.1
    low, high = bca_interval(np.array([r.value]), boot, 0.95, np.array([a]))
    assert r.ci == (low[0], high[0])
    assert r.diagnostics["bias_corrected"] == pytest.approx(2 * r.value - boot.mean())
    # the jackknife acceleration (10 refits) is an option; the two agree in sign and size
    j = distmi.mutual_information(x, y, n_bootstrap=60, acceleration="jackknife")
    jack = np.array([j.diagnostics["jackknife"]])
    assert jack.shape == (1, 10) and j.value == r.value
    a_jack = jackknife_acceleration(jack)
    low, high = bca_interval(np.array([r.value]), boot, 0.95, a_jack)
    assert j.ci == (low[0], high[0])
    assert np.sign(a_jack[0]) == np.sign(a) and abs(a_jack[0] - a) < 0.02
    # the other intervals come from the same replicates (the shared significance kernels)
    b = distmi.mutual_information(x, y, n_bootstrap=60, ci_method="basic")
    low, high = basic_interval(np.array([r.value]), boot, 0.95)
    assert b.value == r.value and b.ci == (low[0], high[0]) and "acceleration" not in b.diagnostics
    p = distmi.mutual_information(x, y, n_bootstrap=60, ci_method="percentile", ci_level=0.9)
    assert p.ci == percentile_interval(boot[0], 0.9)
    no_accel = distmi.mutual_information(x, y, n_bootstrap=60, acceleration="none")
    low, high = bca_interval(np.array([r.value]), boot, 0.95)
    assert no_accel.ci == (low[0], high[0])


def test_influence_values_are_the_pointwise_mi():
    """The acceleration's influence values: pointwise log p(x, y) / (p(x) p(y)) of the fitted
    mixture, whose sample mean is the plug-in MI; on Gaussians they match the closed-form
    pointwise MI, and so does the acceleration."""
    import torch

    from distmi.kernels.em import GMMParams
    from distmi.kernels.gmm_mi_integral import pointwise_log_ratio
    from distmi.kernels.significance import influence_acceleration

    rng = np.random.default_rng(3)
    rho, n = 0.8, 20000
    x = rng.normal(size=n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n)
    cov = torch.tensor([[[[1.0, rho], [rho, 1.0]]]], dtype=torch.float64)
    params = GMMParams(torch.zeros((1, 1), dtype=torch.float64),
                       torch.zeros((1, 1, 2), dtype=torch.float64), cov)
    pts = torch.as_tensor(np.stack([x, y], 1)[None])
    got = pointwise_log_ratio(params, [(1.0, [0, 1]), (-1.0, [0]), (-1.0, [1])], pts)[0].numpy()
    closed = (-0.5 * np.log(1 - rho**2)
              - (rho**2 * (x**2 + y**2) - 2 * rho * x * y) / (2 * (1 - rho**2)))
    np.testing.assert_allclose(got, closed, rtol=0, atol=1e-10)
    truth = -0.5 * np.log(1 - rho**2)
    assert abs(got.mean() - truth) < 4 * got.std() / np.sqrt(n)
    # the estimator's acceleration equals the closed form's at the fitted Gaussian (K = 1:
    # the sample's standardised data and correlation)
    r = distmi.mutual_information(x, y, n_bootstrap=20)
    xs, ys = (x - x.mean()) / x.std(), (y - y.mean()) / y.std()
    r_hat = float(np.mean(xs * ys))
    fitted = (-0.5 * np.log(1 - r_hat**2)
              - (r_hat**2 * (xs**2 + ys**2) - 2 * r_hat * xs * ys) / (2 * (1 - r_hat**2)))
    assert r.diagnostics["n_components"] == 1
    assert r.diagnostics["acceleration"] == pytest.approx(
        influence_acceleration(fitted[None])[0], rel=1e-3)


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
