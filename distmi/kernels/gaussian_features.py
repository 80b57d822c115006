"""Gaussian log-densities for many small mixtures as batched matrix products.

For a point x in R^D and a Gaussian N(mu, Sigma) with precision P = Sigma^-1,

    (x - mu)^T P (x - mu) = sum_d P_dd x_d^2 + 2 sum_{d<e} P_de x_d x_e - 2 (P mu)^T x + mu^T P mu.

With the quadratic feature map phi(x) = [x_1..x_D, x_d x_e for d <= e] (F = D + D(D+1)/2
features), every component's log-density is one inner product phi(x) . c_k plus a constant, so
log [pi_k N(x | mu_k, Sigma_k)] for G mixtures x K components x N points is a single batched
matmul (G, K, F) @ (G, F, N). The same features give the M-step sufficient statistics
(responsibility-weighted sums of phi). Inputs are standardised upstream, which keeps the
expansion numerically safe in float64.
"""

from __future__ import annotations

import math

import torch

from distmi.kernels.small_linalg import (
    UNROLL_MAX_DIM,
    cholesky_unrolled,
    tril_inverse_unrolled,
)

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
    reg_used = torch.full(cov.shape[:-2], reg, dtype=cov.dtype, device=cov.device)
    chol, ok = cholesky_unrolled(cov + reg * eye if reg > 0 else cov)
    current = reg
    while not bool(ok.all()):
        current = max(current * 10.0, 1e-12)
        bad = ~ok
        if current > max_reg:
            chol = torch.where(bad[..., None, None], math.sqrt(max_reg) * eye, chol)
            reg_used = torch.where(bad, torch.full_like(reg_used, max_reg), reg_used)
            break
        reg_used = torch.where(bad, torch.full_like(reg_used, current), reg_used)
        retry, ok_retry = cholesky_unrolled(cov + reg_used[..., None, None] * eye)
        chol = torch.where(bad[..., None, None], retry, chol)
        ok = ok | ok_retry
    return chol, reg_used


def _terms_unrolled(
    log_weights: torch.Tensor, means: torch.Tensor, cov: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coefficients for D <= UNROLL_MAX_DIM with every D x D algebra step unrolled.

    Returns coef (G, K, F), bias (G, K) and ok (G, K) (positive definite).
    """
    d = means.shape[-1]
    tiny = torch.finfo(cov.dtype).tiny
    chol: list[list[torch.Tensor]] = [[None] * d for _ in range(d)]  # type: ignore[list-item]
    ok = None
    for j in range(d):
        s = cov[..., j, j]
        for k in range(j):
            s = s - chol[j][k] * chol[j][k]
        ok = s > 0 if ok is None else ok & (s > 0)
        chol[j][j] = torch.sqrt(torch.clamp(s, min=tiny))
        for i in range(j + 1, d):
            t = cov[..., i, j]
            for k in range(j):
                t = t - chol[i][k] * chol[j][k]
            chol[i][j] = t / chol[j][j]
    inv: list[list[torch.Tensor]] = [[None] * d for _ in range(d)]  # type: ignore[list-item]
    for i in range(d):
        inv[i][i] = 1.0 / chol[i][i]
        for j in range(i):
            t = chol[i][j] * inv[j][j]
            for k in range(j + 1, i):
                t = t + chol[i][k] * inv[k][j]
            inv[i][j] = -t * inv[i][i]
    prec = [[None] * d for _ in range(d)]
    for a in range(d):
        for b in range(a, d):
            t = inv[b][a] * inv[b][b]
            for i in range(b + 1, d):
                t = t + inv[i][a] * inv[i][b]
            prec[a][b] = prec[b][a] = t
    mu = [means[..., a] for a in range(d)]
    p_mu = []
    for a in range(d):
        t = prec[a][0] * mu[0]
        for b in range(1, d):
            t = t + prec[a][b] * mu[b]
        p_mu.append(t)
    mu_p_mu = p_mu[0] * mu[0]
    log_det = torch.log(chol[0][0])
    for a in range(1, d):
        mu_p_mu = mu_p_mu + p_mu[a] * mu[a]
        log_det = log_det + torch.log(chol[a][a])
    quad = [-0.5 * prec[a][a] if a == b else -prec[a][b] for a, b in _triu_pairs(d)]
    coef = torch.stack(p_mu + quad, dim=-1)
    bias = log_weights - 0.5 * (mu_p_mu + d * LOG_2PI) - log_det
    return coef, bias, ok


def _triu_pairs(d: int) -> list[tuple[int, int]]:
    rows, cols = torch.triu_indices(d, d)
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


def component_coefficients(
    log_weights: torch.Tensor, means: torch.Tensor, cov: torch.Tensor, reg: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear coefficients so that log pi_k N(x|mu_k,Sigma_k) = coef[:, k] . phi(x) + bias[k].

    Components whose covariance is not positive definite get their own ridge, escalated x10
    from ``max(reg, 1e-12)`` until they are (never an exception).

    Args:
        log_weights: (G, K)
        means: (G, K, D)
        cov: (G, K, D, D) covariances (``reg * I`` is added first when ``reg > 0``).
    Returns:
        coef: (G, K, F); bias: (G, K); cov_used: (G, K, D, D) the covariances actually used.
    """
    d = means.shape[-1]
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    if reg > 0:
        cov = cov + reg * eye
    if d > UNROLL_MAX_DIM:
        chol, reg_used = safe_cholesky(cov, 0.0)
        cov = cov + reg_used[..., None, None] * eye
        chol_inv = tril_inverse_unrolled(chol)
        precision = chol_inv.transpose(-1, -2) @ chol_inv
        p_mu = (precision * means[..., None, :]).sum(-1)
        rows, cols = triu_indices(d, means.device)
        quad = precision[..., rows, cols] * torch.where(rows == cols, -0.5, -1.0).to(cov.dtype)
        coef = torch.cat([p_mu, quad], dim=-1)
        log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        bias = log_weights - 0.5 * ((p_mu * means).sum(-1) + d * LOG_2PI) - log_det
        return coef, bias, cov
    coef, bias, ok = _terms_unrolled(log_weights, means, cov)
    ridge = max(reg, 1e-12)
    while not bool(ok.all()):
        bad = ~ok
        ridge_cov = cov + ridge * eye
        cov = torch.where(bad[..., None, None], ridge_cov if ridge <= 1.0 else eye.expand_as(cov), cov)
        coef2, bias2, ok2 = _terms_unrolled(log_weights, means, cov)
        coef = torch.where(bad[..., None], coef2, coef)
        bias = torch.where(bad, bias2, bias)
        ok = ok | ok2 | (ridge > 1.0)
        ridge *= 10.0
    return coef, bias, cov


def component_log_prob(
    features_t: torch.Tensor, coef: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """log pi_k N(x_n | mu_k, Sigma_k) for all components and points.

    The component axis comes before the point axis so that reductions over components are
    elementwise across contiguous rows (much faster on CPU than reducing a short last axis).

    Args:
        features_t: (G, F, N) quadratic features of the points, transposed.
        coef: (G, K, F); bias: (G, K).
    Returns:
        (G, K, N)
    """
    return torch.baddbmm(bias[:, :, None], coef, features_t)


def logsumexp_components(log_prob: torch.Tensor) -> torch.Tensor:
    """log sum_k exp(log_prob[:, k, :]) over axis 1, shape (G, N); -inf entries allowed."""
    peak = log_prob.amax(1)  # (G, N)
    peak = torch.nan_to_num(peak, neginf=0.0)
    return peak + torch.log(torch.exp_(log_prob - peak[:, None, :]).sum(1))


def mixture_log_density(
    points: torch.Tensor,
    log_weights: torch.Tensor,
    means: torch.Tensor,
    covariances: torch.Tensor,
) -> torch.Tensor:
    """log p(x) of Gaussian mixtures at given points.

    Args:
        points: (G, M, D)
        log_weights: (G, K) (``-inf`` marks padding components)
        means: (G, K, D); covariances: (G, K, D, D)
    Returns:
        (G, M)

    On CPU with D <= 2 this runs the compiled kernel of :mod:`distmi.kernels.mixture_compiled`
    (same values to rounding).
    """
    from distmi.kernels import mixture_compiled

    if mixture_compiled.supports(points.shape[-1], points.device.type):
        return torch.from_numpy(mixture_compiled.log_density_compiled(
            points.detach().numpy(), log_weights.detach().numpy(), means.detach().numpy(),
            covariances.detach().numpy(), n_threads=torch.get_num_threads(),
        ))
    coef, bias, _ = component_coefficients(log_weights, means, covariances)
    feats_t = quadratic_features(points).transpose(1, 2)
    return logsumexp_components(component_log_prob(feats_t, coef, bias))
