"""The bounds, the objective and the pointwise maps on small tensors, against hand formulas and
a closed-form Gaussian MI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distmi.analyses.decompose.losses import (
    BoundState,
    infomax_terms,
    masked_mean,
    pointwise_information,
    split_scores,
    total_loss,
)


def test_split_scores_conv_pairs_each_position_with_other_samples():
    b, p = 3, 2
    scores = torch.arange(b * b * p, dtype=torch.float64).reshape(b, b, p)
    pos, neg = split_scores(scores, torch.ones(b, p, dtype=torch.bool), "conv")
    assert pos.shape == (p, b) and neg.shape == (p, b * (b - 1))
    for q in range(p):
        assert pos[q].tolist() == [scores[n, n, q].item() for n in range(b)]
        assert sorted(neg[q].tolist()) == sorted(
            scores[n, m, q].item() for n in range(b) for m in range(b) if n != m)


def test_split_scores_tokens_skip_padding_of_the_local_side():
    scores = torch.arange(2 * 2 * 3, dtype=torch.float64).reshape(2, 2, 3)
    valid = torch.tensor([[True, True, False], [True, False, False]])
    pos, neg = split_scores(scores, valid, "tokens")
    assert sorted(pos[0].tolist()) == sorted([scores[0, 0, 0], scores[0, 0, 1], scores[1, 1, 0]])
    assert sorted(neg[0].tolist()) == sorted([scores[0, 1, 0], scores[1, 0, 0], scores[1, 0, 1]])


def test_jsd_and_dv_terms_match_the_formulas():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 4, 3, generator=g, dtype=torch.float64)
    valid = torch.ones(4, 3, dtype=torch.bool)
    eye = torch.eye(4, dtype=torch.bool)
    js_obj, dv_val = infomax_terms(scores, valid, "conv", "jsd", BoundState())
    per_pos_js, per_pos_dv = [], []
    for q in range(3):
        s = scores[:, :, q]
        joint, marg = s[eye], s[~eye]
        per_pos_js.append((-F.softplus(-joint)).mean() - F.softplus(marg).mean())
        per_pos_dv.append(joint.mean() - torch.log(torch.exp(marg).mean()))
    assert js_obj.item() == pytest.approx(torch.stack(per_pos_js).mean().item(), abs=1e-12)
    assert dv_val.item() == pytest.approx(torch.stack(per_pos_dv).mean().item(), abs=1e-12)

    state = BoundState()
    surrogate, value = infomax_terms(scores, valid, "conv", "dv", state)
    assert value.item() == pytest.approx(dv_val.item(), abs=1e-12)
    assert state.log_ema is not None and state.log_ema.shape == (3,)
    # first step: the moving average is the batch's log E_Q[e^T], so the surrogate equals
    # E_P[T] - 1 per position
    expected = torch.stack([scores[:, :, q][eye].mean() - 1.0 for q in range(3)]).mean()
    assert surrogate.item() == pytest.approx(expected.item(), abs=1e-12)


def test_total_loss_is_the_sum_of_its_parts():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    lam = torch.tensor([[0.2, 0.4, 0.9]])
    valid = torch.tensor([[True, True, False]])
    loss, parts = total_loss(torch.tensor(0.3), torch.tensor(0.1), logits, labels, lam, valid,
                             c=0.5)
    ce = F.cross_entropy(logits, labels)
    assert parts["mean_lambda"].item() == pytest.approx(0.3)
    assert loss.item() == pytest.approx(-(0.3 + 0.1) + ce.item() + 0.5 * 0.3)
    assert masked_mean(lam, valid).item() == pytest.approx(0.3)


def test_pointwise_information_of_the_true_log_ratio_averages_to_the_gaussian_mi():
    """With T the exact log density ratio of a bivariate Gaussian (rho = 0.6), the mean of the
    pointwise maps is the DV estimate of I = -0.5 log(1 - rho^2) = 0.2231 nats. Its error with
    n = 4000 samples and R = 4000 references is ~0.01 (sd of the log ratio / sqrt(n))."""
    rho = 0.6
    rng = np.random.default_rng(0)
    n = 4000

    def draw(size):
        z = rng.normal(size=size)
        return z, rho * z + math.sqrt(1 - rho**2) * rng.normal(size=size)

    def log_ratio(z, x):  # broadcastable
        return (-0.5 * math.log(1 - rho**2)
                - (rho**2 * (z**2 + x**2) - 2 * rho * z * x) / (2 * (1 - rho**2)))

    z, x = draw(n)
    _, x_ref = draw(n)
    own = torch.from_numpy(log_ratio(z, x))[:, None]  # (n, P=1)
    ref = torch.from_numpy(log_ratio(z[:, None], x_ref[None, :]))[:, :, None]  # (n, R, 1)
    pmi = pointwise_information(own, ref, "conv")
    assert pmi.shape == (n, 1)
    assert pmi.mean().item() == pytest.approx(-0.5 * math.log(1 - rho**2), abs=0.03)
    tokens = pointwise_information(own.expand(n, 3), ref[:, :, 0], "tokens")
    assert torch.allclose(tokens[:, 0], pmi[:, 0])
