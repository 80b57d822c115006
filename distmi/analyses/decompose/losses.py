"""Infomax bounds on I(Z; X_i), the training objective and the pointwise maps. All in nats.

Scores ``S[n, m, p] = T(z_n, x_{m,p})`` (B, B, P) pair the representation of sample n with the
local input p of sample m: positives are ``n == m``, negatives are local inputs of *other*
samples (Deep InfoMax; Gu's Infomax estimator).

- Feature maps: one bound per position p over the batch, I(Z; X_p), then the mean over p.
  Negatives of position p are position p of the other samples, so each bound estimates the
  MI of Z with that position's local input.
- Tokens: one bound pooled over all valid tokens (negatives are any valid token of another
  sentence), since token positions do not align across sentences.

Bounds (:mod:`distmi.kernels.bounds`):

- ``"jsd"``: the Jensen-Shannon objective E_P[-softplus(-T)] - E_Q[softplus(T)], whose
  maximiser is T* = log p(z, x_i) / (p(z) p(x_i)) (Hjelm et al. 2019 recommend it for local
  Infomax: stable, insensitive to the number of negatives);
- ``"dv"``: Donsker-Varadhan E_P[T] - log E_Q[e^T] with MINE's moving-average gradient
  correction (Belghazi et al. 2018); its maximiser is T* up to an additive constant.

Training objective (Gu, with I(Z; X) the mean of the local bounds):

    L = -(I(Z; X) + I(Z; X')) + CE(f(X'), y) + c * mean(lambda),    X' = lambda * X.

Pointwise maps. For both bounds the critic estimates the log density ratio up to a constant, so
the pointwise information of local input x_{n,i} with z_n is read off as

    pmi(n, i) = T(z_n, x_{n,i}) - log mean_r exp T(z_n, x_{r,i}),

r running over a fixed reference bank of local inputs from the fitting data (position i of each
reference sample for maps; every valid reference token for tokens). Its mean over samples is the
DV estimate of I(Z; X_i). total = pmi with X, decision = pmi with X' (the bank masked too),
redundant = total - decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from distmi.kernels.bounds import (
    dv_value,
    js_value,
    log_mean_exp,
    mine_surrogate,
    update_log_ema,
)

BOUND_NAMES = ("jsd", "dv")
MINE_EMA_ALPHA = 0.01


def split_scores(scores: torch.Tensor, valid: torch.Tensor, local: str
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative scores as (G, n_pos), (G, n_neg) groups for :mod:`bounds`.

    Args:
        scores: (B, B, P), ``[n, m, p] = T(z_n, x_{m,p})``.
        valid: (B, P) bool, local inputs that exist (all True for feature maps).
        local: "conv" -> G = P groups (one bound per position); "tokens" -> G = 1.
    """
    b = scores.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=scores.device)
    if local == "conv":
        by_position = scores.permute(2, 0, 1)  # (P, B, B)
        positive = torch.diagonal(by_position, dim1=1, dim2=2)  # (P, B)
        negative = by_position[:, ~eye]  # (P, B * (B - 1))
        return positive, negative
    positive = scores[eye.unsqueeze(-1) & valid.unsqueeze(0)]  # valid tokens of sample n itself
    negative = scores[~eye.unsqueeze(-1) & valid.unsqueeze(0)]  # valid tokens of other samples
    return positive.unsqueeze(0), negative.unsqueeze(0)


@dataclass
class BoundState:
    """MINE's moving average of log E_Q[e^T] per group (DV only); ``None`` before step 1."""

    log_ema: torch.Tensor | None = None


def infomax_terms(scores: torch.Tensor, valid: torch.Tensor, local: str, bound: str,
                  state: BoundState) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective to maximise, reported bound value), both scalars in nats.

    For "jsd" the objective is the JS value (the reported value is the DV value of the same
    scores, an MI estimate). For "dv" the objective is MINE's surrogate, whose gradient is the
    bias-corrected DV gradient, and ``state`` is updated.
    """
    positive, negative = split_scores(scores, valid, local)
    value = dv_value(positive, negative).mean()
    if bound == "jsd":
        return js_value(positive, negative).mean(), value.detach()
    state.log_ema = update_log_ema(state.log_ema, negative, MINE_EMA_ALPHA,
                                   first=state.log_ema is None)
    return mine_surrogate(positive, negative, state.log_ema).mean(), value.detach()


def masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over entries where ``valid`` (same shape) is True."""
    w = valid.to(values.dtype)
    return (values * w).sum() / w.sum().clamp_min(1.0)


def total_loss(objective_x: torch.Tensor, objective_xp: torch.Tensor, logits_masked: torch.Tensor,
               labels: torch.Tensor, lam: torch.Tensor, valid: torch.Tensor, c: float
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = -(I(Z;X) + I(Z;X')) + CE(f(X'), y) + c * mean(lambda); returns (L, its parts)."""
    ce = F.cross_entropy(logits_masked, labels)
    sparsity = masked_mean(lam, valid)
    loss = -(objective_x + objective_xp) + ce + c * sparsity
    return loss, {"ce": ce.detach(), "mean_lambda": sparsity.detach()}


def pointwise_information(critic_scores_own: torch.Tensor, reference_scores: torch.Tensor,
                          local: str) -> torch.Tensor:
    """pmi(n, i) = T(z_n, x_{n,i}) - log mean_r exp T(z_n, x_{r,i}); -> (n, P) nats.

    Args:
        critic_scores_own: (n, P), T of each sample's representation with its own local inputs.
        reference_scores: conv (n, R, P) = T(z_n, x_{r,p}); tokens (n, N_ref) over every valid
            reference token.
    """
    if local == "conv":
        return critic_scores_own - log_mean_exp(reference_scores, dim=1)
    return critic_scores_own - log_mean_exp(reference_scores, dim=1).unsqueeze(1)

