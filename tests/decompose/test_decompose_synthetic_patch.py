"""The planted answer: the class lives in one patch, a distractor patch carries no class
information. The decision-related map must hold >= 80% of its mass in the class patch; the total
map must cover both patches (the representation carries the distractor too)."""

from __future__ import annotations

import numpy as np
import pytest

import distmi
from distmi.analyses.decompose import synthetic


@pytest.fixture(scope="module")
def patch_explanation():
    model, acc = synthetic.train_patch_cnn(n_train=2000, epochs=8, seed=0)
    assert acc["test_accuracy"] > 0.95
    train = synthetic.patch_data(2000, 0, "train")
    test = synthetic.patch_data(400, 0, "test")
    dec = distmi.decompose.fit(model, (train.x, train.y), layer="act2", local="conv",
                               epochs=15, random_state=0)
    return dec.explain((test.x, test.y))


def test_decision_map_sits_in_the_class_patch(patch_explanation):
    e = patch_explanation
    inside = np.nanmean(e.region_mass(synthetic.class_region((8, 8)), "decision"))
    assert inside >= 0.8
    assert (e.masked_predictions == e.labels).mean() > 0.95  # X' still decides


def test_total_map_covers_both_patches(patch_explanation):
    e = patch_explanation
    cls, dis = synthetic.class_region((8, 8)), synthetic.distractor_region((8, 8))
    background = ~(cls | dis)
    total = np.nanmean(e.total, axis=0)
    # both patches carry clearly more information than the rest of the image ...
    assert total[dis].mean() > 0.15 and total[cls].mean() > 0.15
    assert total[dis].mean() > 2 * max(total[background].mean(), 0.02)
    assert np.nanmean(e.region_mass(dis, "total")) >= 0.1
    # ... but the distractor's is redundant: the share of its total information that is
    # decision-related is a small fraction of the class patch's share
    decision = np.nanmean(e.decision, axis=0)
    kept_class = decision[cls].mean() / total[cls].mean()
    kept_distractor = decision[dis].mean() / total[dis].mean()
    assert kept_class > 0.2 and kept_distractor < 0.2 * kept_class
