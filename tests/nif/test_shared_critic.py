"""Eq. 3 (one critic shared by relevance and redundancy) on the linear-Gaussian network."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import gaussian_mi, gaussian_network

import distmi


@pytest.fixture(scope="module")
def flows():
    acts, cov = gaussian_network(2000, seed=5)
    common = dict(estimator="ksg", beta="mean", redundancy_order="index", n_bootstrap=4,
                  n_permutations=99, random_state=0)
    per_link = distmi.nif.flow_from_activations(acts, None, **common)
    shared = distmi.nif.flow_from_activations(acts, None, bound="shared-critic", **common)
    return per_link, shared, cov


def test_shared_critic_bound_is_not_below_eq2(flows):
    per_link, shared, _cov = flows
    assert shared.settings["bound"] == "shared-critic"
    assert (shared.links["nif"] >= 0).all()
    assert shared.links["nif_ci_low"].isna().all()  # no replicates for eq. 3
    # eq. 3 bounds eq. 2 from above (up to the estimators' errors, ~0.05 nats here)
    diff = shared.links["nif"].to_numpy() - per_link.links["nif"].to_numpy()
    assert diff.mean() > -0.02 and diff.min() > -0.15, diff


def test_shared_critic_without_redundancy_is_a_mine_estimate(flows):
    """First units have no redundancy term: eq. 3 is then MINE's DV bound of the link."""
    _, shared, cov = flows
    first = shared.links[(shared.links["src_unit"] == 0)]
    offset = {"input": 0, "h": 3, "logits": 7}
    truth = np.array([gaussian_mi(cov, offset[a], offset[b] + int(j)) for a, b, j in
                      first[["src_layer", "dst_layer", "dst_unit"]].itertuples(index=False)])
    err = first["nif"].to_numpy() - truth
    assert abs(err.mean()) < 0.1 and np.abs(err).max() < 0.25, err
