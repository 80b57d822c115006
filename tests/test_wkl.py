"""WKL: weights, kernels, Gaussian entropies and MI in d = 1..10, agreement with KL/KSG, sliced WKL,
the sliced error bar's coverage, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

import distmi
from distmi.core.errors import InvalidInputError, InvalidParameterError, TooFewSamplesError
from distmi.estimators.wkl import wkl_entropy, wkl_entropy_batch
from distmi.kernels.slicing import gaussian_smi_closed_form, random_frames
from distmi.kernels.wkl import (
    bias_matrix,
    gaussian_entropy,
    mean_log_knn_1d,
    mean_log_knn_1d_sorted_numpy,
    mean_log_knn_2d,
    mean_log_knn_nd,
    poisson_log_covariance,
    wkl_support,
    wkl_weights,
)

# Bias bound of the default WKL entropy at n = 2000 (docs/infoplane.md, "accuracy"): the
# measured |mean error| on isotropic and correlated Gaussians, rounded up.
STATED_ENTROPY_BIAS = {1: 0.01, 2: 0.02, 3: 0.05, 4: 0.05, 5: 0.1, 6: 0.15, 7: 0.2, 8: 0.2,
                       9: 0.25, 10: 0.35}


# ---- weights ---------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["paper", "min-variance"])
@pytest.mark.parametrize(("d", "k"), [(4, 5), (5, 10), (6, 12), (8, 16), (10, 20), (12, 24)])
def test_weights_solve_the_constraints(scheme: str, d: int, k: int) -> None:
    w = wkl_weights(d, k, scheme=scheme)
    js = np.arange(1, k + 1)
    a = bias_matrix(d, js, d // 4)
    assert w.sum() == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(a[1:] @ w, 0.0, atol=1e-8 * np.abs(a).max() * np.abs(w).max())
    if scheme == "paper":  # the paper's support only
        off = np.setdiff1d(js, wkl_support(d, k))
        assert np.all(w[off - 1] == 0.0)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_low_dimension_is_unweighted(d: int) -> None:
    for scheme in ("paper", "min-variance"):
        w = wkl_weights(d, 7, scheme=scheme)
        assert w[-1] == 1.0 and np.count_nonzero(w) == 1


def test_support_and_min_variance_optimality() -> None:
    assert wkl_support(5, 10).tolist() == [2, 4, 6, 8, 10]
    assert wkl_support(10, 5).tolist() == [1, 2, 3, 4, 5]
    # min-variance weights have the smallest w^T C w among constrained solutions
    d, k = 8, 16
    js = np.arange(1, k + 1)
    c = poisson_log_covariance(js)
    mv, paper = wkl_weights(d, k), wkl_weights(d, k, scheme="paper")
    assert mv @ c @ mv < paper @ c @ paper
    a = bias_matrix(d, js, d // 4)
    null = np.linalg.svd(a)[2][a.shape[0]:]  # directions keeping the constraints
    rng = np.random.default_rng(0)
    for _ in range(20):
        other = mv + null.T @ rng.normal(scale=0.1, size=len(null))
        assert mv @ c @ mv <= other @ c @ other + 1e-12
    assert np.array_equal(wkl_weights(8, 16, orders=0), np.eye(16)[-1])


def test_weights_bad_arguments() -> None:
    with pytest.raises(ValueError, match="use k >= "):
        wkl_weights(12, 2, scheme="paper")
    with pytest.raises(ValueError, match="scheme must be one of"):
        wkl_weights(4, 5, scheme="best")


# ---- kernels ---------------------------------------------------------------------------------

def _tree_mean_logs(z: np.ndarray, orders: np.ndarray, p: float) -> np.ndarray:
    dist = cKDTree(z).query(z, k=orders + 1, p=p)[0]
    return np.log(dist).mean(axis=0)


@pytest.mark.parametrize("metric", ["chebyshev", "euclidean"])
def test_kernels_equal_a_kd_tree(metric: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 700))
    y = 0.7 * x + rng.normal(size=(4, 700))
    y[1] = x[1] ** 2 + 0.1 * rng.normal(size=700)  # a non-monotone row
    orders = np.array([1, 2, 5, 25])
    p = np.inf if metric == "chebyshev" else 2.0
    one = mean_log_knn_1d(x, orders)
    two = mean_log_knn_2d(x, y, orders, metric)
    for b in range(4):
        np.testing.assert_allclose(one[b], _tree_mean_logs(x[b, :, None], orders, p), atol=1e-12)
        np.testing.assert_allclose(two[b], _tree_mean_logs(np.stack([x[b], y[b]], 1), orders, p),
                                   atol=1e-12)
    np.testing.assert_allclose(mean_log_knn_1d_sorted_numpy(np.sort(x, 1), orders), one,
                               atol=1e-12)
    np.testing.assert_allclose(mean_log_knn_nd(np.stack([x, y], -1), orders, metric,
                                               backend="brute"), two, atol=1e-12)
    # per-point sums agree with the means, and a row gives the same alone or in the batch
    w = np.array([0.1, 0.2, 0.3, 0.4])
    ml, points = mean_log_knn_2d(x, y, orders, metric, weights=w)
    np.testing.assert_allclose(points.mean(axis=1), ml @ w, atol=1e-12)
    np.testing.assert_array_equal(mean_log_knn_2d(x[2:3], y[2:3], orders, metric), two[2:3])


# ---- entropy against closed form -------------------------------------------------------------

@pytest.mark.parametrize("d", list(range(1, 11)))
def test_gaussian_entropy_d1_to_d10(d: int) -> None:
    """Mean over 12 data sets (one batched call) within the stated bias + 4 standard errors."""
    rng = np.random.default_rng(d)
    g, n = 12, 2000
    a = np.eye(d) + 0.3 * rng.normal(size=(d, d)) / math.sqrt(d)  # correlated coordinates
    z = rng.normal(size=(g, n, d)) @ a.T
    values = wkl_entropy_batch(z)
    error = values.mean() - gaussian_entropy(a @ a.T)
    se = values.std(ddof=1) / math.sqrt(g)
    assert abs(error) < STATED_ENTROPY_BIAS[d] + 4 * se, (d, error, se)


def test_unweighted_equals_kozachenko_leonenko() -> None:
    from distmi.estimators.ksg import kl_entropy

    rng = np.random.default_rng(3)
    for d, metric in ((1, "chebyshev"), (3, "euclidean"), (5, "chebyshev")):
        x = rng.normal(size=(800, d))
        ours = wkl_entropy(x, k=4, bias_orders=0, metric=metric, jitter=0)
        assert ours == pytest.approx(kl_entropy(x, k=4, metric=metric, jitter=0), abs=1e-10)
    x = rng.normal(size=(3000, 2))
    assert abs(wkl_entropy(x) - math.log(2 * math.pi * math.e)) < 0.05


# ---- MI ----------------------------------------------------------------------------------------

def _gaussian_mi_data(g: int, n: int, dx: int, dy: int, rho: float, seed: int):
    """X in R^dx, Y in R^dy, the first min(dx, dy) coordinates correlated with rho."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(g, n, dx))
    y = rng.normal(size=(g, n, dy))
    k = min(dx, dy)
    y[..., :k] = rho * x[..., :k] + math.sqrt(1 - rho * rho) * y[..., :k]
    return x, y, -0.5 * k * math.log(1 - rho * rho)


@pytest.mark.parametrize(("dx", "dy", "bound"), [(1, 1, 0.02), (2, 1, 0.04), (2, 2, 0.06),
                                                 (3, 2, 0.1), (3, 3, 0.15), (5, 5, 0.2)])
def test_gaussian_mi_within_stated_error(dx: int, dy: int, bound: float) -> None:
    """Joint dimension up to 10; the mean of 8 data sets within bound + 4 standard errors."""
    g, n = 8, 2000
    x, y, truth = _gaussian_mi_data(g, n, dx, dy, 0.6, seed=10 * dx + dy)
    values = np.array([distmi.mutual_information(x[i], y[i], method="wkl", n_bootstrap=0,
                                                 random_state=i).value for i in range(g)])
    se = values.std(ddof=1) / math.sqrt(g)
    assert abs(values.mean() - truth) < bound + 4 * se, (values.mean(), truth, se)


def test_wkl_agrees_with_ksg_on_the_same_data() -> None:
    """1-D pairs (batched): over 60 pairs, WKL's mean is within its stated bias (+0.01 to +0.015
    nats at n = 2000 in 1-D: the joint 2-D term's O(k/n) bias, docs/infoplane.md) of KSG's and
    of the truth."""
    rng = np.random.default_rng(5)
    n, p = 2000, 60
    x = rng.normal(size=(n, p))
    y = 0.5 * x + rng.normal(size=(n, p))
    pairs = [(i, i) for i in range(p)]
    wkl = distmi.pairwise_mi(x, y, method="wkl", pairs=pairs, n_bootstrap=0)["estimate"]
    ksg = distmi.pairwise_mi(x, y, method="ksg", pairs=pairs, n_bootstrap=0)["estimate"]
    truth = -0.5 * math.log(1 - 0.2)
    diff = wkl.to_numpy() - ksg.to_numpy()
    assert abs(diff.mean()) < 0.015 + 4 * diff.std(ddof=1) / math.sqrt(p)
    assert abs(wkl.mean() - truth) < 0.015 + 4 * wkl.std() / math.sqrt(p)
    assert abs(ksg.mean() - truth) < 4 * ksg.std() / math.sqrt(p) + 0.002
    # pair p equals the one-at-a-time estimate
    one = distmi.mutual_information(x[:, 3], y[:, 3], method="wkl", n_bootstrap=0)
    assert one.value == pytest.approx(wkl[3], abs=1e-12)


def test_labels_match_ksg_and_error_bars_cover() -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 3, size=3000)
    x = rng.normal(loc=labels.astype(float), size=3000)
    w = distmi.mutual_information(x, labels, method="wkl", discrete_y=True, n_bootstrap=20)
    k = distmi.mutual_information(x, labels, method="ksg", discrete_y=True, n_bootstrap=20)
    assert abs(w.value - k.value) < 2 * math.hypot(w.std, k.std)
    assert w.ci[0] < w.value < w.ci[1] and w.diagnostics["error_method"].startswith("half")
    est = distmi.estimators.wkl.WKL(discrete_y=True, n_bootstrap=5).fit(x, labels)
    assert est.mi_ == pytest.approx(distmi.mutual_information(
        x, labels, method="wkl", discrete_y=True, n_bootstrap=5).value)


# ---- sliced WKL --------------------------------------------------------------------------------

def test_sliced_wkl_matches_closed_form_and_per_slice_values() -> None:
    rng = np.random.default_rng(7)
    d, rho, n, m = 4, 0.8, 1500, 60
    x = rng.normal(size=(n, d))
    y = rho * x + math.sqrt(1 - rho * rho) * rng.normal(size=(n, d))
    r = distmi.mutual_information(x, y, method="sliced", base="wkl", n_slices=m, n_bootstrap=1,
                                  random_state=4)
    assert r.params["resample"] == "slices" and r.diagnostics["k"] == 5
    assert abs(r.value - gaussian_smi_closed_form(rho, d)) < 3 * r.std + 0.01
    fx, fy = random_frames(d, m, 1, 4, "x"), random_frames(d, m, 1, 4, "y")
    for j in (0, 17, 59):
        one = distmi.mutual_information(x @ fx[j], y @ fy[j], method="wkl", k=5, n_bootstrap=0,
                                        random_state=4)
        assert r.diagnostics["slice_values"][j] == pytest.approx(one.value, abs=1e-9)


def test_sliced_wkl_labels() -> None:
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, size=1200)
    x = rng.normal(size=(1200, 5))
    x[:, 0] += labels
    r = distmi.mutual_information(x, labels, method="sliced", base="wkl", discrete_y=True,
                                  n_slices=80, n_bootstrap=1, n_permutations=2)
    assert r.value > r.diagnostics["null_value"] + 4 * r.std
    assert abs(r.diagnostics["null_value"]) < 0.02


def test_sliced_error_bar_covers() -> None:
    """The 'slices' error bar (free, from per-point terms): over 80 data sets the reported std
    matches the spread of the estimates and the 95% intervals cover their mean."""
    d, rho, n, m, reps = 4, 0.5, 400, 40, 80
    values, stds, inside = [], [], 0
    results = []
    for r in range(reps):
        rng = np.random.default_rng([11, r])
        x = rng.normal(size=(n, d))
        y = rho * x + math.sqrt(1 - rho * rho) * rng.normal(size=(n, d))
        res = distmi.mutual_information(x, y, method="sliced", base="wkl", n_slices=m,
                                        n_bootstrap=1, n_permutations=0, random_state=r)
        results.append(res)
        values.append(res.value)
        stds.append(res.std)
    mean = np.mean(values)
    inside = sum(res.ci[0] <= mean <= res.ci[1] for res in results)
    ratio = math.sqrt(np.mean(np.square(stds))) / np.std(values, ddof=1)
    assert 0.75 < ratio < 1.35, ratio
    assert 0.85 <= inside / reps <= 1.0


# ---- bad input ---------------------------------------------------------------------------------

def test_bad_input_messages() -> None:
    rng = np.random.default_rng(9)
    x = np.repeat(rng.normal(size=50), 8)  # every value 8 times
    y = rng.normal(size=400)
    with pytest.raises(InvalidInputError, match=r"exact duplicates .* pass jitter > 0"):
        distmi.mutual_information(x, y, method="wkl", jitter=0, n_bootstrap=0)
    with pytest.raises(InvalidParameterError, match="unknown WKL parameter 'kk'"):
        distmi.mutual_information(x, y, method="wkl", kk=3)
    with pytest.raises(InvalidParameterError, match=r"WKL weights for d=6 with k=2: .* use k >= 4. Raise k"):
        distmi.mutual_information(rng.normal(size=(400, 6)), rng.normal(size=(400, 6)),
                                  method="wkl", k=2, weights="paper", bias_orders=3,
                                  n_bootstrap=0)
    with pytest.raises(TooFewSamplesError, match="half-samples of 2 rows"):
        distmi.mutual_information(y[:5], y[:5] + 1, method="wkl", n_bootstrap=3)
    with pytest.raises(TooFewSamplesError, match="every class has a single sample"):
        distmi.mutual_information(y[:4], np.arange(4), method="wkl", discrete_y=True,
                                  n_bootstrap=0)
    with pytest.raises(InvalidInputError, match=r"shape \(G, n, d\)"):
        wkl_entropy_batch(np.zeros((2, 2, 2, 2)))
    with pytest.raises(InvalidParameterError, match="resample='slices' needs per-point terms"):
        distmi.mutual_information(rng.normal(size=(100, 3)), rng.normal(size=(100, 3)),
                                  method="sliced", base="gaussian", resample="slices")


def test_single_large_order_kernel_is_exact() -> None:
    """k >= 8 alone takes the threshold-and-count kernel; it must equal the k-d tree."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=(3, 900))
    y = np.where(rng.random((3, 900)) < 0.5, x, -x) + 0.2 * rng.normal(size=(3, 900))
    x[2, :300] = 0.0  # an atom: many ties at distance 0 in x
    x[2] += 1e-10 * rng.normal(size=900)
    for metric, p in (("chebyshev", np.inf), ("euclidean", 2.0)):
        ml, pts = mean_log_knn_2d(x, y, np.array([25]), metric, weights=np.array([1.0]))
        for b in range(3):
            expect = _tree_mean_logs(np.stack([x[b], y[b]], 1), np.array([25]), p)
            np.testing.assert_allclose(ml[b], expect, atol=1e-10)
        np.testing.assert_allclose(pts.mean(axis=1), ml[:, 0], atol=1e-12)


def test_counting_selection_equals_a_sort() -> None:
    """The k-th smallest by bracket counting, whatever the guess, with ties and zeros."""
    from distmi.kernels.wkl_select import kth_by_counting

    rng = np.random.default_rng(5)
    scratch = np.empty(400)
    for trial in range(300):
        m = int(rng.integers(1, 300))
        a = rng.random(m) ** 0.5
        if trial % 3 == 1:
            a = np.round(a * 7) / 8  # heavy ties
        if trial % 3 == 2:
            a[: m // 2] = 0.0  # duplicate points: zero distances
        hi = float(a.max()) + 1e-3
        kth = int(rng.integers(0, m))
        guess = float(rng.choice([-1.0, 0.0, hi, 2 * hi, np.sort(a)[kth], rng.random() * hi]))
        expect = np.sort(a)[kth]
        if trial % 2:  # candidates at or beyond the threshold are never chosen
            a = rng.permutation(np.concatenate([a, hi + rng.random(50), [hi, hi]]))
        before = a.copy()
        got = kth_by_counting(a, a.size, kth, hi, m, guess, scratch)
        assert got == expect, (trial, m, kth, guess)
        np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize("k", [8, 12, 25])
def test_counting_kernel_with_duplicate_points(k: int) -> None:
    """Repeated points (zero distances among the candidates) and a far outlier: still the k-d
    tree's distances; a point with k copies has distance 0 (mean -inf), and the next points
    still get a positive threshold."""
    rng = np.random.default_rng(k)
    x = rng.normal(size=(3, 600))
    y = rng.normal(size=(3, 600))
    x[0, 100:106] = x[0, 99]  # 7 copies of one point: fewer than k, distances stay positive
    y[0, 100:106] = y[0, 99]
    x[1, 0] = 40.0  # an outlier whose k-th distance is far beyond its neighbour's
    x[2, 200:240] = x[2, 199]  # 41 copies: their k-th distance is 0
    y[2, 200:240] = y[2, 199]
    for metric, p in (("chebyshev", np.inf), ("euclidean", 2.0)):
        ml, pts = mean_log_knn_2d(x, y, np.array([k]), metric, weights=np.array([1.0]))
        for b in range(3):
            z = np.stack([x[b], y[b]], 1)
            with np.errstate(divide="ignore"):
                expect = np.log(cKDTree(z).query(z, k=k + 1, p=p)[0][:, k])
            np.testing.assert_array_equal(np.isinf(pts[b]), np.isinf(expect))
            finite = np.isfinite(expect)
            np.testing.assert_allclose(pts[b, finite], expect[finite], atol=1e-12)
        assert ml[2, 0] == -np.inf and np.isinf(pts[2]).sum() == 41


def test_default_orders_keep_weights_bounded() -> None:
    from distmi.estimators.wkl_config import MAX_AUTO_NORM, WKLConfig

    cfg = WKLConfig()
    assert cfg.plan(10, 3000).orders.size == 20  # floor(10/4) = 2 terms cancelled, norm ~23
    for d in (16, 30, 60, 200):
        plan = cfg.plan(d, 3000)
        assert plan.weight_norm <= MAX_AUTO_NORM
    explicit = WKLConfig(bias_orders=d // 4 if (d := 16) else 0, weights="paper").plan(16, 3000)
    assert explicit.weight_norm > MAX_AUTO_NORM  # as asked, however large
    rng = np.random.default_rng(13)
    x = rng.normal(size=(1500, 15))
    y = 0.5 * x + rng.normal(size=(1500, 15))
    with pytest.warns(RuntimeWarning, match="entropy in 30 dimensions: k-NN entropies beyond"):
        r = distmi.mutual_information(x, y, method="wkl", n_bootstrap=0)
    assert r.diagnostics["weight_norm_xy"] <= MAX_AUTO_NORM
