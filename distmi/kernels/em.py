"""Batched weighted EM for many small full-covariance Gaussian mixtures.

One call fits G independent mixtures ("elements"): element g uses data row ``data_index[g]``
of a shared (P, N, D) data tensor and weight row ``weight_index[g]`` of a shared (W, N) weight
matrix. Bootstrap replicates are multinomial count rows, cross-validation folds are 0/1 masks
and class-conditional fits are class masks, so all of them reuse one copy of the data.

Weighted EM (Dempster et al. 1977) with weights w_n >= 0:

    E-step:  r_nk = pi_k N(x_n | mu_k, S_k) / sum_j pi_j N(x_n | mu_j, S_j)
    M-step:  N_k = sum_n w_n r_nk + 10 eps,  pi_k = N_k / sum_j N_j,
             mu_k = sum_n w_n r_nk x_n / N_k,
             S_k = sum_n w_n r_nk x_n x_n^T / N_k - mu_k mu_k^T + reg I.

Each element stops on its own when the weighted mean log-likelihood changes by less than
``tol``; finished elements are compacted out of the working set so stragglers cost little.
Singular covariances escalate their own ridge (:func:`safe_cholesky`), never raise.

Two backends compute the same thing: this module's batched torch loop (any D, CPU or GPU) and
the compiled kernels of :mod:`distmi.kernels.em_compiled` (CPU, D = 1 or 2: fused per-element
EM, ~3x faster per iteration and free of padding). ``backend="auto"`` picks the compiled one
where it applies; both use ``torch.get_num_threads()`` threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from distmi.kernels import em_compiled
from distmi.kernels.gaussian_features import (
    component_coefficients,
    component_log_prob,
    logsumexp_components,
    quadratic_features,
    triu_indices,
)

EPS = torch.finfo(torch.float64).eps


@dataclass
class GMMParams:
    """Parameters of G mixtures with K components in D dimensions.

    Attributes:
        log_weights: (G, K); means: (G, K, D); covariances: (G, K, D, D).
    """

    log_weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor

    @property
    def n_components(self) -> int:
        return self.log_weights.shape[1]

    def index(self, idx: torch.Tensor) -> GMMParams:
        return GMMParams(self.log_weights[idx], self.means[idx], self.covariances[idx])

    def assign(self, idx: torch.Tensor, other: GMMParams) -> None:
        self.log_weights[idx] = other.log_weights
        self.means[idx] = other.means
        self.covariances[idx] = other.covariances

    def clone(self) -> GMMParams:
        return GMMParams(
            self.log_weights.clone(), self.means.clone(), self.covariances.clone()
        )

    @staticmethod
    def cat(parts: list[GMMParams]) -> GMMParams:
        return GMMParams(
            torch.cat([p.log_weights for p in parts]),
            torch.cat([p.means for p in parts]),
            torch.cat([p.covariances for p in parts]),
        )

    def pad_to(self, k: int) -> GMMParams:
        """Pad with zero-weight components (log weight -inf, mean 0, identity covariance)."""
        g, k0, d = self.means.shape
        if k0 == k:
            return self
        extra = k - k0
        lw = torch.cat([self.log_weights, self.log_weights.new_full((g, extra), -torch.inf)], 1)
        mu = torch.cat([self.means, self.means.new_zeros((g, extra, d))], 1)
        eye = torch.eye(d, dtype=self.means.dtype, device=self.means.device)
        cov = torch.cat([self.covariances, eye.expand(g, extra, d, d)], 1)
        return GMMParams(lw, mu, cov)


@dataclass
class EMResult:
    """Output of :func:`em_fit`.

    Attributes:
        params: fitted parameters, G elements.
        log_likelihood: (G,) weighted mean log-likelihood at the end.
        n_iter: (G,) EM iterations used.
        converged: (G,) bool.
        previous: (G, 2) the log-likelihoods of the two iterations before the last (-inf
            where there were none): their differences show how fast EM is still improving.
    """

    params: GMMParams
    log_likelihood: torch.Tensor
    n_iter: torch.Tensor
    converged: torch.Tensor
    previous: torch.Tensor | None = None


def m_step(
    features: torch.Tensor,
    resp_w: torch.Tensor,
    dim: int,
    reg: float,
) -> tuple[GMMParams, torch.Tensor, torch.Tensor]:
    """Weighted M-step from responsibilities times sample weights.

    Args:
        features: (G, N, F) quadratic features.
        resp_w: (G, K, N) responsibilities already multiplied by the sample weights.
        dim: D.
        reg: ridge added to every covariance diagonal; escalated x10 per component whose
            covariance is still not positive definite.
    Returns:
        params: GMMParams with G elements (covariances include the ridge actually used);
        coef (G, K, F), bias (G, K): the E-step coefficients of these parameters.
    """
    nk = resp_w.sum(-1) + 10 * EPS  # (G, K)
    stats = torch.bmm(resp_w, features) / nk[..., None]  # (G, K, F)
    means = stats[..., :dim]
    rows, cols = triu_indices(dim, features.device)
    second = features.new_empty((*means.shape, dim))  # (G, K, D, D)
    second[..., rows, cols] = stats[..., dim:]
    second[..., cols, rows] = stats[..., dim:]
    cov = second - means[..., :, None] * means[..., None, :]
    log_weights = torch.log(nk) - torch.log(nk.sum(-1, keepdim=True))
    coef, bias, cov = component_coefficients(log_weights, means, cov, reg)
    return GMMParams(log_weights, means, cov), coef, bias


def log_prob_components(features_t: torch.Tensor, params: GMMParams) -> torch.Tensor:
    """log pi_k N(x_n | mu_k, S_k), shape (G, K, N); features_t is (G, F, N)."""
    coef, bias, _ = component_coefficients(params.log_weights, params.means, params.covariances)
    return component_log_prob(features_t, coef, bias)


def weighted_mean_log_likelihood(
    features_t: torch.Tensor, weights: torch.Tensor, params: GMMParams
) -> torch.Tensor:
    """sum_n w_n log p(x_n) / sum_n w_n, shape (G,). features_t (G, F, N), weights (G, N)."""
    log_p = logsumexp_components(log_prob_components(features_t, params))  # (G, N)
    return (weights * log_p).sum(-1) / weights.sum(-1)


def _e_step(
    features_t: torch.Tensor,
    weights: torch.Tensor,
    w_sum: torch.Tensor,
    coef: torch.Tensor,
    bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean log-likelihood (G,) and weighted responsibilities (G, K, N)."""
    log_prob = component_log_prob(features_t, coef, bias)  # (G, K, N)
    peak = log_prob.amax(1)  # (G, N)
    resp = torch.exp_(log_prob.sub_(peak[:, None, :]))  # unnormalised, in place
    total = resp.sum(1)  # (G, N)
    ll = (weights * (peak + torch.log(total))).sum(-1) / w_sum
    return ll, resp.mul_((weights / total)[:, None, :])


def _em_loop(
    features: torch.Tensor,
    weights: torch.Tensor,
    params: GMMParams,
    *,
    dim: int,
    reg: float,
    tol: float,
    max_iter: int,
    compact_below: float = 0.75,
) -> EMResult:
    """Run EM on one in-memory chunk. features (G, N, F), weights (G, N)."""
    g_total = features.shape[0]
    device = features.device
    out = params.clone()
    out_ll = torch.full((g_total,), -torch.inf, dtype=features.dtype, device=device)
    n_iter = torch.zeros(g_total, dtype=torch.long, device=device)
    converged = torch.zeros(g_total, dtype=torch.bool, device=device)

    active = torch.arange(g_total, device=device)  # chunk index of each working row
    feat_w, w_w, par_w = features, weights, params.clone()
    feat_t = features.transpose(1, 2).contiguous()  # (Ga, F, N)
    w_sum = w_w.sum(-1)  # (Ga,)
    running = torch.ones(g_total, dtype=torch.bool, device=device)  # (Ga,)
    prev_ll = torch.full((g_total,), -torch.inf, dtype=features.dtype, device=device)
    prev2_ll = prev_ll.clone()
    out_prev = torch.full((g_total, 2), -torch.inf, dtype=features.dtype, device=device)
    coef, bias, _ = component_coefficients(par_w.log_weights, par_w.means, par_w.covariances)
    for it in range(1, max_iter + 1):
        ll, resp_w = _e_step(feat_t, w_w, w_sum, coef, bias)
        done = running & ((ll - prev_ll).abs() < tol)
        run_idx = active[running]
        n_iter[run_idx] = it
        out_ll[run_idx] = ll[running]
        out_prev[run_idx, 0] = prev_ll[running]
        out_prev[run_idx, 1] = prev2_ll[running]
        if bool(done.any()):
            # finished elements keep the parameters whose likelihood met the tolerance
            fin = done.nonzero()[:, 0]
            out.assign(active[fin], par_w.index(fin))
            converged[active[fin]] = True
        running = running & ~done
        n_running = int(running.sum())
        if n_running == 0 or it == max_iter:
            break
        new_par, new_coef, new_bias = m_step(feat_w, resp_w, dim, reg)
        if n_running == len(running):
            par_w, coef, bias = new_par, new_coef, new_bias
        else:
            par_w = GMMParams(
                torch.where(running[:, None], new_par.log_weights, par_w.log_weights),
                torch.where(running[:, None, None], new_par.means, par_w.means),
                torch.where(running[:, None, None, None], new_par.covariances, par_w.covariances),
            )
            coef = torch.where(running[:, None, None], new_coef, coef)
            bias = torch.where(running[:, None], new_bias, bias)
        prev2_ll, prev_ll = prev_ll, ll
        if n_running < compact_below * len(active):
            sel = running.nonzero()[:, 0]
            active, feat_w, feat_t = active[sel], feat_w[sel], feat_t[sel]
            w_w, w_sum, par_w = w_w[sel], w_sum[sel], par_w.index(sel)
            coef, bias = coef[sel], bias[sel]
            prev_ll, prev2_ll, running = prev_ll[sel], prev2_ll[sel], running[sel]
    if bool(running.any()):
        # elements that hit max_iter keep the parameters of their last evaluated likelihood
        sel = running.nonzero()[:, 0]
        out.assign(active[sel], par_w.index(sel))
    return EMResult(out, out_ll, n_iter, converged, out_prev)


def chunk_size(n_points: int, n_components: int, dim: int, budget_bytes: float) -> int:
    """Elements per chunk so that the working tensors stay within ``budget_bytes``."""
    n_feat = dim + dim * (dim + 1) // 2
    per_element = 8 * n_points * (3 * n_components + 2 * n_feat + 4)
    return max(1, int(budget_bytes // per_element))


def _use_compiled(backend: str, dim: int, device: torch.device) -> bool:
    if backend not in ("auto", "torch", "compiled"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'compiled', got {backend!r}")
    ok = em_compiled.supports(dim, device.type)
    if backend == "compiled" and not ok:
        raise ValueError("the compiled EM backend needs numba, CPU tensors and D <= 2")
    return backend != "torch" and ok


def _np(t: torch.Tensor, dtype=None) -> np.ndarray:
    arr = t.detach().contiguous().numpy()
    return arr if dtype is None else arr.astype(dtype, copy=False)


def em_fit(
    data: torch.Tensor,
    data_index: torch.Tensor,
    weights: torch.Tensor,
    weight_index: torch.Tensor,
    init: GMMParams,
    *,
    reg: float = 1e-6,
    tol: float = 1e-5,
    max_iter: int = 10_000,
    memory_budget: float = 256e6,
    backend: str = "auto",
) -> EMResult:
    """Fit G mixtures by weighted EM, chunked to a memory budget.

    Args:
        data: (P, N, D) float data shared by all elements.
        data_index: (G,) long, data row of each element.
        weights: (W, N) non-negative sample weights.
        weight_index: (G,) long, weight row of each element.
        init: starting parameters, G elements with K components.
        reg: ridge added to covariance diagonals (escalates automatically on collapse).
        tol: per-element tolerance on the change of the weighted mean log-likelihood.
        max_iter: iteration cap per element.
        memory_budget: bytes of working memory per chunk (torch backend).
        backend: ``"auto"``, ``"torch"`` or ``"compiled"`` (see the module docstring).
    """
    g_total = data_index.shape[0]
    dim = data.shape[-1]
    if _use_compiled(backend, dim, data.device):
        lw, mu, cov, ll, n_iter, conv, prev = em_compiled.em_fit_compiled(
            _np(data), _np(data_index, np.int64), _np(weights), _np(weight_index, np.int64),
            _np(init.log_weights), _np(init.means), _np(init.covariances),
            reg=reg, tol=tol, max_iter=max_iter, n_threads=torch.get_num_threads(),
        )
        return EMResult(
            GMMParams(torch.from_numpy(lw), torch.from_numpy(mu), torch.from_numpy(cov)),
            torch.from_numpy(ll), torch.from_numpy(n_iter), torch.from_numpy(conv),
            torch.from_numpy(prev),
        )
    step = chunk_size(data.shape[1], init.n_components, dim, memory_budget)
    parts: list[EMResult] = []
    for start in range(0, g_total, step):
        sl = slice(start, min(start + step, g_total))
        feats = quadratic_features(data[data_index[sl]])
        parts.append(
            _em_loop(
                feats,
                weights[weight_index[sl]],
                init.index(torch.arange(sl.start, sl.stop, device=data.device)),
                dim=dim,
                reg=reg,
                tol=tol,
                max_iter=max_iter,
            )
        )
    return EMResult(
        GMMParams.cat([p.params for p in parts]),
        torch.cat([p.log_likelihood for p in parts]),
        torch.cat([p.n_iter for p in parts]),
        torch.cat([p.converged for p in parts]),
        torch.cat([p.previous for p in parts]),
    )


def score(
    data: torch.Tensor,
    data_index: torch.Tensor,
    weights: torch.Tensor,
    weight_index: torch.Tensor,
    params: GMMParams,
    memory_budget: float = 256e6,
    backend: str = "auto",
) -> torch.Tensor:
    """Weighted mean log-likelihood of each element under its mixture, shape (G,).

    Used for held-out cross-validation scores (weights = held-out fold masks).
    """
    g_total = data_index.shape[0]
    if g_total == 0:
        return torch.empty(0, dtype=data.dtype, device=data.device)
    if _use_compiled(backend, data.shape[-1], data.device):
        return torch.from_numpy(em_compiled.score_compiled(
            _np(data), _np(data_index, np.int64), _np(weights), _np(weight_index, np.int64),
            _np(params.log_weights), _np(params.means), _np(params.covariances),
            n_threads=torch.get_num_threads(),
        ))
    step = chunk_size(data.shape[1], params.n_components, data.shape[-1], memory_budget)
    out = []
    for start in range(0, g_total, step):
        idx = torch.arange(start, min(start + step, g_total), device=data.device)
        feats_t = quadratic_features(data[data_index[idx]]).transpose(1, 2)
        out.append(
            weighted_mean_log_likelihood(feats_t, weights[weight_index[idx]], params.index(idx))
        )
    return torch.cat(out)
