"""Full-data fits and resampling refits (bootstrap, jackknife) for many GMM problems.

After :mod:`distmi.kernels.gmm_select` has chosen K* per problem:

1. **Full fit**: K* components fitted to all rows of the problem. With split selection the
   starts are the problem's fold fits at K* (already close to the full-data optimum), pruned
   after ``probe_iter`` iterations like the split candidates; with fresh-start selection,
   ``n_inits`` new starts (best by likelihood).
2. **Bootstrap**: every replicate is a multinomial count vector over the same rows (a weight
   row), refitted with K* components warm-started from the full fit (``bootstrap_init="warm"``)
   or from ``n_inits`` fresh k-means++ starts (``"cold"``, for checking the warm start).
3. **Jackknife** (for the acceleration of BCa intervals): delete-a-group refits, warm-started
   from the full fit, weight rows that are 0 on one group of rows.

All (problem, replicate) elements with the same K* form one batched EM call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from distmi.kernels.em import GMMParams, em_fit
from distmi.kernels.gmm_problems import GMMFitConfig, Problems, bootstrap_counts, jackknife_masks
from distmi.kernels.gmm_select import select_components
from distmi.kernels.gmm_tracks import fit_candidates, fit_fresh


@dataclass
class FitOutput:
    """Fits for Q problems with B bootstrap and J jackknife replicates (components padded to
    the largest K*).

    Attributes:
        n_components: (Q,) long, chosen K.
        full: Q full-data mixtures.
        boot: Q * B mixtures, problem-major (row q * B + b), or ``None`` if B = 0.
        jack: Q * J mixtures, problem-major, or ``None`` if J = 0.
        converged: (Q,) bool, every EM run of the problem converged.
        selection_scores: per problem, the score of each K tried.
        em_iterations: stage -> (Q,) EM iterations per problem ("select", "full",
            "bootstrap", "jackknife").
        sample_limited: (Q,) K was capped by the sample size while still improving.
    """

    n_components: torch.Tensor
    full: GMMParams
    boot: GMMParams | None
    jack: GMMParams | None
    converged: torch.Tensor
    selection_scores: list[list[float]]
    em_iterations: dict[str, torch.Tensor]
    sample_limited: torch.Tensor


def _em_kwargs(cfg: GMMFitConfig) -> dict:
    return dict(reg=cfg.reg_covar, tol=cfg.tol, max_iter=cfg.max_iter,
                memory_budget=cfg.memory_budget, backend=cfg.backend)


def _full_fits(problems: Problems, sel, cfg: GMMFitConfig, seed: int, converged, iterations):
    """K -> (problem indices, full-data params), one entry per distinct K*."""
    device = problems.data.device
    parts: dict[int, tuple[torch.Tensor, GMMParams]] = {}
    for k in sorted(set(sel.n_components.tolist())):
        idx = (sel.n_components == k).nonzero()[:, 0]
        rows = problems.problem_base[idx]
        if sel.fits:
            fit_idx, starts = sel.fits[k]
            # the selection fits are stored in problem order; align them with idx
            pos = torch.searchsorted(fit_idx, idx)
            t = sel.tracks
            starts = starts.index((pos[:, None] * t + torch.arange(t, device=device)).reshape(-1))
            fits = fit_candidates(
                problems, problems.problem_data[idx], problems.base_weights, rows, starts, t, cfg
            )
            params, conv, iters = fits.params, fits.converged, fits.iterations
        else:
            init = "kmeans++" if cfg.init == "split" else cfg.init
            params, _, conv, iters = fit_fresh(
                problems, idx, k, problems.base_weights, rows, cfg, seed, init
            )
        converged[idx] &= conv
        iterations[idx] += iters
        parts[k] = (idx, params)
    return parts


def _refits(problems: Problems, parts, weights: torch.Tensor, n_rep: int, cfg: GMMFitConfig,
            seed: int, converged, iterations, cold: bool = False):
    """Refit n_rep weight rows per base row for every problem; warm (from the full fit) or
    cold (fresh k-means++ starts). ``weights`` is (R * n_rep, N), base-row-major."""
    device = problems.data.device
    out: dict[int, tuple[torch.Tensor, GMMParams]] = {}
    for k, (idx, params) in parts.items():
        a = idx.shape[0]
        weight_index = (problems.problem_base[idx][:, None] * n_rep
                        + torch.arange(n_rep, device=device)).reshape(-1)
        if cold:
            fitted, conv, iters = _cold_fits(problems, idx, k, weights, weight_index, n_rep,
                                             cfg, seed)
        else:
            data_index = problems.problem_data[idx].repeat_interleave(n_rep)
            init = params.index(torch.arange(a, device=device).repeat_interleave(n_rep))
            res = em_fit(problems.data, data_index, weights, weight_index, init, **_em_kwargs(cfg))
            fitted, conv, iters = res.params, res.converged, res.n_iter
        converged[idx] &= conv.view(a, n_rep).all(1)
        iterations[idx] += iters.view(a, n_rep).sum(1)
        rows = (idx[:, None] * n_rep + torch.arange(n_rep, device=device)).reshape(-1)
        out[k] = (rows, fitted)
    return out


def _cold_fits(problems: Problems, idx, k: int, weights, weight_index, n_rep: int,
               cfg: GMMFitConfig, seed: int):
    """K components fitted to every replicate from scratch, by the start procedure of the
    full fit (grown from K = 1 by splits, or fresh ``n_inits`` starts), not from the full fit."""
    elem_problem = idx.repeat_interleave(n_rep)
    if cfg.init != "split":
        fitted, _, conv, iters = fit_fresh(problems, elem_problem, k, weights, weight_index,
                                           cfg, seed, cfg.init)
        return fitted, conv, iters
    sub = Problems(problems.data, problems.problem_data[elem_problem], weights, weight_index)
    sel = select_components(sub, replace(cfg, n_components=k, select_samples=None), seed)
    assert set(sel.fits) == {k}, "every replicate has enough rows for K components"
    return sel.fits[k][1], sel.converged, sel.em_iterations


def fit_problems(
    problems: Problems, cfg: GMMFitConfig, seed: int, n_bootstrap: int, n_jackknife: int = 0
) -> FitOutput:
    """Select K, fit the full data, refit bootstrap and jackknife replicates for every problem."""
    device = problems.data.device
    q = problems.n_problems
    sel = select_components(problems, cfg, seed)
    converged = sel.converged.clone()
    k_max = int(sel.n_components.max())
    zero = lambda: torch.zeros(q, dtype=torch.long, device=device)  # noqa: E731
    iterations = {"select": sel.em_iterations, "full": zero(), "bootstrap": zero(),
                  "jackknife": zero()}

    parts = _full_fits(problems, sel, cfg, seed, converged, iterations["full"])
    full = _assemble(parts, q, k_max, problems.dim, device)
    r = problems.base_weights.shape[0]
    boot = jack = None
    if n_bootstrap > 0:
        counts = bootstrap_counts(seed, problems.n_points, n_bootstrap, device)  # (B, N)
        boot_w = (problems.base_weights[:, None, :] * counts[None]).reshape(r * n_bootstrap, -1)
        boot_parts = _refits(problems, parts, boot_w, n_bootstrap, cfg, seed, converged,
                             iterations["bootstrap"], cold=cfg.bootstrap_init == "cold")
        boot = _assemble(boot_parts, q * n_bootstrap, k_max, problems.dim, device)
    if n_jackknife > 0:
        keep = jackknife_masks(seed, problems.n_points, n_jackknife, device)  # (J, N)
        jack_w = (problems.base_weights[:, None, :] * keep[None]).reshape(r * n_jackknife, -1)
        jack_parts = _refits(problems, parts, jack_w, n_jackknife, cfg, seed, converged,
                             iterations["jackknife"])
        jack = _assemble(jack_parts, q * n_jackknife, k_max, problems.dim, device)
    return FitOutput(sel.n_components, full, boot, jack, converged, sel.scores, iterations,
                     sel.limited)


def _assemble(
    parts: dict[int, tuple[torch.Tensor, GMMParams]], total: int, k_max: int, d: int, device
) -> GMMParams:
    """Scatter per-K groups into one padded GMMParams of ``total`` elements."""
    eye = torch.eye(d, dtype=torch.float64, device=device)
    out = GMMParams(
        torch.full((total, k_max), -torch.inf, dtype=torch.float64, device=device),
        torch.zeros((total, k_max, d), dtype=torch.float64, device=device),
        eye.expand(total, k_max, d, d).clone(),
    )
    for _k, (rows, params) in parts.items():
        out.assign(rows, params.pad_to(k_max))
    return out
