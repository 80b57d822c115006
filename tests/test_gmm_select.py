"""Choosing K for GMM-MI: split starts, fresh starts, subsampled selection, EM counts, status."""

from __future__ import annotations

import numpy as np
import pytest

import distmi
from distmi.kernels.gmm_problems import selection_rows
from distmi.testing.mi_families import AI_MIXTURE, mixture_mi


def _ai(n: int, seed: int):
    x, y = AI_MIXTURE.sample(np.random.default_rng(seed), n)
    return x, y, mixture_mi("ai_mixture")


def test_split_and_fresh_starts_find_the_mixture():
    """Six narrow components: both start schemes recover K = 6 and the MI; split starts need
    far fewer selection iterations."""
    x, y, truth = _ai(4000, 1)
    split = distmi.mutual_information(x, y, n_bootstrap=30)
    fresh = distmi.mutual_information(x, y, n_bootstrap=30, init="kmeans++")
    for r in (split, fresh):
        assert r.diagnostics["n_components"] >= 6  # CV may add a spare component
        assert abs(r.value - truth) <= 4 * r.std + 1e-3, (r, truth)
    assert split.diagnostics["em_iter_select"] < fresh.diagnostics["em_iter_select"] / 2


def test_em_iterations_are_reported_per_stage():
    x, y, _ = _ai(1500, 2)
    r = distmi.mutual_information(x, y, n_bootstrap=12, acceleration="jackknife")
    it = {k: r.diagnostics[f"em_iter_{k}"] for k in ("select", "full", "bootstrap", "jackknife")}
    assert it["select"] > 0 and it["full"] > 0
    assert it["bootstrap"] >= 12 and it["jackknife"] >= 10  # every refit runs >= 1 iteration
    default = distmi.mutual_information(x, y, n_bootstrap=12)  # influence acceleration: no refits
    assert default.diagnostics["em_iter_jackknife"] == 0
    assert default.diagnostics["em_iter_bootstrap"] == it["bootstrap"]
    none = distmi.mutual_information(x, y, n_bootstrap=0)
    assert none.diagnostics["em_iter_bootstrap"] == 0 == none.diagnostics["em_iter_jackknife"]
    assert none.diagnostics["em_iter_select"] == it["select"]
    basic = distmi.mutual_information(x, y, n_bootstrap=12, ci_method="basic")
    assert basic.diagnostics["em_iter_jackknife"] == 0
    table = distmi.pairwise_mi(np.c_[x, y], np.c_[y], n_bootstrap=12)
    assert table.em_iter_bootstrap[0] == it["bootstrap"]  # (x, y) beside (y, y) as alone


def test_selection_on_a_subsample():
    """K is chosen on a fixed subset of select_samples rows; the fits use every row."""
    rows = selection_rows(3, 10_000, 2000)
    assert len(rows) == 2000 == len(np.unique(rows))
    assert np.array_equal(rows, selection_rows(3, 10_000, 2000))
    assert np.array_equal(selection_rows(3, 1500, 2000), np.arange(1500))
    x, y, truth = _ai(6000, 4)
    small = distmi.mutual_information(x, y, n_bootstrap=0, select_samples=1500)
    full = distmi.mutual_information(x, y, n_bootstrap=0, select_samples=None)
    assert small.n_samples == 6000 and small.diagnostics["n_components"] >= 6
    # the work is iterations x rows: 1500 rows against 6000
    assert small.diagnostics["em_iter_select"] * 1500 < full.diagnostics["em_iter_select"] * 6000 / 2
    assert abs(small.value - truth) < 0.02 and abs(full.value - truth) < 0.02
    same = distmi.mutual_information(x, y, n_bootstrap=0, select_samples=6000)
    assert same.value == full.value


@pytest.mark.parametrize("select", ["aic", "bic"])
def test_information_criteria_with_split_starts(select):
    x, y, truth = _ai(3000, 5)
    r = distmi.mutual_information(x, y, n_bootstrap=20, select=select)
    assert r.diagnostics["n_components"] >= 5
    assert abs(r.value - truth) <= 4 * r.std + 1e-3


def test_fixed_components_are_grown_by_splits():
    x, y, truth = _ai(3000, 6)
    r = distmi.mutual_information(x, y, n_bootstrap=20, n_components=6)
    assert r.diagnostics["n_components"] == 6 and r.diagnostics["selection_scores"] == []
    assert abs(r.value - truth) <= 4 * r.std + 1e-3


def test_backends_agree_end_to_end():
    """The compiled and torch EM give the same estimate, interval and K."""
    x, y, _ = _ai(1200, 7)
    a = distmi.mutual_information(x, y, n_bootstrap=10, backend="compiled")
    b = distmi.mutual_information(x, y, n_bootstrap=10, backend="torch")
    assert a.diagnostics["n_components"] == b.diagnostics["n_components"]
    assert a.value == pytest.approx(b.value, abs=1e-6)
    assert a.ci == pytest.approx(b.ci, abs=1e-5)


def test_status_flags_what_deserves_a_second_look():
    x, y, _ = _ai(1500, 8)
    ok = distmi.mutual_information(x, y, n_bootstrap=20)
    assert ok.diagnostics["status"] == "ok" and ok.diagnostics["warnings"] == ""
    capped = distmi.mutual_information(x, y, n_bootstrap=0, max_components=3)
    assert capped.diagnostics["status"] == "warning"
    assert "max_components=3" in capped.diagnostics["warnings"]
    short = distmi.mutual_information(x, y, n_bootstrap=0, max_iter=3)
    assert "did not converge within max_iter=3" in short.diagnostics["warnings"]
    # three clusters of 12 points: each 18-row training fold supports at most
    # 18 // (2 (D + 1)) = 3 components, and K = 3 still improves on K = 2
    rng = np.random.default_rng(9)
    centres = np.array([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]])
    tiny = (centres[:, None, :] + rng.normal(size=(3, 12, 2)) @ np.array([[1, 0.5], [0, 1]]))
    tiny = tiny.reshape(-1, 2)
    limited = distmi.mutual_information(tiny[:, 0], tiny[:, 1], n_bootstrap=0)
    assert limited.diagnostics["n_components"] == 3 and limited.diagnostics["sample_limited"]
    assert "capped by the sample size" in limited.diagnostics["warnings"]
    assert not ok.diagnostics["sample_limited"]
    table = distmi.pairwise_mi(np.c_[x], np.c_[y], n_bootstrap=0, max_components=3)
    assert table.status[0] == "warning" and "max_components" in table.warnings[0]


def test_hopeless_candidates_are_stopped_without_changing_the_choice():
    """The rejected K* + 1 stops once its held-out score plus the projected remaining EM gain
    cannot beat K*: fewer iterations, the same K and estimates."""
    rng = np.random.default_rng(10)
    n, m = 3000, 12
    X = rng.normal(size=(n, m))
    Y = 0.5 * X + rng.normal(size=(n, m))
    Y[:, :4] = np.tanh(2 * X[:, :4]) + 0.3 * rng.normal(size=(n, 4))
    pairs = [(i, i) for i in range(m)]
    on = distmi.pairwise_mi(X, Y, pairs=pairs, n_bootstrap=0)
    off = distmi.pairwise_mi(X, Y, pairs=pairs, n_bootstrap=0, stop_hopeless=False)
    assert (on.n_components == off.n_components).all()
    np.testing.assert_array_equal(on.estimate, off.estimate)
    assert on.converged.all()
    # the Gaussian pairs (K = 1) no longer run their rejected K = 2 to convergence
    gauss = (on.n_components == 1).to_numpy()
    assert gauss.sum() >= 4
    assert on.em_iter_select[gauss].sum() < 0.75 * off.em_iter_select[gauss].sum()
