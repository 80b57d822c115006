"""Choosing the number of components K for many GMM problems at once.

A *problem* is one mixture to fit: a data row (P, N, D) and a base weight row (ones for a joint
fit, a class mask for a class-conditional fit). GMM-MI's rule (Piras et al. 2023): for K = 1,
2, ... score K by the held-out mean log-likelihood of fits on the training folds of one fixed
shuffled split (``select="cv"``; ``"aic"``/``"bic"`` score full-data fits instead), stop after
``patience`` steps that improve by less than ``threshold``; K* = the last improving K. All
problems still searching are fitted together for each K.

How a candidate K is started (``init``):

- ``"split"`` (default): K = 1 is exact; each K + 1 is grown from the same fold's fit at K by
  splitting one component (:func:`distmi.kernels.gmm_init.split_candidates`), up to
  ``n_inits`` different splits. All splits run ``probe_iter`` EM iterations, then only the one
  with the highest training likelihood (per problem and fold) continues to convergence: the
  others are stopped as hopeless. A split start sits next to the K solution, so EM needs a
  fraction of the iterations of a fresh start, and no random numbers are involved.
- ``"kmeans++"`` / ``"random"``: ``n_inits`` fresh starts per K (the reference's behaviour),
  the best by fold-averaged held-out score.

When N exceeds ``select_samples``, K is chosen on a fixed random subset of that many rows (the
folds split the subset); the fits that follow use every row.

Random numbers depend only on (seed, purpose, K, init) and N, never on which problems share the
batch, so a problem gives the same result alone or among thousands.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from distmi.kernels.em import GMMParams, em_fit, score
from distmi.kernels.gmm_init import moment_params, n_split_candidates, split_candidates
from distmi.kernels.gmm_problems import (
    GMMFitConfig,
    Problems,
    _n_free_params,
    _per_problem,
    fold_masks,
    selection_rows,
)
from distmi.kernels.gmm_tracks import (
    HOPELESS_MIN_STEPS,
    TrackFits,
    _fresh_starts,
    fit_candidates,
    remaining_gain,
)


@dataclass
class Selection:
    """Outcome of :func:`select_components` for Q problems.

    Attributes:
        n_components: (Q,) chosen K.
        converged: (Q,) every EM run of the problem converged.
        scores: per problem, the score of each K tried.
        fits: K -> (problem indices (A,), params (A * T, K)): the T track fits (folds, or the
            one selection fit) of the problems whose choice is K, problem-major. Empty for
            fresh-start selection, which keeps no fits.
        tracks: T, fits per problem in ``fits``.
        em_iterations: (Q,) EM iterations spent on the problem.
        limited: (Q,) the search stopped because the sample could not support more
            components (every component needs 2 (D + 1) training points) while K was still
            improving.
    """

    n_components: torch.Tensor
    converged: torch.Tensor
    scores: list[list[float]]
    fits: dict[int, tuple[torch.Tensor, GMMParams]] = field(default_factory=dict)
    tracks: int = 1
    em_iterations: torch.Tensor | None = None
    limited: torch.Tensor | None = None


def _fit_or_stop(problems: Problems, fits: TrackFits, data_index, rows, tracks: _Tracks,
                 to_beat: torch.Tensor, cfg: GMMFitConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Continue the tracks' EM in doubling chunks; between chunks stop the problems whose
    candidate K cannot beat ``to_beat`` (A,) + threshold even with the remaining gain.

    Returns the fold-averaged held-out score (A,) and which problems were stopped (A,).
    """
    t = tracks.per_problem
    a = to_beat.shape[0]
    device = to_beat.device
    stopped = torch.zeros(a, dtype=torch.bool, device=device)
    held = torch.empty(a * t, dtype=torch.float64, device=device)
    live = torch.ones(a * t, dtype=torch.bool, device=device)  # tracks whose score changed
    chunk = cfg.probe_iter
    while True:
        sel = live.nonzero()[:, 0]
        if sel.numel():
            held[sel] = score(problems.data, data_index[sel], tracks.test_w, rows[sel],
                              fits.params.index(sel), cfg.memory_budget, backend=cfg.backend)
        running = ~fits.converged & (fits.steps < cfg.max_iter) & ~stopped.repeat_interleave(t)
        if not bool(running.any()):
            return held.view(a, t).mean(1), stopped
        upper = (held + remaining_gain(fits)).view(a, t).mean(1)
        settled = (fits.steps >= HOPELESS_MIN_STEPS) | fits.converged
        hopeless = (running.view(a, t).any(1) & settled.view(a, t).all(1)
                    & (upper < to_beat + cfg.threshold))
        stopped |= hopeless
        running &= ~hopeless.repeat_interleave(t)
        todo = running.nonzero()[:, 0]
        if todo.numel():
            budget = int(cfg.max_iter - fits.steps[todo].max())
            fits.advance(problems, todo, data_index, tracks.train_w, rows,
                         max(1, min(chunk, budget)), cfg)
        live = running
        chunk *= 2


# ---------------------------------------------------------------- the K sweep


@dataclass
class _Tracks:
    """Fitting tracks of the selection: per problem, its folds (cv) or one selection fit."""

    per_problem: int
    train_w: torch.Tensor  # (R * T, N)
    test_w: torch.Tensor | None  # (R * T, N) for cv
    min_train: torch.Tensor  # (Q,) smallest training weight of a problem's tracks

    def rows(self, problems: Problems, idx: torch.Tensor) -> torch.Tensor:
        t = self.per_problem
        base = problems.problem_base[idx][:, None] * t
        return (base + torch.arange(t, device=idx.device)).reshape(-1)


def _make_tracks(problems: Problems, cfg: GMMFitConfig, seed: int) -> _Tracks:
    device = problems.data.device
    n = problems.n_points
    rows = selection_rows(seed, n, cfg.select_samples)
    r = problems.base_weights.shape[0]
    if cfg.select == "cv" and cfg.n_components is None:
        test = fold_masks(seed, n, cfg.n_folds, device, rows)  # (F, N)
        used = test.sum(0)  # selection rows
        train_w = (problems.base_weights[:, None, :] * (used - test)[None]).reshape(r * cfg.n_folds, -1)
        test_w = (problems.base_weights[:, None, :] * test[None]).reshape(r * cfg.n_folds, -1)
        min_train = train_w.sum(-1).view(r, cfg.n_folds).min(1).values[problems.problem_base]
        return _Tracks(cfg.n_folds, train_w, test_w, min_train)
    used = torch.zeros(n, dtype=torch.float64, device=device)
    used[torch.as_tensor(rows, device=device)] = 1.0
    if cfg.n_components is not None:
        used = torch.ones_like(used)  # a fixed K is grown on all rows
    train_w = problems.base_weights * used
    return _Tracks(1, train_w, None, train_w.sum(-1)[problems.problem_base])


def select_components(problems: Problems, cfg: GMMFitConfig, seed: int) -> Selection:
    """Choose K per problem (or grow every problem to a fixed ``n_components``)."""
    q = problems.n_problems
    device = problems.data.device
    d = problems.dim
    converged = torch.ones(q, dtype=torch.bool, device=device)
    iterations = torch.zeros(q, dtype=torch.long, device=device)
    if cfg.n_components is not None and cfg.init != "split":
        k_fixed = torch.full((q,), cfg.n_components, dtype=torch.long, device=device)
        return Selection(k_fixed, converged, [[] for _ in range(q)], em_iterations=iterations,
                         limited=torch.zeros(q, dtype=torch.bool, device=device))

    tracks = _make_tracks(problems, cfg, seed)
    t = tracks.per_problem
    scores: list[list[float]] = [[] for _ in range(q)]
    best_k = torch.ones(q, dtype=torch.long, device=device)
    best_score = torch.full((q,), -torch.inf, dtype=torch.float64, device=device)
    bad_steps = torch.zeros(q, dtype=torch.long, device=device)
    searching = torch.ones(q, dtype=torch.bool, device=device)
    fits: dict[int, tuple[torch.Tensor, GMMParams]] = {}
    parents: GMMParams | None = None  # (A * T, K - 1) fits of the problems in `idx`
    idx = torch.arange(q, device=device)
    k_last = cfg.n_components or cfg.max_components
    limited = torch.zeros(q, dtype=torch.bool, device=device)

    # One candidate K per batched EM call: fitting K, K+1, ... together (padded mixtures) was
    # measured slower, since a call runs until its slowest candidate converges.
    for k in range(1, k_last + 1):
        # a component needs at least 2 (D + 1) points to be estimated at all
        if k > 1:
            enough = tracks.min_train >= 2 * k * (d + 1)
            limited |= searching & ~enough
            searching &= enough
        new_idx = searching.nonzero()[:, 0]
        if new_idx.numel() == 0:
            break
        if parents is not None and new_idx.numel() < idx.numel():
            pos = torch.searchsorted(idx, new_idx)
            parents = parents.index((pos[:, None] * t + torch.arange(t, device=device)).reshape(-1))
        idx = new_idx
        rows = tracks.rows(problems, idx)
        data_index = problems.problem_data[idx].repeat_interleave(t)
        if cfg.init == "split":
            if k == 1:
                starts, n_cand = moment_params(rows.shape[0], d, problems.data.dtype, device), 1
            else:
                starts = split_candidates(parents, cfg.n_inits)
                n_cand = n_split_candidates(k - 1, d, cfg.n_inits)
            early = cfg.stop_hopeless and tracks.test_w is not None and cfg.n_components is None
            found = fit_candidates(problems, data_index, tracks.train_w, rows, starts, n_cand,
                                  cfg, finish=not early or k == 1)
            stopped = torch.zeros(idx.shape[0], dtype=torch.bool, device=device)
            if early and k > 1:
                score_k, stopped = _fit_or_stop(problems, found, data_index, rows, tracks,
                                                best_score[idx], cfg)
            elif cfg.n_components is None:
                score_k = _track_scores(problems, data_index, rows, found.params,
                                        found.log_likelihood, tracks, k, cfg)
            else:  # growing to a fixed K: nothing to score
                score_k = torch.zeros(idx.shape[0], dtype=torch.float64, device=device)
            # a stopped candidate is discarded: its convergence does not matter
            converged[idx] &= (found.converged.view(-1, t).all(1) | stopped)
            iterations[idx] += _per_problem(found.iterations, t)
            parents = found.params
        else:
            score_k, conv, iters = _fresh_scores(problems, idx, data_index, rows, k, tracks, cfg, seed)
            converged[idx] &= conv
            iterations[idx] += iters
        if cfg.n_components is None:
            for i, sc in zip(idx.tolist(), score_k.tolist(), strict=True):
                scores[i].append(sc)
        if cfg.n_components is not None:
            improved = torch.ones_like(idx, dtype=torch.bool)
        else:
            improved = (score_k - best_score[idx] > cfg.threshold) | (k == 1)
        best_k[idx] = torch.where(improved, torch.full_like(idx, k), best_k[idx])
        best_score[idx] = torch.where(improved, score_k, best_score[idx])
        bad_steps[idx] = torch.where(improved, torch.zeros_like(idx), bad_steps[idx] + 1)
        searching[idx] = bad_steps[idx] < cfg.patience
        if cfg.init == "split" and bool(improved.any()):
            keep = improved.nonzero()[:, 0]
            fits[k] = (idx[keep], parents.index((keep[:, None] * t + torch.arange(t, device=device)).reshape(-1)))
    if cfg.init == "split":
        fits = _latest_fits(fits, best_k, t)
    return Selection(best_k, converged, scores, fits, t, iterations, limited)


def _latest_fits(fits: dict[int, tuple[torch.Tensor, GMMParams]], best_k: torch.Tensor,
                 t: int) -> dict[int, tuple[torch.Tensor, GMMParams]]:
    """Keep, per K, only the fits of problems whose final choice is K."""
    out = {}
    device = best_k.device
    for k, (idx, params) in fits.items():
        keep = (best_k[idx] == k).nonzero()[:, 0]
        if keep.numel():
            rows = (keep[:, None] * t + torch.arange(t, device=device)).reshape(-1)
            out[k] = (idx[keep], params.index(rows))
    return out


def _track_scores(problems, data_index, rows, params, ll, tracks: _Tracks, k, cfg) -> torch.Tensor:
    """Score per problem (A,): fold-averaged held-out log-likelihood, or -AIC/N, -BIC/N."""
    t = tracks.per_problem
    if tracks.test_w is not None:
        held = score(problems.data, data_index, tracks.test_w, rows, params,
                     cfg.memory_budget, backend=cfg.backend)
        return held.view(-1, t).mean(1)
    n_eff = tracks.train_w.sum(-1)[rows]
    per_param = torch.log(n_eff) if cfg.select == "bic" else torch.full_like(n_eff, 2.0)
    ic = -2.0 * ll * n_eff + _n_free_params(k, problems.dim) * per_param
    return (-ic / n_eff).view(-1, t).mean(1)


def _fresh_scores(problems, idx, data_index, rows, k, tracks: _Tracks, cfg, seed):
    """Score of K with fresh starts: best init by fold-averaged held-out score (cv), or the
    information criterion of the best-likelihood full fit. Returns (score, converged, iters)."""
    t = tracks.per_problem
    a = idx.shape[0]
    device = problems.data.device
    n_inits = 1 if k == 1 else cfg.n_inits
    starts = _fresh_starts(problems, data_index, rows, k, tracks.train_w, cfg, seed, cfg.init)
    res = em_fit(problems.data, data_index.repeat_interleave(n_inits), tracks.train_w,
                 rows.repeat_interleave(n_inits), starts, reg=cfg.reg_covar, tol=cfg.tol,
                 max_iter=cfg.max_iter, memory_budget=cfg.memory_budget, backend=cfg.backend)
    iters = _per_problem(res.n_iter, t * n_inits)
    a_idx = torch.arange(a, device=device)
    if tracks.test_w is None:
        ll = res.log_likelihood.view(a, n_inits)
        best = ll.argmax(1)
        conv = res.converged.view(a, n_inits)[a_idx, best]
        sc = _track_scores(problems, data_index, rows, None, ll[a_idx, best], tracks, k, cfg)
        return sc, conv, iters
    held = score(problems.data, data_index.repeat_interleave(n_inits), tracks.test_w,
                 rows.repeat_interleave(n_inits), res.params, cfg.memory_budget,
                 backend=cfg.backend).view(a, t, n_inits)
    best_init = held.mean(1).argmax(-1)  # (A,)
    conv = res.converged.view(a, t, n_inits)[a_idx, :, best_init].all(1)
    return held[a_idx, :, best_init].mean(1), conv, iters
