"""Deletion/insertion curves on planted models, the attribution baselines, randomisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from decompose_data import KEYWORD, keyword_texts
from torch import nn

from distmi.analyses.decompose import evaluation as E
from distmi.core.errors import InvalidParameterError


class OnePixel(nn.Module):
    """Class 1 when pixel (1, 2) is bright, else class 0; every other pixel is ignored."""

    def forward(self, x):
        v = x[:, 0, 1, 2]
        return torch.stack([0.5 - v, v - 0.5], dim=1) * 10.0


def _pixel_data(n=40):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 0.3, size=(n, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 2, size=n)
    x[y == 1, 0, 1, 2] = 1.0
    return torch.from_numpy(x), y


def test_deletion_and_insertion_of_the_one_pixel_that_decides():
    x, y = _pixel_data()
    right = np.zeros((len(x), 4, 4))
    right[:, 1, 2] = 1.0
    wrong = np.zeros((len(x), 4, 4))
    wrong[:, 3, 3] = 1.0  # the right pixel then ranks among the ties, at a random place
    model = OnePixel()
    d_right = E.image_curve(model, x, y, right, kind="deletion", method="right")
    d_wrong = E.image_curve(model, x, y, wrong, kind="deletion", method="wrong")
    assert d_right.fraction[0] == 0 and d_right.fraction[-1] == 1 and len(d_right.fraction) == 17
    assert d_right.accuracy[0] == 1.0
    # removing the deciding pixel first: every class-1 image flips at once
    assert d_right.accuracy[1] == pytest.approx((y == 0).mean())
    assert d_right.auc_accuracy < d_wrong.auc_accuracy
    i_right = E.image_curve(model, x, y, right, kind="insertion")
    assert i_right.accuracy[1] == 1.0 and i_right.auc_accuracy > 0.9
    with pytest.raises(InvalidParameterError, match=r"saliency must have the input's shape"):
        E.image_curve(model, x, y, right[:, :2], kind="deletion")
    with pytest.raises(InvalidParameterError, match=r"kind must be one of"):
        E.image_curve(model, x, y, right, kind="both")


def test_ranking_breaks_ties_reproducibly():
    s = np.array([[0.0, 1.0, 0.0, 0.0, 2.0]])
    a, b = E.ranking(s, seed=1), E.ranking(s, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a[0, :2].tolist() == [4, 1]


def test_token_curve_removes_tokens_through_the_attention_mask(token_model):
    inputs, labels, where = keyword_texts(120, seed=5)
    sal = np.where(np.arange(10)[None, :] == where[:, None], 1.0, 0.0)
    protected = np.zeros((120, 10), bool)
    curve = E.token_curve(token_model, inputs, labels.numpy(), sal, protected, kind="deletion",
                          steps=10)
    assert curve.accuracy[0] > 0.95
    # at 20% every text (5 to 10 tokens) has lost >= 1 token: the keyword, so all say class 0
    assert curve.accuracy[2] == pytest.approx(float((labels == 0).float().mean()), abs=0.05)
    assert (inputs["input_ids"][where >= 0] == KEYWORD).any(1).all()


def test_baselines_and_comparison_on_digits(digits_dec, digits):
    model, _, _, xte, yte = digits
    e = digits_dec.explain((xte[:30], yte[:30]))
    maps = E.saliency_maps(model, "act2", xte[:30], e, ig_steps=8)
    assert set(maps) == {"decision", "total", "LayerGradCam", "IntegratedGradients", "random"}
    assert all(m.shape == (30, 8, 8) for m in maps.values())
    table, curves = E.compare_methods(model, xte[:30], yte[:30].numpy(), maps, local="conv")
    assert len(table) == 5 and len(curves) == 10
    assert table["deletion_auc"].between(0, 1).all()


def test_token_baselines(token_model):
    inputs, labels, _ = keyword_texts(20, seed=6)
    cam = E.token_gradcam_maps(token_model, "layer", inputs, labels.numpy())
    ig = E.token_integrated_gradients_maps(token_model, "embed", inputs, labels.numpy(),
                                           n_steps=4)
    mask = inputs["attention_mask"].numpy().astype(bool)
    for m in (cam, ig):
        assert m.shape == (20, 10)
        assert np.isnan(m[~mask]).all() and np.isfinite(m[mask]).all()


def test_randomised_copy_redraws_every_parameter(digits):
    model = digits[0]
    clone = E.randomised_copy(model, seed=0)
    for (name, p), q in zip(model.named_parameters(), clone.parameters(), strict=True):
        assert not torch.equal(p, q), name
    again = E.randomised_copy(model, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(clone.parameters(), again.parameters(),
                                                 strict=True))


def test_rank_correlation():
    a = np.arange(12.0).reshape(2, 6)
    assert E.rank_correlation(a, a).tolist() == [1.0, 1.0]
    assert E.rank_correlation(a, -a).tolist() == [-1.0, -1.0]
    assert np.isnan(E.rank_correlation(np.ones((1, 6)), a[:1])[0])


def test_randomisation_check_reports_correlations(digits_dec, digits):
    _, xtr, _, xte, _ = digits
    out = E.randomisation_check(digits_dec, xtr[:256], xte[:20])
    assert set(out) == {"total", "decision", "redundant"}
    assert all(-1.0 <= v <= 1.0 for v in out.values())


def test_token_gradcam_of_a_frozen_model(token_model):
    inputs, labels, _ = keyword_texts(8, seed=7)
    flags = [p.requires_grad for p in token_model.parameters()]
    for p in token_model.parameters():
        p.requires_grad_(False)
    try:
        cam = E.token_gradcam_maps(token_model, "layer", inputs, labels.numpy())
    finally:
        for p, f in zip(token_model.parameters(), flags, strict=True):
            p.requires_grad_(f)
    assert np.isfinite(cam[inputs["attention_mask"].numpy().astype(bool)]).all()
