"""Mutual information of fitted Gaussian mixtures, for many mixtures at once.

For a mixture p over z = (x, y) (and z for conditional MI), MI is an expectation under p of a
signed sum of log-densities of marginal mixtures (a marginal of a GMM is the GMM of the sliced
means and covariances):

    I(X;Y)    = E_p[ log p(x,y) - log p(x) - log p(y) ]
    I(X;Y|Z)  = E_p[ log p(x,y,z) + log p(z) - log p(x,z) - log p(y,z) ]

Integration schemes (all deterministic given the seed, and shared by every mixture of a call,
so bootstrap replicates differ only through their fits, never through integration noise):

- ``"quadrature"`` (default up to 4 dimensions): in 1-D a trapezoid rule on a grid of 256
  points per component spanning its mean +-10 sd (so every component is resolved at its own
  scale; for smooth integrands the rule converges geometrically); in 2-4 dimensions randomised quasi-Monte Carlo per component:
  a fixed scrambled Sobol set t_j mapped to N(0, I) and placed at mu_k + L_k t_j with weight
  pi_k / J, the set whitened to mean 0 and covariance I (exact for a single Gaussian).
  Measured against dense-grid integration on a 7-component fit this is within ~1e-3 nats, where tensor Gauss-Hermite with 48^2 nodes was off by 2e-3 (log-mixture
  integrands have sharp transitions between components, which polynomial rules resolve poorly).
- ``"mc"``: Monte Carlo with common random numbers (the same standard normals for every
  mixture).

Each term of the sum is integrated over its own marginal, E_p[f(z_S)] = E_{p_S}[f(z_S)].

Categorical y (class-conditional mixtures p(x|c) with prior p_c):

    I(X;Y) = sum_c p_c E_{x ~ p(x|c)}[ log p(x|c) - log sum_c' p_c' p(x|c') ].
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from distmi.kernels import mixture_compiled
from distmi.kernels.em import GMMParams
from distmi.kernels.gaussian_features import mixture_log_density, safe_cholesky

# Nodes per mixture (1-D grid) or per component (quasi-Monte Carlo, 2-4 dims) by dimension.
DEFAULT_NODES = {1: 256, 2: 1024, 3: 2048, 4: 2048}
GRID_HALF_WIDTH = 10.0  # standard deviations covered on each side of every component

Term = tuple[float, Sequence[int]]


@lru_cache(maxsize=32)
def _sobol_normals(dim: int, n_points: int) -> np.ndarray:
    """A fixed scrambled Sobol set mapped to N(0, I), shape (n_points, dim).

    The set is whitened to mean exactly 0 and covariance exactly I, so expectations of
    quadratics (a single Gaussian's log-density) are integrated exactly. (torch's Sobol
    engine rather than scipy's: importing ``scipy.stats`` costs a second per process.)
    """
    m = int(np.ceil(np.log2(n_points)))
    engine = torch.quasirandom.SobolEngine(dim, scramble=True, seed=20221031)
    u = engine.draw(2**m, dtype=torch.float64)[:n_points].clamp_(1e-12, 1 - 1e-12)
    t = torch.special.ndtri(u).numpy()
    t = t - t.mean(0)
    chol = np.linalg.cholesky(t.T @ t / len(t))
    return np.linalg.solve(chol, t.T).T


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
    if scheme == "quadrature" and d == 1:
        return _grid_1d(params, n_nodes or DEFAULT_NODES[1])
    if scheme == "quadrature":
        nodes = torch.as_tensor(
            _sobol_normals(d, n_nodes or DEFAULT_NODES.get(d, 4096)),
            dtype=params.means.dtype, device=params.means.device,
        )  # (J, D)
        pts = params.means[:, :, None, :] + torch.einsum("gkde,je->gkjd", chol, nodes)
        pi = torch.exp(params.log_weights)  # (G, K); padding components get 0
        pw = (pi / nodes.shape[0])[:, :, None].expand(-1, -1, nodes.shape[0])
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


def standard_nodes(dim: int, n_nodes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The quadrature rule for N(0, I) that every component's nodes are placed from:
    (J, D) nodes and (J,) weights summing to 1 (the 1-D trapezoid grid or the whitened
    Sobol set)."""
    if dim == 1:
        steps = np.linspace(-GRID_HALF_WIDTH, GRID_HALF_WIDTH, n_nodes or DEFAULT_NODES[1])
        w = np.exp(-0.5 * steps**2)
        w[0] *= 0.5
        w[-1] *= 0.5
        return steps[:, None], w / w.sum()
    nodes = _sobol_normals(dim, n_nodes or DEFAULT_NODES.get(dim, 4096))
    return nodes, np.full(len(nodes), 1.0 / len(nodes))


def negentropy(params: GMMParams, n_nodes: int | None = None) -> torch.Tensor:
    """E_m[log m] (G,) of G mixtures by the per-component quadrature rule.

    CPU mixtures of 1 or 2 dimensions use the compiled kernel of
    :mod:`distmi.kernels.mixture_compiled` (no points are materialised); otherwise the points
    of :func:`integration_points` are evaluated with torch.
    """
    d = params.means.shape[-1]
    if mixture_compiled.supports(d, params.means.device.type):
        nodes, node_w = standard_nodes(d, n_nodes)
        return torch.from_numpy(mixture_compiled.negentropy_compiled(
            nodes, node_w, params.log_weights.numpy(), params.means.numpy(),
            params.covariances.numpy(), n_threads=torch.get_num_threads(),
        ))
    pts, w = integration_points(params, "quadrature", n_nodes=n_nodes)
    log_p = mixture_log_density(pts, params.log_weights, params.means, params.covariances)
    # zero-weight nodes (padding components) may hold any finite value
    return (w * torch.where(w > 0, log_p, torch.zeros_like(log_p))).sum(-1)


def _grid_1d(params: GMMParams, n_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Trapezoid rule for 1-D mixtures, one even grid per component over mean +- 10 sd.

    Per-component grids follow every component's own scale, so a very narrow component (a
    near point mass) is resolved as well as a wide one. Returns points (G, K * J, 1) and
    weights (G, K * J): pi_k times the normalised trapezoid weights of N(mu_k, s_k^2).
    """
    mu = params.means[..., 0]  # (G, K)
    sd = torch.sqrt(params.covariances[..., 0, 0])
    steps = torch.linspace(-GRID_HALF_WIDTH, GRID_HALF_WIDTH, n_nodes, dtype=mu.dtype,
                           device=mu.device)
    std_w = torch.exp(-0.5 * steps**2)
    std_w[0] *= 0.5
    std_w[-1] *= 0.5
    std_w = std_w / std_w.sum()  # (J,)
    pts = mu[..., None] + sd[..., None] * steps  # (G, K, J)
    w = torch.exp(params.log_weights)[..., None] * std_w  # padding components get 0
    g = mu.shape[0]
    return pts.reshape(g, -1, 1), w.reshape(g, -1)


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
    chunk: int = 256,
) -> torch.Tensor:
    """E_p[ sum_t sign_t log p_{dims_t}(z) ] for each of G mixtures, shape (G,).

    ``terms`` for MI with x = dims 0..dx-1 and y = the rest:
    ``[(1, all), (-1, x_dims), (-1, y_dims)]``.

    With quadrature each term is integrated over its own marginal, E_p[f(z_S)] =
    E_{p_S}[f(z_S)] (:func:`negentropy`), with the rule of its own dimension. Monte Carlo
    draws joint samples once and projects them onto each term's dimensions (common random
    numbers across terms).
    """
    scheme = resolve_scheme(params.means.shape[-1], scheme)
    d = params.means.shape[-1]
    device = params.means.device
    g_total = params.means.shape[0]
    if scheme == "quadrature" and all(
        mixture_compiled.supports(len(dims), device.type) for _, dims in terms
    ):
        chunk = g_total  # the compiled kernel materialises nothing: no need to chunk
    out = []
    for start in range(0, g_total, max(chunk, 1)):
        idx = torch.arange(start, min(start + chunk, g_total), device=device)
        sub = params.index(idx)
        total = torch.zeros(idx.shape[0], dtype=params.means.dtype, device=device)
        if scheme == "quadrature":
            for sign, dims in terms:
                nodes = n_nodes if len(dims) == d and n_nodes else None
                total = total + sign * negentropy(marginal(sub, dims), nodes)
            out.append(total)
            continue
        pts, w = integration_points(sub, scheme, mc_normals=mc_normals, mc_uniforms=mc_uniforms)
        out.append((w * pointwise_log_ratio(sub, terms, pts, chunk=idx.shape[0])).sum(-1))
    return torch.cat(out)


def pointwise_log_ratio(params: GMMParams, terms: Sequence[Term], points: torch.Tensor,
                        chunk: int = 64) -> torch.Tensor:
    """sum_t sign_t log p_{dims_t}(z) at given points, for each of G mixtures: (G, M).

    With the MI terms this is the pointwise MI log p(x, y) / (p(x) p(y)) at every sample, whose
    mean is the plug-in MI on those samples and whose centred values are its influence values
    (the BCa acceleration, :func:`distmi.kernels.significance.influence_acceleration`).

    Args:
        params: G mixtures of dimension D; points: (G, M, D).
    """
    g_total = params.means.shape[0]
    device = params.means.device
    out = []
    for start in range(0, g_total, max(chunk, 1)):
        idx = torch.arange(start, min(start + chunk, g_total), device=device)
        sub = params.index(idx)
        pts = points[start:start + idx.shape[0]]
        total = torch.zeros(pts.shape[:2], dtype=params.means.dtype, device=device)
        for sign, dims in terms:
            m = marginal(sub, dims)
            dims_idx = torch.as_tensor(list(dims), device=device)
            total = total + sign * mixture_log_density(pts[..., dims_idx], m.log_weights,
                                                       m.means, m.covariances)
        out.append(total)
    return torch.cat(out)


def _class_log_densities(class_params: list[GMMParams], points: torch.Tensor) -> torch.Tensor:
    """log p(x | c) of every class mixture at points (G, M, D): (G, M, C)."""
    return torch.stack([mixture_log_density(points, cp.log_weights, cp.means, cp.covariances)
                        for cp in class_params], dim=-1)


def categorical_pointwise(class_params: list[GMMParams], log_prior: torch.Tensor,
                          points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(x | c) - log sum_c' pi_c' p(x | c') at each sample (x, c): (G, M).

    Args:
        class_params: C entries of G mixtures p(x | c); log_prior: (G, C);
        points: (G, M, D); labels: (M,) class codes of the points.
    """
    log_dens = _class_log_densities(class_params, points)  # (G, M, C)
    log_mix = torch.logsumexp(log_dens + log_prior[:, None, :], dim=-1)
    own = torch.gather(log_dens, 2, labels.view(1, -1, 1).expand(log_dens.shape[0], -1, 1))
    return own[..., 0] - log_mix


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
        log_dens = _class_log_densities(class_params, pts)  # (G, J, C)
        log_mix = torch.logsumexp(log_dens + log_prior[:, None, :], dim=-1)  # (G, J)
        integrand = log_dens[..., c] - log_mix
        integrand = torch.where(w > 0, integrand, torch.zeros_like(integrand))
        total = total + torch.exp(log_prior[:, c]) * (w * integrand).sum(-1)
    return total
