"""Sliced MI: closed-form Gaussian SMI, nulls, batching equals per-slice, k-sliced, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import distmi
from distmi.core.errors import InvalidInputError, InvalidParameterError, TooFewSamplesError
from distmi.estimators.sliced import SlicedMI
from distmi.kernels.slicing import (
    gaussian_mi,
    gaussian_smi_closed_form,
    project,
    random_frames,
)


def _gaussian_pair(d: int, rho: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """X, Y in R^d with covariance [[I, rho I], [rho I, I]]."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, rho * x + math.sqrt(1 - rho * rho) * rng.normal(size=(n, d))


def test_closed_form_series() -> None:
    assert gaussian_smi_closed_form(0.8, 1) == pytest.approx(-0.5 * math.log(1 - 0.64), rel=1e-12)
    # Monte Carlo of E[-1/2 log(1 - rho^2 t^2)], t = theta^T phi, for d = 5
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200_000, 5))
    b = rng.normal(size=(200_000, 5))
    t = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    mc = np.mean(-0.5 * np.log(1 - 0.64 * t * t))
    assert gaussian_smi_closed_form(0.8, 5) == pytest.approx(mc, abs=4e-4)


def test_frames_are_orthonormal_and_prefix_stable() -> None:
    f = random_frames(7, 300, 3, 11, "x")
    gram = np.einsum("mdi,mdj->mij", f, f)
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(3), gram.shape), atol=1e-12)
    assert np.array_equal(random_frames(7, 40, 3, 11, "x"), f[:40])
    assert not np.allclose(random_frames(7, 40, 3, 11, "y"), f[:40])
    # uniform directions: E[theta theta^T] = I / d
    u = random_frames(4, 20_000, 1, 1, "x")[..., 0]
    np.testing.assert_allclose(u.T @ u / len(u), np.eye(4) / 4, atol=0.01)


# Accuracy as a mean over 30 datasets per width: SMI of the Gaussian pair with rho = 0.9 is
# 0.331, 0.103 and 0.046 nats for d = 2, 5, 10. Measured at n = 1000 with 64 slices, one
# estimate has sd 0.029, 0.014 and 0.0075 nats (standard errors of the mean 0.0053, 0.0026,
# 0.0014) and the mean error is below 0.001. The tolerances are ~4 standard errors and at most
# a seventh of the truth, so an estimator returning 0 (or the d = 1 value) fails.
@pytest.mark.parametrize(("d", "tolerance"), [(2, 0.02), (5, 0.01), (10, 0.006)])
def test_gaussian_smi_mean_over_30_datasets(d: int, tolerance: float) -> None:
    truth = gaussian_smi_closed_form(0.9, d)
    values = []
    for seed in range(30):
        x, y = _gaussian_pair(d, 0.9, 1000, seed=100 * d + seed)
        r = distmi.mutual_information(x, y, method="sliced", n_slices=64, n_bootstrap=0,
                                      n_permutations=0, random_state=seed)
        values.append(r.value)
    assert abs(np.mean(values) - truth) < tolerance, (np.mean(values), truth)
    assert r.diagnostics["dx"] == d and r.diagnostics["n_slices"] == 64
    assert r.diagnostics["base"] == "ksg" and r.diagnostics["k"] == 3


def test_bootstrap_intervals_cover_the_smi() -> None:
    """Bootstrap intervals with fresh slices per replicate (Gaussian base, d = 4) cover the
    SMI in 85-99 of 100 datasets, and their std matches the spread of the estimates."""
    truth = gaussian_smi_closed_form(0.8, 4)
    covered, values, stds = 0, [], []
    for seed in range(100):
        x, y = _gaussian_pair(4, 0.8, 500, seed=1000 + seed)
        r = distmi.mutual_information(x, y, method="sliced", base="gaussian", n_slices=32,
                                      n_bootstrap=40, n_permutations=0, random_state=seed,
                                      resample="bootstrap")
        covered += r.ci[0] <= truth <= r.ci[1]
        values.append(r.value)
        stds.append(r.std)
    assert r.params["resample"] == "bootstrap"
    assert 85 <= covered <= 99, covered
    assert 0.67 < np.mean(stds) / np.std(values, ddof=1) < 1.5


def test_d1_equals_mi() -> None:
    x, y = _gaussian_pair(1, 0.8, 800, seed=3)
    s = distmi.mutual_information(x, y, method="sliced", n_slices=8, n_bootstrap=0)
    k = distmi.mutual_information(x, y, method="ksg", n_bootstrap=0)
    # every 1-D slice is (+-x, +-y); KSG's max-norm distances ignore the signs
    np.testing.assert_allclose(s.diagnostics["slice_values"], k.value, rtol=0, atol=1e-9)


def test_independence_mean_over_30_datasets_is_zero() -> None:
    """Independent X, Y in R^5: mean SMI and mean excess over the null within 0.005 nats of 0
    (sd per dataset ~0.006 at n = 1000 with 64 slices)."""
    values, excess = [], []
    for seed in range(30):
        rng = np.random.default_rng(4000 + seed)
        x, y = rng.normal(size=(1000, 5)), rng.normal(size=(1000, 5))
        r = distmi.mutual_information(x, y, method="sliced", n_slices=64, n_bootstrap=0,
                                      n_permutations=1, random_state=seed)
        values.append(r.value)
        excess.append(r.diagnostics["excess_over_null"])
    assert abs(np.mean(values)) < 0.005 and abs(np.mean(excess)) < 0.005


@pytest.mark.parametrize("slice_dim", [1, 2])
def test_batched_slices_equal_per_slice_estimates(slice_dim: int) -> None:
    x, y = _gaussian_pair(6, 0.6, 400, seed=5)
    m, seed = 30, 9
    r = distmi.mutual_information(x, y, method="sliced", n_slices=m, slice_dim=slice_dim,
                                  n_bootstrap=0, n_permutations=0, random_state=seed)
    fx = random_frames(6, m, slice_dim, seed, "x")
    fy = random_frames(6, m, slice_dim, seed, "y")
    one_at_a_time = [
        distmi.mutual_information(x @ fx[j], y @ fy[j], method="ksg", n_bootstrap=0,
                                  random_state=seed).value
        for j in range(m)
    ]
    assert np.array_equal(r.diagnostics["slice_values"], np.array(one_at_a_time))
    # a longer run starts with the same slices
    longer = distmi.mutual_information(x, y, method="sliced", n_slices=2 * m, slice_dim=slice_dim,
                                       n_bootstrap=0, n_permutations=0, random_state=seed)
    assert np.array_equal(longer.diagnostics["slice_values"][:m], r.diagnostics["slice_values"])


def test_gaussian_base_equals_per_slice_closed_form() -> None:
    x, y = _gaussian_pair(5, 0.7, 500, seed=6)
    r = distmi.mutual_information(x, y, method="sliced", base="gaussian", n_slices=50,
                                  n_bootstrap=0, n_permutations=0)
    fx, fy = random_frames(5, 50, 1, 0, "x"), random_frames(5, 50, 1, 0, "y")
    per_slice = [-0.5 * math.log(1 - np.corrcoef(x @ fx[j, :, 0], y @ fy[j, :, 0])[0, 1] ** 2)
                 for j in range(50)]
    np.testing.assert_allclose(r.diagnostics["slice_values"], per_slice, rtol=1e-9)


def test_k_sliced_mean_over_30_datasets_matches_monte_carlo_reference() -> None:
    """k-SMI of the Gaussian: I(A^T X; B^T Y) = -1/2 log det(I - rho^2 A^T B B^T A) per frame,
    averaged over 5000 frames: 0.105 nats for d = 6, k = 2, rho = 0.8. Mean over 30 datasets
    (n = 1000, 40 slices; sd per dataset ~0.02, standard error ~0.004) within 0.015."""
    d, k, rho = 6, 2, 0.8
    fa, fb = random_frames(d, 5000, k, 123, "a"), random_frames(d, 5000, k, 123, "b")
    c = np.einsum("mdi,mdj->mij", fa, fb)
    reference = np.mean(-0.5 * np.linalg.slogdet(np.eye(k) - rho**2 * c @ c.transpose(0, 2, 1))[1])
    values = []
    for seed in range(30):
        x, y = _gaussian_pair(d, rho, 1000, seed=7000 + seed)
        r = distmi.mutual_information(x, y, method="sliced", slice_dim=k, n_slices=40,
                                      n_bootstrap=0, n_permutations=0, random_state=seed)
        values.append(r.value)
    assert abs(np.mean(values) - reference) < 0.015, (np.mean(values), reference)
    assert r.diagnostics["slice_dim"] == 2


def test_categorical_y_slices_match_ross_per_slice() -> None:
    from sklearn.feature_selection import mutual_info_classif

    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, size=600)
    x = rng.normal(size=(600, 4)) + labels[:, None] * np.array([1.0, 0.5, 0.0, 0.0])
    r = distmi.mutual_information(x, labels, method="sliced", discrete_y=True, n_slices=12,
                                  n_bootstrap=6, random_state=2)
    fx = random_frames(4, 12, 1, 2, "x")
    for j in (0, 5, 11):
        proj = x @ fx[j, :, 0]
        proj = (proj - proj.mean()) / proj.std()
        ref = mutual_info_classif(proj[:, None], labels, n_neighbors=3, random_state=0)[0]
        # sklearn clips negative estimates to 0 and adds its own 1e-10 noise
        assert abs(max(r.diagnostics["slice_values"][j], 0.0) - ref) < 2e-3
    assert r.value > r.diagnostics["null_value"] + 3 * r.std
    g = distmi.mutual_information(x, labels, method="sliced", discrete_y=True, base="gaussian",
                                  n_slices=12, n_bootstrap=0, random_state=2)
    assert g.diagnostics["dy"] == 0 and g.value > 0


def test_max_statistic_and_permutation_null() -> None:
    x, y = _gaussian_pair(8, 0.5, 500, seed=9)
    mean = distmi.mutual_information(x, y, method="sliced", n_slices=40, n_bootstrap=0,
                                     n_permutations=2)
    top = distmi.mutual_information(x, y, method="sliced", n_slices=40, n_bootstrap=0,
                                    n_permutations=2, statistic="max")
    assert top.value == pytest.approx(mean.diagnostics["slice_values"].max())
    assert top.value > top.diagnostics["null_value"] > mean.diagnostics["null_value"]
    assert math.isnan(top.diagnostics["slice_se"])
    assert mean.std == mean.diagnostics["slice_se"] and mean.diagnostics["std_source"] == "slices"


def test_bootstrap_resampling_schemes() -> None:
    x, y = _gaussian_pair(3, 0.6, 400, seed=10)
    default = distmi.mutual_information(x, y, method="sliced", n_slices=20, n_bootstrap=6)
    groups = distmi.mutual_information(x, y, method="sliced", n_slices=20, n_bootstrap=6,
                                       resample="slice-groups")
    half = distmi.mutual_information(x, y, method="sliced", n_slices=20, n_bootstrap=6,
                                     resample="half")
    boot = distmi.mutual_information(x, y, method="sliced", n_slices=20, n_bootstrap=6,
                                     base="gaussian", resample="bootstrap")
    top = distmi.mutual_information(x, y, method="sliced", n_slices=20, n_bootstrap=6,
                                    statistic="max")
    assert default.params["resample"] == "slices" and default.diagnostics["replicates"].size == 0
    assert groups.params["resample"] == "slice-groups"
    assert half.params["resample"] == "half" and boot.params["resample"] == "bootstrap"
    assert top.params["resample"] == "half"
    assert groups.diagnostics["group_size"] == 3 and groups.diagnostics["replicates"].shape == (6,)
    for r in (default, groups, half, boot):
        assert r.ci[0] < r.value < r.ci[1] and r.std > 0
    assert default.value == groups.value == half.value  # the error bar never moves the estimate
    again = distmi.mutual_information(x, y, method="sliced", n_slices=20, n_bootstrap=6,
                                      resample="slice-groups")
    assert again.value == groups.value and again.ci == groups.ci
    with pytest.raises(InvalidParameterError, match="'max' statistic needs resample='half'"):
        distmi.mutual_information(x, y, method="sliced", n_slices=20, statistic="max",
                                  resample="slice-groups")


def test_gmm_base_runs_batched_pairs() -> None:
    pytest.importorskip("distmi.estimators.gmm_methods")
    x, y = _gaussian_pair(4, 0.7, 300, seed=11)
    r = distmi.mutual_information(x, y, method="sliced", base="gmm", n_slices=4, n_bootstrap=0,
                                  n_permutations=0, gmm_params={"n_components": 1, "n_inits": 1})
    g = distmi.mutual_information(x, y, method="sliced", base="gaussian", n_slices=4,
                                  n_bootstrap=0, n_permutations=0)
    # one Gaussian component is the Gaussian closed form up to the fit's ridge/integration
    np.testing.assert_allclose(r.diagnostics["slice_values"], g.diagnostics["slice_values"],
                               atol=5e-3)


def test_sklearn_style_class() -> None:
    x, y = _gaussian_pair(3, 0.7, 300, seed=12)
    est = SlicedMI(n_slices=10, n_bootstrap=3, n_permutations=1, base="gaussian")
    assert est.get_params()["n_permutations"] == 1
    est.fit(x, y)
    assert est.mi_ > est.null_ and est.slice_values_.shape == (10,)
    assert est.estimate(x, y).value == est.mi_


def test_projection_is_one_product() -> None:
    rng = np.random.default_rng(13)
    x, f = rng.normal(size=(50, 4)), random_frames(4, 7, 2, 0, "x")
    p = project(x, f)
    assert p.shape == (7, 50, 2)
    np.testing.assert_allclose(p[3], x @ f[3], atol=1e-12)
    assert gaussian_mi(p[:, :, :1], p[:, :, 1:]).shape == (7,)


def test_bad_input_messages() -> None:
    x, y = _gaussian_pair(3, 0.5, 50, seed=0)
    with pytest.raises(InvalidParameterError, match="n_slices: Input should be greater than or"):
        distmi.mutual_information(x, y, method="sliced", n_slices=0)
    with pytest.raises(InvalidParameterError, match="slice_dim=4 exceeds the 3 columns of x"):
        distmi.mutual_information(x, y, method="sliced", slice_dim=4)
    with pytest.raises(InvalidParameterError, match="base='gmm' supports 1-D slices only"):
        distmi.mutual_information(x, y, method="sliced", base="gmm", slice_dim=2)
    with pytest.raises(InvalidParameterError, match="unknown sliced-MI parameter 'slices'"):
        distmi.mutual_information(x, y, method="sliced", slices=10)
    with pytest.raises(TooFewSamplesError, match="k=50 neighbours"):
        distmi.mutual_information(x, y, method="sliced", k=50, n_bootstrap=0)
    with pytest.raises(InvalidInputError, match="empty"):
        distmi.mutual_information(np.empty((50, 0)), y, method="sliced")
    table = distmi.pairwise_mi(x, y, method="sliced", pairs=[(0, 1)], n_bootstrap=0, n_slices=3)
    assert table.loc[0, "method"] == "sliced"
