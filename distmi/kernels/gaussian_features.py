"""Gaussian log-densities for many small mixtures as batched matrix products.

For a point x in R^D and a Gaussian N(mu, Sigma) with precision P = Sigma^-1,

    (x - mu)^T P (x - mu) = sum_d P_dd x_d^2 + 2 sum_{d<e} P_de x_d x_e - 2 (P mu)^T x + mu^T P mu.

With the quadratic feature map phi(x) = [x_1..x_D, x_d x_e for d <= e] (F = D + D(D+1)/2
features), every component's log-density is one inner product phi(x) . c_k plus a constant, so
log [pi_k N(x | mu_k, Sigma_k)] for G mixtures x N points x K components is a single batched
matmul (G, N, F) @ (G, F, K). The same features give the M-step sufficient statistics
(responsibility-weighted sums of phi). Inputs are standardised upstream, which keeps the
expansion numerically safe in float64.
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)


def triu_indices(dim: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Row/column indices of the upper triangle (d <= e), shape (D(D+1)/2,) each."""
    idx = torch.triu_indices(dim, dim, device=device)
    return idx[0], idx[1]


def quadratic_features(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = [x, x_d x_e (d <= e)].

    Args:
        x: (..., N, D)
    Returns:
        (..., N, D + D(D+1)/2)
    """
    d = x.shape[-1]
    rows, cols = triu_indices(d, x.device)
    return torch.cat([x, x[..., rows] * x[..., cols]], dim=-1)


def safe_cholesky(
    cov: torch.Tensor, reg: float, max_reg: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky factor of ``cov + reg I``, escalating ``reg`` x10 per matrix until it succeeds.

    A collapsed component (singular covariance, e.g. fitted to duplicated bootstrap rows) never
    raises: its own regularisation grows until the factorisation works.

    Args:
        cov: (..., D, D) symmetric.
        reg: initial ridge added to the diagonal.
        max_reg: the largest ridge tried; beyond it the matrix is replaced by ``max_reg * I``.
    Returns:
        chol: (..., D, D) lower-triangular factor.
        reg_used: (...) ridge that was finally added.
    """
    d = cov.shape[-1]
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    reg_used = torch.full(cov.shape[:-2], reg, dtype=cov.dtype, device=cov.device)
    chol, info = torch.linalg.cholesky_ex(cov + reg * eye)
    current = reg
    while bool((info != 0).any()):
        bad = info != 0
        current = max(current * 10.0, 1e-12)
        if current > max_reg:
            chol = torch.where(bad[..., None, None], math.sqrt(max_reg) * eye, chol)
            reg_used = torch.where(bad, torch.full_like(reg_used, max_reg), reg_used)
            break
        retry, info_retry = torch.linalg.cholesky_ex(cov[bad] + current * eye)
        chol[bad] = retry
        reg_used[bad] = current
        info = info.clone()
        info[bad] = info_retry
    return chol, reg_used


def component_coefficients(
    log_weights: torch.Tensor, means: torch.Tensor, chol: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear coefficients so that log pi_k N(x|mu_k,Sigma_k) = phi(x) @ coef[:, k] + bias[k].

    Args:
        log_weights: (G, K)
        means: (G, K, D)
        chol: (G, K, D, D) Cholesky factors of the covariances.
    Returns:
        coef: (G, F, K)
        bias: (G, K)
    """
    d = means.shape[-1]
    precision = torch.cholesky_inverse(chol)  # (G, K, D, D)
    p_mu = torch.einsum("gkde,gke->gkd", precision, means)  # (G, K, D)
    mu_p_mu = (p_mu * means).sum(-1)  # (G, K)
    rows, cols = triu_indices(d, means.device)
    quad = precision[..., rows, cols] * torch.where(rows == cols, 1.0, 2.0).to(means.dtype)
    coef = torch.cat([p_mu, -0.5 * quad], dim=-1)  # (G, K, F)
    log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (G, K)
    bias = log_weights - 0.5 * (mu_p_mu + d * LOG_2PI + log_det)
    return coef.transpose(1, 2).contiguous(), bias


def component_log_prob(
    features: torch.Tensor, coef: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """log pi_k N(x_n | mu_k, Sigma_k) for all points and components.

    Args:
        features: (G, N, F) quadratic features of the points.
        coef: (G, F, K); bias: (G, K).
    Returns:
        (G, N, K)
    """
    return torch.baddbmm(bias[:, None, :], features, coef)


def mixture_log_density(
    points: torch.Tensor,
    log_weights: torch.Tensor,
    means: torch.Tensor,
    covariances: torch.Tensor,
    reg: float = 0.0,
) -> torch.Tensor:
    """log p(x) of Gaussian mixtures at given points.

    Args:
        points: (G, M, D)
        log_weights: (G, K) (``-inf`` marks padding components)
        means: (G, K, D); covariances: (G, K, D, D)
    Returns:
        (G, M)
    """
    chol, _ = safe_cholesky(covariances, reg) if reg > 0 else safe_cholesky(covariances, 0.0)
    coef, bias = component_coefficients(log_weights, means, chol)
    return torch.logsumexp(component_log_prob(quadratic_features(points), coef, bias), dim=-1)
