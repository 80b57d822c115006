"""Component selection, full-data fits and bootstrap refits for many GMM problems at once.

A *problem* is one mixture to fit: a data row (P, N, D) and a base weight row (ones for a
joint fit, a class mask for a class-conditional fit). For Q problems this module

1. chooses K per problem (GMM-MI's rule): for K = 1, 2, ... fit ``n_inits`` x ``n_folds`` EM
   runs on the training folds (one fixed shuffled split), score = held-out mean log-likelihood
   averaged over folds, best init; stop after ``patience`` steps whose improvement is below
   ``threshold``; K* = the last improving K. All problems still searching are fitted together
   for each K. ``select="aic"``/``"bic"`` score full-data fits instead;
2. fits K* components to all the data (best of ``n_inits`` by likelihood);
3. refits every bootstrap replicate (multinomial count weights over the same data), warm-started
   from the full-data fit, all (problem, replicate) elements in one batched EM.

Random numbers depend only on (seed, purpose, K, init) and N, never on which problems share
the batch, so a problem gives the same result alone or among thousands.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from distmi.core.seeds import derive_rng
from distmi.kernels.em import GMMParams, em_fit, score
from distmi.kernels.gmm_init import initial_params


@dataclass(frozen=True)
class GMMFitConfig:
    """Numerical settings of a GMM-MI fit (validated by the estimator layer)."""

    n_components: int | None = None
    max_components: int = 50
    select: str = "cv"
    n_folds: int = 2
    n_inits: int = 3
    init: str = "kmeans++"
    threshold: float = 1e-5
    patience: int = 1
    reg_covar: float = 1e-6
    tol: float = 1e-5
    max_iter: int = 10_000
    memory_budget: float = 256e6


@dataclass
class Problems:
    """Q mixture-fitting problems over shared data.

    Attributes:
        data: (P, N, D) float64 (standardised).
        problem_data: (Q,) long, data row per problem.
        base_weights: (R, N) float64, base weight rows (ones or class masks).
        problem_base: (Q,) long, base row per problem.
    """

    data: torch.Tensor
    problem_data: torch.Tensor
    base_weights: torch.Tensor
    problem_base: torch.Tensor

    @property
    def n_problems(self) -> int:
        return int(self.problem_data.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.data.shape[1])

    @property
    def dim(self) -> int:
        return int(self.data.shape[2])


@dataclass
class FitOutput:
    """Fits for Q problems with B bootstrap replicates (components padded to K_max).

    Attributes:
        n_components: (Q,) long, chosen K.
        full: Q full-data mixtures.
        boot: Q * B mixtures, problem-major (row q * B + b), or ``None`` if B = 0.
        converged: (Q,) bool, every EM run of the problem converged.
        selection_scores: per problem, the score of each K tried.
    """

    n_components: torch.Tensor
    full: GMMParams
    boot: GMMParams | None
    converged: torch.Tensor
    selection_scores: list[list[float]] = field(default_factory=list)


def _uniforms(seed: int, k: int, n_inits: int, n: int, init: str, device) -> torch.Tensor:
    rng = derive_rng(seed, "gmm-init", init, k)
    shape = (n_inits, n, k) if init == "random" else (n_inits, k)
    return torch.as_tensor(rng.random(shape), dtype=torch.float64, device=device)


def fold_masks(seed: int, n: int, n_folds: int, device) -> torch.Tensor:
    """Held-out masks (F, N) of one fixed shuffled K-fold split."""
    perm = derive_rng(seed, "gmm-folds").permutation(n)
    masks = np.zeros((n_folds, n))
    for f, chunk in enumerate(np.array_split(perm, n_folds)):
        masks[f, chunk] = 1.0
    return torch.as_tensor(masks, dtype=torch.float64, device=device)


def bootstrap_counts(seed: int, n: int, n_bootstrap: int, device) -> torch.Tensor:
    """Multinomial resampling counts (B, N): replicate b draws row i counts[b, i] times."""
    rng = derive_rng(seed, "bootstrap")
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap)
    return torch.as_tensor(counts, dtype=torch.float64, device=device)


def _inits(
    problems: Problems,
    elem_problem: torch.Tensor,
    elem_weight_row: torch.Tensor,
    k: int,
    weights: torch.Tensor,
    cfg: GMMFitConfig,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, GMMParams, int]:
    """Expand elements into (element, init) runs with their starting mixtures.

    Returns data_index, weight_index (element-major, init-minor), the initial params and the
    number of inits (1 for K = 1, whose EM is exact in one M-step).
    """
    n_inits = 1 if k == 1 else cfg.n_inits
    device = problems.data.device
    data_index = problems.problem_data[elem_problem].repeat_interleave(n_inits)
    weight_index = elem_weight_row.repeat_interleave(n_inits)
    init_index = torch.arange(n_inits, device=device).repeat(elem_problem.shape[0])
    uni = _uniforms(seed, k, n_inits, problems.n_points, cfg.init, device)
    init = initial_params(
        problems.data, data_index, weights, weight_index, init_index, k, cfg.init, uni,
        reg=cfg.reg_covar, memory_budget=cfg.memory_budget,
    )
    return data_index, weight_index, init, n_inits


def _fit_best_of_inits(
    problems: Problems,
    prob_idx: torch.Tensor,
    k: int,
    weights: torch.Tensor,
    weight_row: torch.Tensor,
    cfg: GMMFitConfig,
    seed: int,
) -> tuple[GMMParams, torch.Tensor, torch.Tensor]:
    """Fit K components with ``n_inits`` inits per problem; keep the best by likelihood.

    ``weight_row`` (len(prob_idx),) selects each problem's row of ``weights``.
    Returns params (len(prob_idx) mixtures), mean log-likelihood and converged flags.
    """
    device = problems.data.device
    a = prob_idx.shape[0]
    data_index, weight_index, init, n_inits = _inits(
        problems, prob_idx, weight_row, k, weights, cfg, seed
    )
    res = em_fit(
        problems.data, data_index, weights, weight_index, init,
        reg=cfg.reg_covar, tol=cfg.tol, max_iter=cfg.max_iter, memory_budget=cfg.memory_budget,
    )
    ll = res.log_likelihood.view(a, n_inits)
    best = ll.argmax(1)
    pick = torch.arange(a, device=device) * n_inits + best
    conv = res.converged.view(a, n_inits).all(1)
    return res.params.index(pick), ll[torch.arange(a, device=device), best], conv


def _n_free_params(k: int, d: int) -> int:
    return (k - 1) + k * d + k * d * (d + 1) // 2


def select_components(
    problems: Problems, cfg: GMMFitConfig, seed: int
) -> tuple[torch.Tensor, torch.Tensor, list[list[float]]]:
    """Choose K per problem. Returns (K (Q,), converged (Q,), scores per problem)."""
    q = problems.n_problems
    device = problems.data.device
    d = problems.dim
    converged = torch.ones(q, dtype=torch.bool, device=device)
    if cfg.n_components is not None:
        k_fixed = torch.full((q,), cfg.n_components, dtype=torch.long, device=device)
        return k_fixed, converged, [[] for _ in range(q)]

    base_count = problems.base_weights.sum(-1)[problems.problem_base]  # (Q,)
    scores: list[list[float]] = [[] for _ in range(q)]
    best_k = torch.ones(q, dtype=torch.long, device=device)
    best_score = torch.full((q,), -torch.inf, dtype=torch.float64, device=device)
    bad_steps = torch.zeros(q, dtype=torch.long, device=device)
    searching = torch.ones(q, dtype=torch.bool, device=device)

    if cfg.select == "cv":
        test = fold_masks(seed, problems.n_points, cfg.n_folds, device)  # (F, N)
        r = problems.base_weights.shape[0]
        keep = (1.0 - test)[None]
        train_w = (problems.base_weights[:, None, :] * keep).reshape(r * cfg.n_folds, -1)
        test_w = (problems.base_weights[:, None, :] * test[None]).reshape(r * cfg.n_folds, -1)
        min_train = train_w.sum(-1).view(r, cfg.n_folds).min(1).values[problems.problem_base]
    else:
        min_train = base_count

    # One candidate K per batched EM call: fitting K, K+1, ... together (padded mixtures) was
    # measured slower, since a call runs until its slowest candidate converges.
    for k in range(1, cfg.max_components + 1):
        # a component needs at least 2 (D + 1) points to be estimated at all
        if k > 1:
            searching &= min_train >= 2 * k * (d + 1)
        idx = searching.nonzero()[:, 0]
        if idx.numel() == 0:
            break
        if cfg.select == "cv":
            score_k, conv = _cv_scores(problems, idx, k, train_w, test_w, cfg, seed)
        else:
            score_k, conv = _ic_scores(problems, idx, k, base_count, cfg, seed)
        converged[idx] &= conv
        for i, sc in zip(idx.tolist(), score_k.tolist(), strict=True):
            scores[i].append(sc)
        improved = (score_k - best_score[idx] > cfg.threshold) | (k == 1)
        best_k[idx] = torch.where(improved, torch.full_like(idx, k), best_k[idx])
        best_score[idx] = torch.where(improved, score_k, best_score[idx])
        bad_steps[idx] = torch.where(improved, torch.zeros_like(idx), bad_steps[idx] + 1)
        searching[idx] = bad_steps[idx] < cfg.patience
    return best_k, converged, scores


def _cv_scores(
    problems: Problems,
    active: torch.Tensor,
    k: int,
    train_w: torch.Tensor,
    test_w: torch.Tensor,
    cfg: GMMFitConfig,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-validated score of K for the active problems.

    Returns the fold-averaged held-out mean log-likelihood of the best init (A,) and whether
    all of that init's fold fits converged (A,).
    """
    device = problems.data.device
    f = cfg.n_folds
    a = active.shape[0]
    elem_problem = active.repeat_interleave(f)  # (A*F,) problem-major, fold-minor
    elem_row = (problems.problem_base[active][:, None] * f + torch.arange(f, device=device)).reshape(-1)
    data_index, weight_index, init, n_inits = _inits(
        problems, elem_problem, elem_row, k, train_w, cfg, seed
    )
    res = em_fit(
        problems.data, data_index, train_w, weight_index, init,
        reg=cfg.reg_covar, tol=cfg.tol, max_iter=cfg.max_iter, memory_budget=cfg.memory_budget,
    )
    held = score(problems.data, data_index, test_w, weight_index, res.params, cfg.memory_budget)
    held = held.view(a, f, n_inits)
    best_init = held.mean(1).argmax(-1)  # (A,)
    a_idx = torch.arange(a, device=device)
    conv = res.converged.view(a, f, n_inits)[a_idx, :, best_init].all(1)
    return held[a_idx, :, best_init].mean(1), conv


def _ic_scores(
    problems: Problems,
    active: torch.Tensor,
    k: int,
    base_count: torch.Tensor,
    cfg: GMMFitConfig,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """-AIC/N or -BIC/N (larger is better) of full-data fits with K components."""
    _, ll, conv = _fit_best_of_inits(
        problems, active, k, problems.base_weights, problems.problem_base[active], cfg, seed
    )
    n_eff = base_count[active]
    per_param = torch.log(n_eff) if cfg.select == "bic" else torch.full_like(n_eff, 2.0)
    ic = -2.0 * ll * n_eff + _n_free_params(k, problems.dim) * per_param
    return -ic / n_eff, conv


def fit_problems(
    problems: Problems, cfg: GMMFitConfig, seed: int, n_bootstrap: int
) -> FitOutput:
    """Select K, fit the full data and refit ``n_bootstrap`` replicates for every problem."""
    device = problems.data.device
    q = problems.n_problems
    k_sel, converged, scores = select_components(problems, cfg, seed)
    k_max = int(k_sel.max())

    full_parts: dict[int, tuple[torch.Tensor, GMMParams]] = {}
    for k in sorted(set(k_sel.tolist())):
        idx = (k_sel == k).nonzero()[:, 0]
        params, _, conv = _fit_best_of_inits(
            problems, idx, k, problems.base_weights, problems.problem_base[idx], cfg, seed
        )
        converged[idx] &= conv
        full_parts[k] = (idx, params)
    full = _assemble(full_parts, q, k_max, problems.dim, device)

    boot = None
    if n_bootstrap > 0:
        counts = bootstrap_counts(seed, problems.n_points, n_bootstrap, device)  # (B, N)
        r = problems.base_weights.shape[0]
        boot_w = (problems.base_weights[:, None, :] * counts[None]).reshape(r * n_bootstrap, -1)
        boot_parts: dict[int, tuple[torch.Tensor, GMMParams]] = {}
        for k, (idx, params) in full_parts.items():
            a = idx.shape[0]
            data_index = problems.problem_data[idx].repeat_interleave(n_bootstrap)
            weight_index = (
                problems.problem_base[idx][:, None] * n_bootstrap
                + torch.arange(n_bootstrap, device=device)
            ).reshape(-1)
            init = params.index(torch.arange(a, device=device).repeat_interleave(n_bootstrap))
            res = em_fit(
                problems.data, data_index, boot_w, weight_index, init,
                reg=cfg.reg_covar, tol=cfg.tol, max_iter=cfg.max_iter,
                memory_budget=cfg.memory_budget,
            )
            converged[idx] &= res.converged.view(a, n_bootstrap).all(1)
            rows = (idx[:, None] * n_bootstrap + torch.arange(n_bootstrap, device=device)).reshape(-1)
            boot_parts[k] = (rows, res.params)
        boot = _assemble(boot_parts, q * n_bootstrap, k_max, problems.dim, device)
    return FitOutput(k_sel, full, boot, converged, scores)


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
