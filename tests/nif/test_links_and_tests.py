"""The nif-link method: shared half-samples, interval coverage, the rank null, neural flags."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from distmi.analyses.nif import linkmethod, zeroflow
from distmi.analyses.nif.build import flag_links
from distmi.estimators.registry import get_method


def test_registered_and_equal_to_the_base_estimate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = x @ rng.normal(size=(3, 2)) + rng.normal(size=(300, 2))
    pairs = np.array([[0, 0], [1, 1], [2, 0]])
    res = get_method("nif-link").estimate_pairs(x, y, pairs, discrete_y=False, n_bootstrap=5,
                                                random_state=7, base="ksg", base_params={},
                                                replicate_seed=1, rank_test=True, tie_seed=2)
    base = get_method("ksg").estimate_pairs(x, y, pairs, discrete_y=False, n_bootstrap=0,
                                            random_state=7)
    assert [r.value for r in res] == [r.value for r in base]
    assert all(len(eval(r.diagnostics["replicates"])) == 5 for r in res)


def test_half_samples_are_shared_by_every_link_and_seed():
    a = linkmethod.half_sample_rows(11, 3, 101)
    assert len(a) == 50 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, linkmethod.half_sample_rows(11, 3, 101))
    assert not np.array_equal(a, linkmethod.half_sample_rows(11, 4, 101))


def test_constant_columns_on_a_half_sample_give_zero():
    rng = np.random.default_rng(1)
    x = np.zeros((200, 1))
    x[0, 0] = 1.0  # non-constant on all rows, constant on most half-samples
    y = rng.normal(size=(200, 1))
    res = linkmethod.estimate_pairs(x, y, np.array([[0, 0]]), discrete_y=False, n_bootstrap=6,
                                    random_state=0, replicate_seed=5)[0]
    reps = np.array(eval(res.diagnostics["replicates"]))
    rows = [linkmethod.half_sample_rows(5, b, 200) for b in range(6)]
    for b, r in enumerate(rows):
        if 0 not in r:
            assert reps[b] == 0.0


def test_link_intervals_cover_the_truth():
    """95 % basic intervals from shared half-samples: coverage over 120 independent pairs."""
    rng = np.random.default_rng(2)
    n, p = 1000, 120
    rho = np.linspace(0.0, 0.8, p)
    x = rng.normal(size=(n, p))
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=(n, p))
    res = linkmethod.estimate_pairs(x, y, np.stack([np.arange(p)] * 2, 1), discrete_y=False,
                                    n_bootstrap=30, random_state=0, replicate_seed=9)
    truth = -0.5 * np.log(1 - rho**2)
    low = np.array([r.ci[0] for r in res])
    high = np.array([r.ci[1] for r in res])
    cover = ((low <= truth) & (truth <= high)).mean()
    assert 0.85 <= cover <= 1.0, cover


def test_rank_null_is_exact_for_relu_like_columns():
    """Independent ReLU-like columns (many ties at 0): link p-values are uniform."""
    rng = np.random.default_rng(3)
    n, p = 150, 200
    x = np.maximum(rng.normal(size=(n, p)) - 0.3, 0.0)  # ~60 % exact zeros
    y = np.maximum(rng.normal(size=(n, p)), 0.0)
    pairs = np.stack([np.arange(p)] * 2, 1)
    stat = linkmethod.rank_statistics(x, y, pairs, False, tie_seed=4)
    table = zeroflow.null_table(n, 999, tie_seed=4, seed=0)
    from distmi.kernels.significance import permutation_pvalues

    pv = permutation_pvalues(stat, table)
    assert stats.kstest(pv, "uniform").pvalue > 0.01
    # a dependent ReLU pair is detected
    z = rng.normal(size=n)
    dep = linkmethod.rank_statistics(np.maximum(z, 0)[:, None], (z + 0.5 * rng.normal(size=n))
                                     [:, None], np.array([[0, 0]]), False, tie_seed=4)
    assert permutation_pvalues(dep, table)[0] == pytest.approx(1 / 1000)


def test_neural_flags():
    links = pd.DataFrame({
        "mi": [0.3, -0.05, 0.02, np.nan, 0.4, 0.0],
        "std": [0.05, 0.01, 0.05, np.nan, 0.01, 0.0],
        "status": ["ok", "ok", "ok", "ok", "ok", "constant"],
        "diverged": [False, False, False, False, True, False],
    })
    assert list(flag_links(links, "mine")) == ["", "negative", "unstable", "diverged",
                                               "diverged", ""]
    # non-neural estimators: only non-finite values are flagged
    assert list(flag_links(links, "ksg")) == ["", "", "", "diverged", "diverged", ""]


def test_flagged_links_warn_and_enter_as_zero(iris_bundle):
    import distmi

    x, y = iris_bundle.train
    with pytest.warns(RuntimeWarning, match="link estimates are flagged"):
        flow = distmi.nif.information_flow(
            iris_bundle.model, x, y, estimator="mine", n_bootstrap=3, n_permutations=99,
            estimator_params={"max_steps": 150, "eval_every": 25})
    flagged = flow.flagged
    assert len(flagged) > 0
    assert (flagged["nif"] == 0).all()
    assert set(flagged["flag"]) <= {"negative", "unstable", "diverged"}
    assert flow.settings["estimator_params"]["batch_size"] == 30  # 120 rows: 60 per half, 30 train
