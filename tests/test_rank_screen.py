"""Rank-screen kernels: exactness against the KSG kernels, invariances, detection power,
p-values uniform under the null (K-S), the min-P combination against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from distmi.kernels.ksg_mi import ksg_1d_compiled, mixed_1d_batch
from distmi.kernels.rank_screen import (
    SCREEN_METHODS,
    normal_scores,
    rank_rows,
    screen_statistics,
)
from distmi.kernels.significance import adjust_pvalues, min_p_pvalues, permutation_pvalues
from distmi.reduce.screen_stats import (
    auto_permutations,
    categorical_null_key,
    continuous_null_key,
    null_statistics,
    parse_null_key,
    tie_broken_ranks,
)

ALL = ("ksg", "gaussian", "xi")


def _diag(b: int) -> np.ndarray:
    return np.stack([np.arange(b), np.arange(b)], axis=1)


@pytest.mark.parametrize("n", [20, 300, 2500])
def test_copula_ksg_and_ross_equal_the_float_kernels_on_ranks(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(12, n))
    y = x * np.linspace(0, 3, 12)[:, None] + rng.normal(size=(12, n))
    y[3] = np.sin(4 * x[3]) + 0.1 * rng.normal(size=n)
    rx, ry = rank_rows(x), rank_rows(y)
    for k in (1, 3, 7):
        ours = screen_statistics(("ksg",), rx, ry, _diag(12), k=k)[:, 0]
        ref = ksg_1d_compiled(rx.astype(float), ry.astype(float), k, 1)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    labels = rng.integers(0, 4, size=n)
    labels[:2] = 0
    rxl = rank_rows(x + labels[None, :] % 2)
    ours = screen_statistics(("ksg",), rxl, labels, _diag(12), k=3, discrete=True)[:, 0]
    ref = mixed_1d_batch(rxl.astype(float), np.broadcast_to(labels, (12, n)).copy(), 3)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_gaussian_and_xi_match_their_formulas():
    rng = np.random.default_rng(1)
    n = 400
    x = rng.normal(size=(5, n))
    y = 0.5 * x + rng.normal(size=(5, n))
    rx, ry = rank_rows(x), rank_rows(y)
    got = screen_statistics(("gaussian", "xi"), rx, ry, _diag(5))
    g = normal_scores(n)
    rho = (g[rx] * g[ry]).mean(axis=1)
    np.testing.assert_allclose(got[:, 0], -0.5 * np.log1p(-rho**2), rtol=1e-12)
    for r in range(5):
        y_by_x = ry[r][np.argsort(rx[r])]
        x_by_y = rx[r][np.argsort(ry[r])]
        xi = 1 - 3 * min(np.abs(np.diff(y_by_x)).sum(), np.abs(np.diff(x_by_y)).sum()) / (n * n - 1)
        assert got[r, 1] == pytest.approx(xi, abs=1e-12)
    labels = rng.integers(0, 3, size=n)
    got = screen_statistics(("gaussian", "xi"), rx, labels, _diag(5), discrete=True)
    for r in range(5):
        gx = g[rx[r]]
        want = 0.5 * np.log(gx.var()) - sum(
            (labels == c).mean() * 0.5 * np.log(gx[labels == c].var()) for c in range(3))
        assert got[r, 0] == pytest.approx(want, rel=1e-10)
        lab = labels[np.argsort(rx[r])]
        gini = sum(((labels == c).mean()) ** 2 for c in range(3))
        assert got[r, 1] == pytest.approx(((lab[1:] == lab[:-1]).mean() - gini) / (1 - gini))


def test_rows_do_not_depend_on_the_batch_and_threads():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 500))
    y = rng.normal(size=(3, 500))
    rx, ry = rank_rows(x), rank_rows(y)
    pairs = np.stack([np.arange(30), np.arange(30) % 3], axis=1)
    full = screen_statistics(ALL, rx, ry, pairs, k=4)
    threaded = screen_statistics(ALL, rx, ry, pairs, k=4, threads=3)
    alone = np.vstack([screen_statistics(ALL, rx, ry, pairs[[p]], k=4) for p in (0, 17, 29)])
    np.testing.assert_array_equal(full, threaded)
    np.testing.assert_array_equal(full[[0, 17, 29]], alone)


def test_ranks_are_invariant_to_monotone_maps_and_ties_follow_the_seeded_key():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 2))
    r1 = tie_broken_ranks(x, 0, [("unit", "a", 0), ("unit", "a", 1)])
    r2 = tie_broken_ranks(np.exp(3 * x) - 7, 0, [("unit", "a", 0), ("unit", "a", 1)])
    np.testing.assert_array_equal(r1, r2)
    relu = np.maximum(x, 0)  # ~half the values tie at 0
    a = tie_broken_ranks(relu, 5, [("unit", "a", 0), ("unit", "a", 1)])
    b = tie_broken_ranks(relu[:, ::-1], 5, [("unit", "a", 1), ("unit", "a", 0)])
    np.testing.assert_array_equal(a, b[::-1])  # per-column keys: order of columns is irrelevant
    assert sorted(a[0].tolist()) == list(range(300))
    c = tie_broken_ranks(relu, 6, [("unit", "a", 0), ("unit", "a", 1)])
    assert not np.array_equal(a, c)  # another seed breaks the ties differently
    zero = relu[:, 0] == 0
    assert a[0][zero].max() < a[0][~zero].min()  # ties broken only among the tied values


def test_null_keys_and_tables():
    labels = np.array([2, 0, 0, 1, 0, 2])
    key = categorical_null_key(labels)
    assert key == "categorical|n=6|counts=3,2,1"
    assert parse_null_key(key) == (6, (3, 2, 1))
    assert parse_null_key(continuous_null_key(50)) == (50, None)
    a = null_statistics(("ksg", "gaussian"), 3, continuous_null_key(200), 7, 0, 40)
    b = np.vstack([null_statistics(("ksg", "gaussian"), 3, continuous_null_key(200), 7, s, s + 10)
                   for s in range(0, 40, 10)])
    np.testing.assert_array_equal(a, b)  # row b depends only on (seed, key, b)
    assert a.shape == (40, 2)
    assert auto_permutations(384, 0.05) == 15359
    assert auto_permutations(384, 0.05, n_statistics=2) == 23039
    assert auto_permutations(100, 0.05, fdr_method="by") == int(
        np.ceil(2 * 100 * np.sum(1 / np.arange(1, 101)) / 0.05)) - 1
    assert auto_permutations(10, 0.05) == 2000 and auto_permutations(10**6, 0.05) == 100_000
    assert auto_permutations(10**6, None) == 2000


def _screen_pvalues(method, x, y, seed, n_perm, k=5, discrete=False):
    comps = SCREEN_METHODS[method]
    n = x.shape[0]
    rx = tie_broken_ranks(x, seed, [("x", i) for i in range(x.shape[1])])
    if discrete:
        partner, key = y, categorical_null_key(y)
        pairs = np.stack([np.arange(x.shape[1]), np.zeros(x.shape[1], int)], axis=1)
    else:
        partner, key = tie_broken_ranks(y, seed, [("y", i) for i in range(y.shape[1])]), \
            continuous_null_key(n)
        pairs = _diag(x.shape[1])
    obs = screen_statistics(comps, rx, partner, pairs, k=k, discrete=discrete)
    return min_p_pvalues(obs, null_statistics(comps, k, key, seed + 1000, 0, n_perm)), obs


@pytest.mark.parametrize("method", ["ksg+gaussian", "ksg", "xi"])
def test_pvalues_are_uniform_under_the_null(method):
    """K-S test of p-values over 2400 independent null pairs and 8 independent null tables."""
    pooled = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(200, 150))
        y = rng.standard_t(2, size=(200, 150))  # heavy tails: ranks do not care
        p, _ = _screen_pvalues(method, x, y, seed, 1000)
        labels = rng.integers(0, 3, size=200)
        pc, _ = _screen_pvalues(method, x[:, :150], labels, seed, 1000, discrete=True)
        pooled += [p, pc]
    p = np.concatenate(pooled)
    assert stats.kstest(p, "uniform").pvalue > 1e-3
    assert abs(np.mean(p <= 0.05) - 0.05) < 4 * np.sqrt(0.05 * 0.95 / p.size) + 0.01


def test_non_monotone_dependence_is_detected_where_the_gaussian_copula_is_blind():
    rng = np.random.default_rng(11)
    n = 1000
    y = rng.normal(size=(n, 1))
    x = np.column_stack([y[:, 0] ** 2 + 0.5 * rng.normal(size=n),
                         np.abs(y[:, 0]) + 0.3 * rng.normal(size=n),
                         np.sin(3 * y[:, 0]) + 0.5 * rng.normal(size=n),
                         0.3 * y[:, 0] + rng.normal(size=n)])
    Y = np.repeat(y, 4, axis=1)
    p, obs = _screen_pvalues("ksg+gaussian", x, Y, 0, 999)
    # every planted unit beats every permutation in one statistic (min-P: p <= 2 / (B + 1))
    assert (p <= 2 / 1000).all()
    p_gauss, _ = _screen_pvalues("gaussian", x, Y, 0, 999)
    assert (p_gauss[:3] > 0.01).all() and p_gauss[3] < 0.01  # blind to the non-monotone ones
    assert (obs[:3, 0] > 0.3).all()  # copula KSG sees them (nats)


def test_copula_ksg_estimates_mi_in_nats():
    """Averaged over 20 Gaussian datasets (n=3000): within 0.02 nats of the closed form."""
    rng = np.random.default_rng(4)
    for rho in (0.3, 0.6, 0.9):
        x = rng.normal(size=(3000, 20))
        y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=(3000, 20))
        rx = rank_rows(x.T)
        ry = rank_rows(y.T)
        est = screen_statistics(("ksg", "gaussian"), rx, ry, _diag(20), k=5)
        truth = -0.5 * np.log(1 - rho**2)
        assert abs(est[:, 0].mean() - truth) < 0.02 + 0.05 * truth
        assert abs(est[:, 1].mean() - truth) < 0.01


def test_min_p_equals_brute_force_pooled_ranks():
    rng = np.random.default_rng(0)

    def brute(obs, null):
        out = []
        for o in obs:
            pool = np.vstack([o, null])
            ranks = np.stack([(pool[:, c][None, :] >= pool[:, c][:, None]).sum(1)
                              for c in range(pool.shape[1])], axis=1)
            t = ranks.min(axis=1)
            out.append((1 + (t[1:] <= t[0]).sum()) / len(pool))
        return np.array(out)

    for trial in range(24):
        b, c = int(rng.integers(5, 60)), int(rng.integers(2, 4))
        if trial % 2:  # many ties
            null = rng.integers(0, 6, size=(b, c)).astype(float)
            obs = rng.integers(0, 8, size=(30, c)).astype(float)
        else:
            null = rng.normal(size=(b, c))
            obs = 1.5 * rng.normal(size=(30, c))
        np.testing.assert_allclose(min_p_pvalues(obs, null), brute(obs, null))
    obs = rng.normal(size=(20, 1))
    null = rng.normal(size=(50, 1))
    np.testing.assert_array_equal(min_p_pvalues(obs, null), permutation_pvalues(obs[:, 0], null[:, 0]))
    obs[3, 0] = np.nan
    assert np.isnan(min_p_pvalues(np.c_[obs, obs], np.c_[null, null])[3])


def test_benjamini_hochberg_on_screen_pvalues():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    q = adjust_pvalues(p, "bh")
    # hand computation: q_(i) = min_{j >= i} p_(j) m / j
    want = np.minimum.accumulate((p * 10 / np.arange(1, 11))[::-1])[::-1]
    np.testing.assert_allclose(q, want)
    assert (q <= 0.05).sum() == 2
    assert (adjust_pvalues(p, "by") >= q).all()


def test_bad_kernel_inputs():
    r = rank_rows(np.random.default_rng(0).normal(size=(2, 10)))
    with pytest.raises(ValueError, match="non-empty subset"):
        screen_statistics(("knn",), r, r, _diag(2))
    with pytest.raises(ValueError, match="1 <= k < n"):
        screen_statistics(("ksg",), r, r, _diag(2), k=10)
    with pytest.raises(ValueError, match="must index"):
        screen_statistics(("ksg",), r, r, np.array([[0, 5]]))
    with pytest.raises(ValueError, match="same C"):
        min_p_pvalues(np.zeros((3, 2)), np.zeros((10, 3)))
