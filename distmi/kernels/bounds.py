"""Variational lower bounds on mutual information, as pure batched functions of critic scores.

Notation: P joint distribution of (X, Y), Q = p(x)p(y) the product of its marginals, T a critic.
Scores come with a leading pair dimension: ``t_joint`` (P, M) holds T(x_i, y_i) on joint samples,
``t_marg`` (P, M) holds T on samples of Q, ``scores`` (P, B, B) holds T(x_i, y_j). All values are
in nats and every function returns one value per pair, shape (P,).

* Donsker-Varadhan / MINE (Belghazi et al. 2018, arXiv:1801.04062, Sec. 3.1)
      I >= E_P[T] - log E_Q[e^T]
  The minibatch gradient of log E_Q[e^T] is biased because the denominator E_Q[e^T] is estimated
  from the same batch. MINE (Sec. 3.2) replaces it by an exponential moving average m_t:
      m_t = (1 - alpha) m_{t-1} + alpha * mean_batch(e^T),
      grad = E_P[grad T] - E_Q[e^T grad T] / m_t.
  :func:`mine_surrogate` has exactly this gradient; m_t is kept in log space.
* NWJ (Nguyen, Wainwright & Jordan 2010; Poole et al. 2019 Sec. 2.2)
      I >= E_P[T] - E_Q[e^(T - 1)]
* InfoNCE (van den Oord et al. 2018; Poole et al. 2019 Sec. 2.3), with B samples
      I >= E[ 1/B sum_i ( T(x_i, y_i) - log 1/B sum_j e^T(x_i, y_j) ) ]  <=  log B
* SMILE (Song & Ermon 2019, arXiv:1910.06222, Sec. 5)
      I_SMILE = E_P[T] - log E_Q[clip(e^T, e^-tau, e^tau)]
  i.e. the DV value with T clipped to [-tau, tau] in the partition term. As in the paper the
  critic is trained with the Jensen-Shannon f-GAN objective (Nowozin et al. 2016)
      J = E_P[-softplus(-T)] - E_Q[softplus(T)],
  whose maximiser is T* = log p(x,y)/(p(x)p(y)), and the clipped DV value is read off it.

Held-out evaluation writes every bound as ``mean_w(a) - g(log mean_w(exp b))`` over per-row
terms a (joint score, or the InfoNCE row term) and b (:func:`heldout_marginal_rows`) with row
weights w (uniform for the estimate, multinomial counts / n for a
bootstrap replicate), see :func:`weighted_values`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BOUNDS = ("mine", "nwj", "infonce", "smile")


def log_mean_exp(t: torch.Tensor, dim: int) -> torch.Tensor:
    """log(mean(exp(t))) along ``dim``, computed stably."""
    return torch.logsumexp(t, dim=dim) - math.log(t.shape[dim])


def dv_value(t_joint: torch.Tensor, t_marg: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan value E_P[T] - log E_Q[e^T]; (P, M), (P, M') -> (P,)."""
    return t_joint.mean(dim=1) - log_mean_exp(t_marg, dim=1)


def nwj_value(t_joint: torch.Tensor, t_marg: torch.Tensor) -> torch.Tensor:
    """NWJ value E_P[T] - E_Q[e^(T-1)]; (P, M), (P, M') -> (P,)."""
    return t_joint.mean(dim=1) - torch.exp(log_mean_exp(t_marg, dim=1) - 1.0)


def js_value(t_joint: torch.Tensor, t_marg: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon f-GAN objective E_P[-softplus(-T)] - E_Q[softplus(T)]; -> (P,)."""
    return (-F.softplus(-t_joint)).mean(dim=1) - F.softplus(t_marg).mean(dim=1)


def smile_value(t_joint: torch.Tensor, t_marg: torch.Tensor, clip: float) -> torch.Tensor:
    """SMILE value E_P[T] - log E_Q[clip(e^T, e^-clip, e^clip)]; -> (P,)."""
    return dv_value(t_joint, t_marg.clamp(-clip, clip))


def infonce_rows(scores: torch.Tensor) -> torch.Tensor:
    """Per-row InfoNCE terms T(x_i, y_i) - log 1/B sum_j e^T(x_i, y_j); (P, B, B) -> (P, B).

    Each term is <= log B because the logsumexp includes the diagonal.
    """
    diag = torch.diagonal(scores, dim1=1, dim2=2)  # (P, B)
    return diag - log_mean_exp(scores, dim=2)


def infonce_value(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE value, mean of :func:`infonce_rows`; (P, B, B) -> (P,), capped at log B."""
    return infonce_rows(scores).mean(dim=1)


def update_log_ema(
    log_ema: torch.Tensor, t_marg: torch.Tensor, alpha: float, first: bool
) -> torch.Tensor:
    """MINE's moving average of E_Q[e^T] in log space; (P,), (P, M) -> (P,).

    log m_t = logaddexp(log(1 - alpha) + log m_{t-1}, log(alpha) + log mean(e^T)),
    and log m_1 = log mean(e^T) on the first step. The result carries no gradient.
    """
    lme = log_mean_exp(t_marg.detach(), dim=1)
    if first:
        return lme
    return torch.logaddexp(log_ema + math.log1p(-alpha), lme + math.log(alpha))


def mine_surrogate(
    t_joint: torch.Tensor, t_marg: torch.Tensor, log_ema: torch.Tensor
) -> torch.Tensor:
    """Objective whose gradient is MINE's bias-corrected DV gradient; -> (P,).

    E_P[T] - mean(e^T) / m_t with m_t = exp(log_ema) held constant: its gradient is
    E_P[grad T] - E_Q[e^T grad T] / m_t. Its value is not a bound; report :func:`dv_value`.
    """
    return t_joint.mean(dim=1) - torch.exp(log_mean_exp(t_marg, dim=1) - log_ema.detach())


def heldout_marginal_rows(bound: str, t_marg: torch.Tensor, clip: float) -> torch.Tensor:
    """Per-row marginal term b_i = log 1/K sum_k e^{T(x_i, y_(i+k))}; (P, n, K) -> (P, n).

    K product-of-marginal partners per held-out row lower the variance of log E_Q[e^T] by
    about K; SMILE clips each score to [-clip, clip] first. Then mean_i e^{b_i} is the
    estimate of E_Q[e^T] (of E_Q[clip(e^T)] for SMILE) used by :func:`weighted_values`.
    """
    if bound == "smile":
        t_marg = t_marg.clamp(-clip, clip)
    return log_mean_exp(t_marg, dim=2)


def weighted_values(
    bound: str, a: torch.Tensor, b: torch.Tensor | None, weights: torch.Tensor
) -> torch.Tensor:
    """Bound values under row weightings, for the point estimate and the bootstrap.

    Args:
        bound: one of :data:`BOUNDS`.
        a: (P, n) joint-side terms (InfoNCE: the per-row terms of :func:`infonce_rows`).
        b: (P, n) marginal-side scores, or ``None`` for InfoNCE.
        weights: (R, n) non-negative row weights, each row summing to 1.

    Returns:
        (P, R): mine/smile ``a.w - log(exp(b).w)``, nwj ``a.w - exp(log(exp(b).w) - 1)``,
        infonce ``a.w``.
    """
    mean_a = a @ weights.T  # (P, R)
    if b is None:
        return mean_a
    shift = b.max(dim=1, keepdim=True).values  # (P, 1)
    lme = torch.log(torch.exp(b - shift) @ weights.T) + shift  # (P, R)
    if bound == "nwj":
        return mean_a - torch.exp(lme - 1.0)
    return mean_a - lme
