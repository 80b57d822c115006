"""Eq. 2-4 on small cases with known answers, and the linear-Gaussian network."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import gaussian_mi, gaussian_network

from distmi.analyses.nif import attribution as attr
from distmi.analyses.nif import redundancy as red
from distmi.core.errors import InvalidParameterError


def test_chain_of_products_equals_sum_over_paths():
    rng = np.random.default_rng(0)
    mats = [rng.uniform(size=(3, 4)), rng.uniform(size=(4, 5)), rng.uniform(size=(5, 2))]
    np.testing.assert_allclose(attr.chain(mats), attr.path_sum(mats), rtol=1e-12)


def test_throughflow_is_the_sum_over_paths_through_a_node():
    rng = np.random.default_rng(1)
    mats = [rng.uniform(size=(2, 3)), rng.uniform(size=(3, 3)), rng.uniform(size=(3, 2))]
    flows = attr.throughflow(mats)
    for u in range(3):  # paths through unit u of the first hidden column
        cut = [mats[0][:, [u]], mats[1][[u], :], mats[2]]
        np.testing.assert_allclose(flows[1][0][u] * flows[1][1][u], attr.path_sum(cut).sum())
    np.testing.assert_allclose(flows[0][1], attr.chain(mats).sum(1))  # input out-flows
    np.testing.assert_allclose(flows[-1][0], attr.chain(mats).sum(0))  # class in-flows


def test_redundancy_sums_and_betas():
    # pairs (0,1)=0.5, (0,2)=0.2, (1,2)=0.4, (1,3)=-0.1 (clipped to 0)
    ui, uj = np.array([0, 0, 1, 1]), np.array([1, 2, 2, 3])
    mi = np.array([0.5, 0.2, 0.4, -0.1])
    np.testing.assert_allclose(red.redundancy_sums(ui, uj, mi, 4), [0.0, 0.5, 0.6, 0.0])
    np.testing.assert_allclose(red.beta_weights("mean", 4), [0, 1, 1 / 2, 1 / 3])
    np.testing.assert_allclose(red.beta_weights(0.7, 3), [0, 0.7, 0.7])
    np.testing.assert_allclose(red.beta_weights("none", 3), 0)
    ranks = red.unit_ranks(np.array([0.1, 0.9, 0.5, 0.9]), "relevance")  # order 1, 3, 2, 0
    np.testing.assert_array_equal(ranks, [3, 0, 2, 1])
    # unit 2 (rank 2) comes after units 1 and 3; unit 0 (rank 3) after everybody
    np.testing.assert_allclose(red.redundancy_sums(ui, uj, mi, 4, ranks), [0.7, 0.0, 0.4, 0.0])
    np.testing.assert_allclose(red.beta_weights("mean", 4, ranks), [1 / 3, 0, 1 / 2, 1])
    np.testing.assert_allclose(red.nif_values(np.array([1.0, 0.2]), np.array([1.0, 1.0]),
                                              np.array([0.3, 0.5])), [0.7, 0.0])


@pytest.mark.parametrize("bad", ["median", -1.0, float("nan"), True])
def test_bad_beta(bad):
    with pytest.raises(InvalidParameterError, match="beta must be"):
        red.check_beta(bad)


@pytest.fixture(scope="module")
def gaussian_flow():
    import distmi

    acts, cov = gaussian_network(4000, seed=3)
    flow = distmi.nif.flow_from_activations(acts, None, estimator="ksg", beta="mean",
                                            redundancy_order="index", n_bootstrap=12,
                                            n_permutations=199, random_state=0)
    return flow, cov


def _truth(flow, cov):
    offset = {"input": 0, "h": 3, "logits": 7}
    return np.array([gaussian_mi(cov, offset[a] + int(i), offset[b] + int(j))
                     for a, i, b, j in flow.links[["src_layer", "src_unit", "dst_layer",
                                                   "dst_unit"]].itertuples(index=False)])


def test_linear_gaussian_link_mi_matches_closed_form(gaussian_flow):
    flow, cov = gaussian_flow
    truth = _truth(flow, cov)
    err = flow.links["mi"].to_numpy() - truth
    # KSG at n=4000: sd ~0.01-0.02 nats per link, bias below 0.01 at these correlations
    assert abs(err.mean()) < 0.01, err
    assert np.all(np.abs(err) < 4 * flow.links["std"].to_numpy() + 0.02), err
    assert (flow.links["status"] == "ok").all()


def test_linear_gaussian_eq2_and_eq4_match_closed_form(gaussian_flow):
    flow, cov = gaussian_flow
    truth = _truth(flow, cov)
    idx = {"input": (0, 3), "h": (3, 4)}
    expected = np.empty(len(truth))
    for k, (layer, unit) in enumerate(zip(flow.links["src_layer"], flow.links["src_unit"],
                                          strict=True)):
        start, _ = idx[layer]
        r = sum(gaussian_mi(cov, start + unit, start + j) for j in range(unit))
        beta = 1.0 / unit if unit > 0 else 0.0
        expected[k] = max(truth[k] - beta * r, 0.0)
    np.testing.assert_allclose(flow.links["nif"].to_numpy(), expected, atol=0.05)
    n1 = np.zeros((3, 4))
    n2 = np.zeros((4, 2))
    for (layer, i, j), v in zip(flow.links[["src_layer", "src_unit", "dst_unit"]]
                                .itertuples(index=False), expected, strict=True):
        (n1 if layer == "input" else n2)[i, j] = v
    a_true = n1 @ n2
    np.testing.assert_allclose(flow.attribution.to_numpy(), a_true, rtol=0.15, atol=0.02)
    ci = flow.attribution_ci
    inside = (ci["ci_low"] - 0.02 <= a_true.ravel()) & (a_true.ravel() <= ci["ci_high"] + 0.02)
    assert inside.mean() >= 0.8


def test_linear_gaussian_redundancy_matches_closed_form(gaussian_flow):
    flow, cov = gaussian_flow
    start = {"input": 0, "h": 3}
    for layer in ("input", "h"):
        rows = flow.links[flow.links["src_layer"] == layer].drop_duplicates("src_unit")
        for unit, r in zip(rows["src_unit"], rows["redundancy"], strict=True):
            expected = sum(gaussian_mi(cov, start[layer] + unit, start[layer] + j)
                           for j in range(unit))
            assert abs(r - expected) < 0.03 * max(unit, 1), (layer, unit, r, expected)


@pytest.mark.slow
def test_attribution_intervals_cover_the_closed_form():
    """Propagated half-sample intervals of eq. 4: coverage over 16 independent networks."""
    import distmi

    inside = []
    for seed in range(16):
        acts, cov = gaussian_network(1500, seed=100 + seed)
        flow = distmi.nif.flow_from_activations(acts, None, estimator="ksg", beta="none",
                                                n_bootstrap=20, n_permutations=19,
                                                random_state=seed)
        truth = _truth(flow, cov)
        n1, n2 = np.zeros((3, 4)), np.zeros((4, 2))
        for (layer, i, j), v in zip(flow.links[["src_layer", "src_unit", "dst_unit"]]
                                    .itertuples(index=False), truth, strict=True):
            (n1 if layer == "input" else n2)[i, j] = v
        a_true = (n1 @ n2).ravel()
        ci = flow.attribution_ci
        inside += list((ci["ci_low"] <= a_true) & (a_true <= ci["ci_high"]))
    assert 0.85 <= np.mean(inside) <= 1.0, np.mean(inside)
