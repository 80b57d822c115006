"""GMM-MI against closed-form ground truth, coverage of its intervals, determinism, batching.

Tolerances come from the estimator's own error bar: an estimate must lie within
``Z * std`` of the truth (Z = 4 unless stated; a 4-sigma miss has probability ~6e-5 per test
if the bootstrap std is right), plus the documented 1e-3 nat of integration/EM tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import distmi
from distmi.core import errors
from tests.gmm_truth import (
    categorical_truth,
    gamma_exponential,
    gaussian_mi_from_cov,
    gaussian_pair,
)

Z = 4.0
SLACK = 1e-3


def within(result, truth, z=Z):
    return abs(result.value - truth) <= z * result.std + SLACK


@pytest.mark.parametrize("n", [500, 5000])
@pytest.mark.parametrize("rho", [0.0, 0.3, 0.6, 0.9])
def test_bivariate_gaussian(rho, n):
    rng = np.random.default_rng(1000 + int(rho * 10) + n)
    x, y, truth = gaussian_pair(rng, n, rho)
    r = distmi.mutual_information(x, y, n_bootstrap=50, random_state=1)
    assert r.unit == "nat" and r.n_samples == n and r.method == "gmm"
    assert np.isfinite(r.std) and r.std > 0
    assert r.ci[0] <= r.value <= r.ci[1] or rho == 0.0
    assert within(r, truth), (r, truth)


def test_multivariate_gaussian_2x2():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + 2 * np.eye(4)
    d = np.sqrt(np.diag(cov))
    cov = cov / d[:, None] / d[None, :]
    z = rng.multivariate_normal(np.zeros(4), cov, size=4000)
    truth = gaussian_mi_from_cov(cov, 2)
    r = distmi.mutual_information(z[:, :2], z[:, 2:], n_bootstrap=40, random_state=0)
    assert r.diagnostics["integration"] == "quadrature"
    assert within(r, truth), (r, truth)


@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
def test_gamma_exponential(alpha):
    rng = np.random.default_rng(int(alpha * 100))
    lx, ly, truth = gamma_exponential(rng, 3000, alpha)
    r = distmi.mutual_information(lx, ly, n_bootstrap=40, random_state=0)
    assert r.diagnostics["n_components"] >= 1
    assert within(r, truth), (r, truth)


@pytest.mark.parametrize("p1", [0.5, 0.1])
def test_categorical_uses_empirical_prior(p1):
    rng = np.random.default_rng(int(p1 * 1000))
    n = 5000
    y = (rng.random(n) < p1).astype(int)
    x = rng.normal(2.0 * y, 1.0)
    truth = categorical_truth(p1)
    r = distmi.mutual_information(x, y, discrete_y=True, n_bootstrap=50, random_state=0)
    assert r.diagnostics["class_prior"][1] == pytest.approx(y.mean())
    assert within(r, truth), (r, truth)
    # the accuracy target: within 0.02 nats where a uniform-prior estimator is off by 0.2
    assert abs(r.value - truth) < 0.02


def test_categorical_string_labels_match_integer_labels():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=900)
    x = rng.normal(y.astype(float), 1.0)
    a = distmi.mutual_information(x, y, discrete_y=True, n_bootstrap=5)
    b = distmi.mutual_information(x, np.array(["a", "b", "c"])[y], discrete_y=True, n_bootstrap=5)
    assert a.value == b.value and a.std == b.std


def test_conditional_gaussian():
    rng = np.random.default_rng(11)
    n = 4000
    z = rng.normal(size=n)
    x = z + rng.normal(size=n)
    y = 0.8 * z + 0.6 * x + rng.normal(size=n)
    cov = np.cov(np.column_stack([x, y, z]).T, bias=False)
    # population covariance of (x, y, z)
    cx = np.array([[2.0, 0.8 + 0.6 * 2.0, 1.0],
                   [0.8 + 0.6 * 2.0, 0.64 + 0.36 * 2 + 2 * 0.8 * 0.6 + 1.0, 0.8 + 0.6],
                   [1.0, 0.8 + 0.6, 1.0]])
    np.testing.assert_allclose(cov, cx, atol=0.15)
    prec = np.linalg.inv(cx)
    partial = -prec[0, 1] / math.sqrt(prec[0, 0] * prec[1, 1])
    truth = -0.5 * math.log(1 - partial**2)
    est = distmi.GMMMI(n_bootstrap=40, random_state=0).fit(x, y, z)
    assert abs(est.mi_ - truth) <= Z * est.mi_std_ + SLACK, (est.mi_, est.mi_std_, truth)
    r = distmi.mutual_information(x, y, z=z, n_bootstrap=40, random_state=0)
    assert r.value == est.mi_
    # conditioning matters here: I(X;Y) is much larger than I(X;Y|Z)
    assert distmi.mutual_information(x, y, n_bootstrap=0).value > truth + 0.1


def test_coverage_over_independent_datasets():
    """95% intervals cover the truth in >= 85% of 40 independent datasets (one batched call).

    With true 95% coverage, 34 or fewer hits out of 40 has probability ~0.05; the check fails
    for intervals that are too narrow or shifted (e.g. ignoring the sampling spread).
    """
    rng = np.random.default_rng(2024)
    n, m, rho = 1000, 40, 0.6
    X = rng.normal(size=(n, m))
    Y = rho * X + math.sqrt(1 - rho**2) * rng.normal(size=(n, m))
    truth = -0.5 * math.log(1 - rho**2)
    table = distmi.pairwise_mi(X, Y, pairs=[(i, i) for i in range(m)], n_bootstrap=100)
    covered = ((table.ci_low <= truth) & (truth <= table.ci_high)).mean()
    assert covered >= 0.85, table[["estimate", "ci_low", "ci_high"]]
    # the bootstrap std matches the spread of estimates across datasets (within a factor 1.5)
    assert 1 / 1.5 < table.estimate.std(ddof=1) / table["std"].mean() < 1.5


def test_estimator_api_and_determinism():
    rng = np.random.default_rng(5)
    x, y, _ = gaussian_pair(rng, 1500, 0.5)
    est = distmi.GMMMI(n_bootstrap=20, random_state=3)
    assert est.get_params()["n_folds"] == 2
    est.fit(x, y)
    assert est.n_components_ >= 1 and isinstance(est.converged_, bool)
    assert est.bootstrap_.shape == (20,)
    assert est.ci_ == est.result_.ci and est.mi_std_ == pytest.approx(np.std(est.bootstrap_, ddof=1))
    again = distmi.GMMMI(n_bootstrap=20, random_state=3).fit(x, y)
    assert again.mi_ == est.mi_ and np.array_equal(again.bootstrap_, est.bootstrap_)
    other = distmi.GMMMI(n_bootstrap=20, random_state=4).fit(x, y)
    assert not np.array_equal(other.bootstrap_, est.bootstrap_)
    assert "n_bootstrap=20" in repr(est)


@pytest.mark.parametrize("select", ["aic", "bic"])
def test_information_criteria_selection(select):
    rng = np.random.default_rng(9)
    lx, ly, truth = gamma_exponential(rng, 2000, 1.0)
    r = distmi.mutual_information(lx, ly, select=select, n_bootstrap=30)
    assert len(r.diagnostics["selection_scores"]) >= 2
    assert within(r, truth), (r, truth)


def test_fixed_components_and_random_init():
    rng = np.random.default_rng(10)
    x, y, truth = gaussian_pair(rng, 2000, 0.6)
    r = distmi.mutual_information(x, y, n_components=2, init="random", n_bootstrap=30)
    assert r.diagnostics["n_components"] == 2
    assert within(r, truth)


def test_mc_integration_agrees_with_quadrature():
    rng = np.random.default_rng(12)
    lx, ly, _ = gamma_exponential(rng, 2000, 0.5)
    q = distmi.mutual_information(lx, ly, n_bootstrap=0, integration="quadrature")
    mc = distmi.mutual_information(lx, ly, n_bootstrap=0, integration="mc", mc_samples=200_000)
    # MC standard error at 2e5 samples is < 0.005 nat here
    assert abs(q.value - mc.value) < 0.01
    assert math.isnan(q.std)


def test_pairwise_rows_equal_single_estimates():
    rng = np.random.default_rng(13)
    n = 800
    X = rng.normal(size=(n, 3))
    Y = np.column_stack([X[:, 0] + rng.normal(size=n), np.tanh(X[:, 1]) + 0.3 * rng.normal(size=n)])
    table = distmi.pairwise_mi(X, Y, n_bootstrap=10, random_state=7)
    assert len(table) == 6 and list(table.x_index) == [0, 0, 1, 1, 2, 2]
    for row in table.itertuples():
        single = distmi.mutual_information(X[:, row.x_index], Y[:, row.y_index],
                                           n_bootstrap=10, random_state=7)
        assert row.n_components == single.diagnostics["n_components"]
        assert row.estimate == pytest.approx(single.value, rel=1e-9, abs=1e-12)
        assert row.std == pytest.approx(single.std, rel=1e-9, abs=1e-12)
    picked = distmi.pairwise_mi(X, Y, pairs=[(1, 1)], n_bootstrap=10, random_state=7)
    assert picked.estimate[0] == pytest.approx(table.estimate[3], rel=1e-9)


def test_pairwise_with_labels():
    rng = np.random.default_rng(14)
    y = rng.integers(0, 2, size=1200)
    X = np.column_stack([rng.normal(2.0 * y, 1.0), rng.normal(size=1200)])
    table = distmi.pairwise_mi(X, y, discrete_y=True, n_bootstrap=10)
    assert list(table.y_index) == [0, 0]
    assert table.estimate[0] > 0.3 and table.estimate[1] < table.ci_high[1] + 0.01
    single = distmi.mutual_information(X[:, 0], y, discrete_y=True, n_bootstrap=10)
    assert table.estimate[0] == pytest.approx(single.value, rel=1e-9)


def test_survives_duplicated_rows():
    """Heavily duplicated data (a singular covariance for the reference) never crashes."""
    rng = np.random.default_rng(15)
    base = rng.normal(size=(60, 2))
    data = np.repeat(base, 20, axis=0)
    r = distmi.mutual_information(data[:, 0], data[:, 1], n_bootstrap=20, max_components=6)
    assert np.isfinite(r.value) and np.isfinite(r.std)


# ---------------------------------------------------------------- bad input


def _xy(n=200):
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    return x, x + rng.normal(size=n)


def test_error_nan():
    x, y = _xy()
    x[5] = np.nan
    with pytest.raises(errors.NonFiniteInputError, match=r"x contains 1 NaN.*index \(5, 0\).*impute"):
        distmi.mutual_information(x, y)


def test_error_inf_in_y():
    x, y = _xy()
    y[3] = -np.inf
    with pytest.raises(errors.NonFiniteInputError, match="y contains 0 NaN and 1 Inf"):
        distmi.mutual_information(x, y)


def test_error_constant_column():
    x, _ = _xy()
    with pytest.raises(errors.ConstantColumnError, match="y column 0 is constant"):
        distmi.mutual_information(x, np.ones_like(x))


def test_error_too_few_samples():
    x, y = _xy(9)
    with pytest.raises(errors.TooFewSamplesError, match=r"at least 12 samples, got 9.*n_folds"):
        distmi.mutual_information(x, y)


def test_error_too_few_samples_in_a_class():
    x, _ = _xy(100)
    labels = np.zeros(100, dtype=int)
    labels[:3] = 1
    with pytest.raises(errors.TooFewSamplesError, match="class 1 has 3 samples"):
        distmi.mutual_information(x, labels, discrete_y=True)


def test_error_length_mismatch():
    x, y = _xy()
    with pytest.raises(errors.LengthMismatchError, match="x has 200, y has 199 rows"):
        distmi.mutual_information(x, y[:-1])


def test_error_non_numeric():
    x, _ = _xy(4)
    with pytest.raises(errors.NonNumericInputError, match="x must be numeric"):
        distmi.mutual_information(np.array(["a", "b", "c", "d"]), x)


def test_error_single_class():
    x, _ = _xy()
    with pytest.raises(errors.SingleClassError, match="single class"):
        distmi.mutual_information(x, np.zeros(200, dtype=int), discrete_y=True)


def test_error_unknown_method():
    x, y = _xy()
    with pytest.raises(errors.UnknownMethodError, match="available methods are"):
        distmi.mutual_information(x, y, method="nope")


def test_error_unknown_and_bad_parameters():
    x, y = _xy()
    with pytest.raises(errors.InvalidParameterError, match="unknown GMM-MI parameter 'n_fold'"):
        distmi.mutual_information(x, y, n_fold=3)
    with pytest.raises(errors.InvalidParameterError, match="n_folds"):
        distmi.mutual_information(x, y, n_folds=1)
    with pytest.raises(errors.InvalidParameterError, match="select"):
        distmi.mutual_information(x, y, select="waic")
    with pytest.raises(errors.InvalidParameterError, match="n_bootstrap must be"):
        distmi.mutual_information(x, y, n_bootstrap=-1)
    with pytest.raises(errors.InvalidParameterError, match=r"pair .* out of range"):
        distmi.pairwise_mi(np.column_stack([x, y]), np.column_stack([x, y]), pairs=[(0, 5)])
    with pytest.raises(errors.InvalidParameterError, match=r"device='cuda' was requested"):
        if __import__("torch").cuda.is_available():
            pytest.skip("CUDA present")
        distmi.mutual_information(x, y, device="cuda")


def test_jitter_dequantises_point_masses():
    """A ReLU-like unit (40% exact zeros) and a rounded target: finite, sane, batched = single."""
    rng = np.random.default_rng(16)
    n = 1500
    h = np.maximum(rng.normal(size=n), 0.0)
    t = np.round(2 * h + rng.normal(size=n), 1)
    r = distmi.mutual_information(h, t, n_bootstrap=20, jitter=0.01, max_components=6)
    assert r.params["jitter"] == 0.01
    assert 0.0 < r.ci[0] <= r.value <= r.ci[1] < math.log(n)
    # dequantisation noise only removes information (data-processing inequality)
    heavier = distmi.mutual_information(h, t, n_bootstrap=0, jitter=0.5, max_components=6)
    assert heavier.value < r.value
    table = distmi.pairwise_mi(np.c_[h, h], np.c_[t], n_bootstrap=20, jitter=0.01, max_components=6)
    assert table.estimate[0] == pytest.approx(r.value, rel=1e-9)
