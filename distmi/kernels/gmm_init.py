"""Initialisations for batched EM, driven by pre-drawn uniforms.

Random numbers are drawn once per (seed, K, init) and shared by every element that uses that
init, never per element: a pair fitted inside a batch of 256 pairs starts exactly where it
starts when fitted alone, which makes batched and one-at-a-time results identical.

- ``"random"``: responsibilities r_nk = u_nk / sum_j u_nj with u ~ U(0, 1), then an M-step.
- ``"kmeans++"``: D^2 seeding (Arthur & Vassilvitskii 2007) with sample weights: the first
  centre is drawn with probability w_n / sum w, each next one with probability proportional to
  w_n min_c ||x_n - c||^2 (inverse-CDF with the shared uniforms); ten weighted Lloyd
  (k-means) steps refine the centres, points are assigned to their nearest centre and an
  M-step gives the starting mixture (close to scikit-learn's ``init_params="kmeans"``).
- ``"split"`` (:func:`split_candidates`): K + 1 components grown from a fitted K-component
  mixture by splitting one component along an eigen-axis; deterministic.
"""

from __future__ import annotations

import math

import torch

from distmi.kernels.em import GMMParams, chunk_size, m_step
from distmi.kernels.gaussian_features import quadratic_features


def _draw_index(prob: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw per row. prob (G, N) unnormalised >= 0, u (G,) in [0, 1)."""
    cdf = torch.cumsum(prob, dim=-1)
    target = (u * cdf[:, -1])[:, None]
    idx = torch.searchsorted(cdf, target, right=True)[:, 0]
    return idx.clamp_(max=prob.shape[-1] - 1)


def kmeanspp_responsibilities(
    x: torch.Tensor, w: torch.Tensor, k: int, u: torch.Tensor, lloyd_steps: int = 10
) -> torch.Tensor:
    """Hard responsibilities from weighted k-means++ seeding and a few Lloyd iterations.

    Args:
        x: (G, N, D); w: (G, N) weights; u: (G, K) uniforms.
    Returns:
        (G, K, N) one-hot responsibilities.
    """
    g, _n, _ = x.shape
    rows = torch.arange(g, device=x.device)
    first = _draw_index(w, u[:, 0])
    centres = [x[rows, first]]  # each (G, D)
    d2 = ((x - centres[0][:, None, :]) ** 2).sum(-1)  # (G, N)
    for j in range(1, k):
        prob = w * d2
        # if every weighted distance is zero (all mass on one point), fall back to weights
        prob = torch.where(prob.sum(-1, keepdim=True) > 0, prob, w)
        nxt = _draw_index(prob, u[:, j])
        centres.append(x[rows, nxt])
        d2 = torch.minimum(d2, ((x - centres[-1][:, None, :]) ** 2).sum(-1))
    c = torch.stack(centres, dim=1)  # (G, K, D)
    x_sq = (x * x).sum(-1)  # (G, N)
    for _ in range(lloyd_steps + 1):
        # squared distances (G, K, N) = |x|^2 - 2 c.x + |c|^2, without a (G, K, N, D) tensor
        dist = torch.baddbmm((c * c).sum(-1)[..., None], c, x.transpose(1, 2), alpha=-2.0)
        dist.add_(x_sq[:, None, :])
        resp = (dist <= dist.amin(1, keepdim=True)).to(x.dtype)
        resp.div_(resp.sum(1, keepdim=True))  # ties (identical centres) share the point
        wr = resp * w[:, None, :]
        mass = wr.sum(-1)  # (G, K)
        new_c = torch.bmm(wr, x) / mass.clamp(min=1e-300)[..., None]
        c = torch.where(mass[..., None] > 0, new_c, c)  # empty clusters keep their centre
    return resp


def initial_params(
    data: torch.Tensor,
    data_index: torch.Tensor,
    weights: torch.Tensor,
    weight_index: torch.Tensor,
    init_index: torch.Tensor,
    n_components: int,
    method: str,
    uniforms: torch.Tensor,
    *,
    reg: float,
    memory_budget: float = 256e6,
) -> GMMParams:
    """Starting mixtures for G elements.

    Args:
        data: (P, N, D); data_index: (G,); weights: (W, N); weight_index: (G,).
        init_index: (G,) which shared init (0..I-1) each element uses.
        n_components: K.
        method: ``"random"`` or ``"kmeans++"``.
        uniforms: ``"random"``: (I, N, K); ``"kmeans++"``: (I, K). Values in [0, 1).
        reg: covariance ridge for the initial M-step.
    """
    g_total = data_index.shape[0]
    dim = data.shape[-1]
    step = chunk_size(data.shape[1], n_components, dim, memory_budget)
    parts = []
    for start in range(0, g_total, step):
        sl = slice(start, min(start + step, g_total))
        x = data[data_index[sl]]
        w = weights[weight_index[sl]]
        if method == "random":
            u = uniforms[init_index[sl]]
            resp = (u / u.sum(-1, keepdim=True)).transpose(1, 2)
        elif method == "kmeans++":
            resp = kmeanspp_responsibilities(x, w, n_components, uniforms[init_index[sl]])
        else:  # validated upstream
            raise ValueError(f"unknown init {method!r}")
        parts.append(m_step(quadratic_features(x), resp * w[:, None, :], dim, reg)[0])
    return GMMParams.cat(parts)


def moment_params(n_elements: int, dim: int, dtype: torch.dtype, device) -> GMMParams:
    """A one-component start for G elements (mean 0, identity covariance): EM with K = 1 is
    exact after its first M-step, whatever the start."""
    return GMMParams(
        torch.zeros((n_elements, 1), dtype=dtype, device=device),
        torch.zeros((n_elements, 1, dim), dtype=dtype, device=device),
        torch.eye(dim, dtype=dtype, device=device).expand(n_elements, 1, dim, dim).clone(),
    )


SPLIT_OFFSET = math.sqrt(2.0 / math.pi)  # mean of a half-normal, in sd


def n_split_candidates(n_components: int, dim: int, n_inits: int) -> int:
    """How many split starts a K-component parent yields: min(n_inits, K * D)."""
    return min(n_inits, n_components * dim)


def split_candidates(parent: GMMParams, n_inits: int) -> GMMParams:
    """(K+1)-component starts grown from K-component mixtures by splitting one component.

    Every (component k, eigen-axis a) pair is a candidate split, ranked by pi_k lambda_{k,a}
    (mass times variance along the axis: where a wide, heavy component hides structure); the
    top C = min(n_inits, K D) become starts. Splitting N(mu, S) with eigenpair (lambda, v)
    into two halves at its median hyperplane and matching each half's first two moments gives

        pi' = pi / 2,  mu' = mu +- sqrt(2/pi) sqrt(lambda) v,  S' = S - (2/pi) lambda v v^T,

    which is positive definite (variance lambda (1 - 2/pi) along v, unchanged across it). The
    new component is appended at index K. No random numbers are involved, so a problem's
    starts never depend on its batch.

    Args:
        parent: G mixtures with K components (finite log weights).
        n_inits: the most candidates per mixture.
    Returns:
        G * C mixtures with K + 1 components, element-major (row g * C + c).
    """
    g, k, d = parent.means.shape
    c_count = n_split_candidates(k, d, n_inits)
    evals, evecs = torch.linalg.eigh(parent.covariances)  # (G, K, D), (G, K, D, D) columns
    evals = evals.clamp(min=0.0)
    score = (torch.exp(parent.log_weights)[..., None] * evals).reshape(g, k * d)
    order = torch.argsort(-score, dim=1, stable=True)[:, :c_count]  # (G, C)
    comp, axis = order // d, order % d
    rows = torch.arange(g, device=order.device)[:, None].expand(g, c_count)
    lam = evals[rows, comp, axis]  # (G, C)
    vec = evecs[rows, comp, :, axis]  # (G, C, D)
    shift = (SPLIT_OFFSET * torch.sqrt(lam))[..., None] * vec  # (G, C, D)
    shrink = (SPLIT_OFFSET**2 * lam)[..., None, None] * vec[..., :, None] * vec[..., None, :]

    lw = parent.log_weights[:, None].expand(g, c_count, k).clone()  # (G, C, K)
    mu = parent.means[:, None].expand(g, c_count, k, d).clone()
    cov = parent.covariances[:, None].expand(g, c_count, k, d, d).clone()
    cand = torch.arange(c_count, device=order.device)[None, :].expand(g, c_count)
    half = lw[rows, cand, comp] - math.log(2.0)
    base_mu = mu[rows, cand, comp]
    new_cov = cov[rows, cand, comp] - shrink
    lw[rows, cand, comp] = half
    mu[rows, cand, comp] = base_mu + shift
    cov[rows, cand, comp] = new_cov
    lw = torch.cat([lw, half[..., None]], dim=2)
    mu = torch.cat([mu, (base_mu - shift)[:, :, None]], dim=2)
    cov = torch.cat([cov, new_cov[:, :, None]], dim=2)
    return GMMParams(
        lw.reshape(g * c_count, k + 1),
        mu.reshape(g * c_count, k + 1, d),
        cov.reshape(g * c_count, k + 1, d, d),
    )
