"""Mutual information of fitted Gaussian mixtures, for many mixtures at once.

For a mixture p over z = (x, y) (and z for conditional MI), MI is an expectation under p of a
signed sum of log-densities of marginal mixtures (a marginal of a GMM is the GMM of the sliced
means and covariances):

    I(X;Y)    = E_p[ log p(x,y) - log p(x) - log p(y) ]
    I(X;Y|Z)  = E_p[ log p(x,y,z) + log p(z) - log p(x,z) - log p(y,z) ]

The expectation sum_k pi_k E_{N(mu_k, S_k)}[f] is computed per component either by tensor
Gauss-Hermite quadrature (nodes mu_k + L_k t_j, deterministic; the default up to 4 dimensions)
or by Monte Carlo with common random numbers (the same standard-normal draws for every
mixture, so bootstrap replicates differ only through their fits, not through MC noise).

Categorical y (class-conditional mixtures p(x|c) with prior p_c):

    I(X;Y) = sum_c p_c E_{x ~ p(x|c)}[ log p(x|c) - log sum_c' p_c' p(x|c') ].
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from distmi.kernels.em import GMMParams
from distmi.kernels.gaussian_features import mixture_log_density, safe_cholesky

# Gauss-Hermite nodes per axis by dimension (tensor grid of n**D nodes per component).
DEFAULT_NODES = {1: 64, 2: 32, 3: 12, 4: 7}

Term = tuple[float, Sequence[int]]


@lru_cache(maxsize=32)
def _hermite_grid(dim: int, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite rule for the standard normal in ``dim`` dimensions.

    Returns nodes (J, D) and weights (J,) summing to 1, J = n_nodes ** dim.
    """
    t, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    w = w / w.sum()
    grids = np.meshgrid(*([t] * dim), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1)
    weights = np.ones(nodes.shape[0])
    for wg in np.meshgrid(*([w] * dim), indexing="ij"):
        weights = weights * wg.ravel()
    return nodes, weights


def resolve_scheme(dim: int, scheme: str) -> str:
    """``"auto"`` picks quadrature up to 4 dimensions and Monte Carlo above."""
    if scheme == "auto":
        return "quadrature" if dim in DEFAULT_NODES else "mc"
    return scheme


def integration_points(
    params: GMMParams,
    scheme: str,
    *,
    n_nodes: int | None = None,
    mc_normals: torch.Tensor | None = None,
    mc_uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points and weights that integrate against each mixture.

    Args:
        params: G mixtures, K components, D dims.
        scheme: ``"quadrature"`` or ``"mc"``.
        n_nodes: Gauss-Hermite nodes per axis (quadrature).
        mc_normals: (M, D) standard normals and mc_uniforms: (M,) in [0, 1) (MC).
    Returns:
        points: (G, J, D); weights: (G, J), each row summing to 1.
    """
    g, k, d = params.means.shape
    chol, _ = safe_cholesky(params.covariances, 0.0)  # (G, K, D, D)
    if scheme == "quadrature":
        nodes_np, w_np = _hermite_grid(d, n_nodes or DEFAULT_NODES.get(d, 5))
        nodes = torch.as_tensor(nodes_np, dtype=params.means.dtype, device=params.means.device)
        w = torch.as_tensor(w_np, dtype=params.means.dtype, device=params.means.device)
        pts = params.means[:, :, None, :] + torch.einsum("gkde,je->gkjd", chol, nodes)
        pi = torch.exp(params.log_weights)  # (G, K); padding components get 0
        pw = pi[:, :, None] * w[None, None, :]
        return pts.reshape(g, -1, d), pw.reshape(g, -1)
    if scheme == "mc":
        if mc_normals is None or mc_uniforms is None:
            raise ValueError("mc scheme needs mc_normals and mc_uniforms")
        cdf = torch.cumsum(torch.exp(params.log_weights), dim=-1)  # (G, K)
        cdf = cdf / cdf[:, -1:]
        comp = torch.searchsorted(cdf, mc_uniforms.expand(g, -1).contiguous(), right=True)
        comp = comp.clamp_(max=k - 1)  # (G, M)
        rows = torch.arange(g, device=comp.device)[:, None]
        mu = params.means[rows, comp]  # (G, M, D)
        lc = chol[rows, comp]  # (G, M, D, D)
        pts = mu + torch.einsum("gmde,me->gmd", lc, mc_normals)
        m = mc_normals.shape[0]
        return pts, torch.full((g, m), 1.0 / m, dtype=pts.dtype, device=pts.device)
    raise ValueError(f"unknown integration scheme {scheme!r}")


def marginal(params: GMMParams, dims: Sequence[int]) -> GMMParams:
    """The mixture of the sub-vector ``dims`` (slice means and covariances)."""
    idx = torch.as_tensor(list(dims), device=params.means.device)
    return GMMParams(
        params.log_weights,
        params.means[..., idx],
        params.covariances[..., idx[:, None], idx[None, :]],
    )


def expected_log_ratio(
    params: GMMParams,
    terms: Sequence[Term],
    scheme: str = "auto",
    *,
    n_nodes: int | None = None,
    mc_normals: torch.Tensor | None = None,
    mc_uniforms: torch.Tensor | None = None,
    chunk: int = 512,
) -> torch.Tensor:
    """E_p[ sum_t sign_t log p_{dims_t}(z) ] for each of G mixtures, shape (G,).

    ``terms`` for MI with x = dims 0..dx-1 and y = the rest:
    ``[(1, all), (-1, x_dims), (-1, y_dims)]``.
    """
    scheme = resolve_scheme(params.means.shape[-1], scheme)
    out = []
    g_total = params.means.shape[0]
    for start in range(0, g_total, chunk):
        idx = torch.arange(start, min(start + chunk, g_total), device=params.means.device)
        sub = params.index(idx)
        pts, w = integration_points(
            sub, scheme, n_nodes=n_nodes, mc_normals=mc_normals, mc_uniforms=mc_uniforms
        )
        total = torch.zeros_like(w)
        for sign, dims in terms:
            m = marginal(sub, dims)
            dims_idx = torch.as_tensor(list(dims), device=pts.device)
            total = total + sign * mixture_log_density(
                pts[..., dims_idx], m.log_weights, m.means, m.covariances
            )
        # zero-weight nodes (padding components) may hold any finite value
        out.append((w * torch.where(w > 0, total, torch.zeros_like(total))).sum(-1))
    return torch.cat(out)


def categorical_mi(
    class_params: list[GMMParams],
    log_prior: torch.Tensor,
    scheme: str = "auto",
    *,
    n_nodes: int | None = None,
    mc_normals: torch.Tensor | None = None,
    mc_uniforms: torch.Tensor | None = None,
) -> torch.Tensor:
    """MI between x and a class label from class-conditional mixtures.

    Args:
        class_params: C entries, each G mixtures p(x | c) (components may differ per class).
        log_prior: (G, C) log class probabilities (empirical, per replicate).
    Returns:
        (G,) MI in nats.
    """
    n_classes = len(class_params)
    dim = class_params[0].means.shape[-1]
    scheme = resolve_scheme(dim, scheme)
    total = torch.zeros(log_prior.shape[0], dtype=log_prior.dtype, device=log_prior.device)
    for c in range(n_classes):
        pts, w = integration_points(
            class_params[c], scheme, n_nodes=n_nodes, mc_normals=mc_normals,
            mc_uniforms=mc_uniforms,
        )
        log_dens = torch.stack(
            [
                mixture_log_density(
                    pts, cp.log_weights, cp.means, cp.covariances
                )
                for cp in class_params
            ],
            dim=-1,
        )  # (G, J, C)
        log_mix = torch.logsumexp(log_dens + log_prior[:, None, :], dim=-1)  # (G, J)
        integrand = log_dens[..., c] - log_mix
        integrand = torch.where(w > 0, integrand, torch.zeros_like(integrand))
        total = total + torch.exp(log_prior[:, c]) * (w * integrand).sum(-1)
    return total
