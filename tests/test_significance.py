"""Permutation p-values, BH/BY q-values and bias-correcting bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from distmi.kernels.significance import (
    adjust_pvalues,
    basic_interval,
    bca_interval,
    difference_z_test,
    jackknife_acceleration,
    permutation_pvalues,
)


def test_permutation_pvalues_shared_and_per_test_agree():
    rng = np.random.default_rng(0)
    null = rng.normal(size=999)
    obs = np.array([-5.0, 0.0, 1.5, 10.0, np.nan])
    shared = permutation_pvalues(obs, null)
    per_test = permutation_pvalues(obs, np.tile(null, (5, 1)))
    np.testing.assert_allclose(shared, per_test)
    assert shared[0] == 1.0  # every null value >= -5
    assert shared[3] == pytest.approx(1 / 1000)  # never 0
    assert np.isnan(shared[4])
    # hand count
    assert shared[1] == pytest.approx((1 + np.sum(null >= 0.0)) / 1000)


def test_permutation_pvalues_are_uniform_under_the_null():
    # observed and null drawn from the same distribution: p must be (super-)uniform
    rng = np.random.default_rng(1)
    # each test with its own null table (a single shared table makes the p-values dependent)
    null = rng.exponential(size=(4000, 499))
    obs = rng.exponential(size=4000)
    p = permutation_pvalues(obs, null)
    assert stats.kstest(p, "uniform").pvalue > 0.001
    # discrete grid: P(p <= u) <= u + 1/(B+1)
    for u in (0.01, 0.05, 0.2):
        assert np.mean(p <= u) <= u + 3 * np.sqrt(u * (1 - u) / len(p)) + 1 / 500


def test_permutation_pvalues_bad_shapes():
    with pytest.raises(ValueError, match="one row per test"):
        permutation_pvalues(np.zeros(3), np.zeros((2, 10)))
    with pytest.raises(ValueError, match="no finite"):
        permutation_pvalues(np.zeros(3), np.full(4, np.nan))


def test_bh_matches_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.20])
    # sorted 0.01, 0.03, 0.04, 0.20 -> 0.04, 0.06, 0.0533, 0.20 -> step-up minimum
    q = adjust_pvalues(p, "bh")
    np.testing.assert_allclose(q, [0.04, 0.05333333, 0.05333333, 0.20], rtol=1e-6)
    q_by = adjust_pvalues(p, "by")
    c = 1 + 1 / 2 + 1 / 3 + 1 / 4
    np.testing.assert_allclose(q_by, np.minimum(q * c, 1.0), rtol=1e-6)


def test_bh_ignores_nan_and_works_per_group():
    p = np.array([0.01, np.nan, 0.02, 0.5, 0.01, 0.9])
    groups = np.array(["a", "a", "a", "b", "b", "b"])
    q = adjust_pvalues(p, "bh", groups)
    np.testing.assert_allclose(q[[0, 2]], adjust_pvalues(np.array([0.01, 0.02])))
    assert np.isnan(q[1])
    np.testing.assert_allclose(q[3:], adjust_pvalues(np.array([0.5, 0.01, 0.9])))


def test_bh_controls_fdr_on_independent_tests():
    rng = np.random.default_rng(2)
    fdp = []
    for _ in range(200):
        m0, m1 = 900, 100
        p_null = rng.uniform(size=m0)
        p_alt = stats.norm.sf(rng.normal(loc=3.0, size=m1))
        q = adjust_pvalues(np.concatenate([p_null, p_alt]))
        disc = q <= 0.1
        fdp.append(disc[:m0].sum() / max(disc.sum(), 1))
    # E[FDP] = 0.1 * m0 / m = 0.09; mean of 200 runs within a few standard errors
    assert np.mean(fdp) <= 0.09 + 3 * np.std(fdp) / np.sqrt(200)


def test_adjust_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_pvalues(np.array([0.1, 1.5]))
    with pytest.raises(ValueError, match="method"):
        adjust_pvalues(np.array([0.1]), "holm")


def test_basic_and_bca_move_against_resampling_bias():
    # replicates shifted upward (like MI under resampling): the percentile interval misses the
    # estimate; the basic interval reflects the shift (centre 2 theta - median), and BC moves to
    # the lowest replicates
    rng = np.random.default_rng(3)
    theta = np.array([0.028])
    reps = (0.035 + 0.003 * rng.normal(size=2000))[None]
    assert np.quantile(reps, 0.025) > theta[0]
    lo, hi = basic_interval(theta, reps)
    assert (lo[0] + hi[0]) / 2 == pytest.approx(2 * theta[0] - np.median(reps), abs=3e-4)
    lo_bc, hi_bc = bca_interval(theta, reps)
    assert lo_bc[0] == pytest.approx(reps.min())
    assert hi_bc[0] < np.quantile(reps, 0.975)


def test_bca_coverage_on_exponential_means():
    # the classic skewed case: BCa of the mean of exponential samples covers ~95%
    rng = np.random.default_rng(4)
    n, b, reps_count = 40, 400, 300
    data = rng.exponential(size=(reps_count, n))
    theta = data.mean(axis=1)
    idx = rng.integers(0, n, size=(b, n))
    boot = data[:, idx].mean(axis=2)  # (reps, B)
    jack = (data.sum(axis=1, keepdims=True) - data) / (n - 1)  # (reps, n)
    lo, hi = bca_interval(theta, boot, acceleration=jackknife_acceleration(jack))
    cover = np.mean((lo <= 1.0) & (1.0 <= hi))
    assert 0.90 <= cover <= 0.98


def test_difference_z_test():
    z, p = difference_z_test(np.array([0.0, 0.2, 1.0]), np.array([0.1, 0.1, 0.0]))
    assert z[0] == 0 and p[0] == 1.0
    assert p[1] == pytest.approx(2 * stats.norm.sf(2.0))
    assert np.isnan(p[2])


def test_influence_acceleration_equals_the_leave_one_out_jackknife_of_a_mean():
    """For the sample mean the influence values are x_i - mean and the leave-one-out jackknife
    deviations are (x_i - mean) / (n - 1): both formulas give the same acceleration."""
    from distmi.kernels.significance import influence_acceleration

    rng = np.random.default_rng(5)
    x = rng.exponential(size=(3, 200))  # skewed: a clearly non-zero
    loo = (x.sum(axis=1, keepdims=True) - x) / (x.shape[1] - 1)
    a = influence_acceleration(x)
    np.testing.assert_allclose(a, jackknife_acceleration(loo), rtol=1e-10)
    assert (a > 0.005).all()
    assert influence_acceleration(np.ones((1, 10)))[0] == 0.0
