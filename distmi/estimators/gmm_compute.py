"""Batched GMM-MI over many variable pairs: data preparation, fits, integrals, results.

Continuous pairs: for each pair the joint samples z = (x, y[, cond]) are standardised per
column (MI is invariant under affine maps of each variable) and one mixture is fitted; MI is
the expected log-ratio of :mod:`distmi.kernels.gmm_mi_integral`.

Categorical y: one mixture p(x | c) per (pair, class), fitted with the class mask as sample
weights; the class prior is the empirical one, per bootstrap replicate.

Point estimate = MI of the full-data fit; std = bootstrap standard deviation (ddof=1);
CI = a bootstrap interval that corrects for the resampling bias of the replicates (BCa by
default, with the acceleration from the influence values, i.e. the fitted mixture's pointwise
MI at every row, or from a delete-a-group jackknife; or the basic interval; the plain
percentile interval on request), from :mod:`distmi.kernels.significance`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import fields

import numpy as np
import torch

from distmi.core.results import MIResult, percentile_interval
from distmi.core.seeds import derive_rng
from distmi.core.validation import check_min_samples
from distmi.estimators.gmm_config import GMMMIConfig
from distmi.kernels.em import GMMParams
from distmi.kernels.gmm_mi_integral import (
    categorical_mi,
    categorical_pointwise,
    expected_log_ratio,
    pointwise_log_ratio,
    resolve_scheme,
)
from distmi.kernels.gmm_problems import GMMFitConfig, Problems, bootstrap_counts, jackknife_masks
from distmi.kernels.gmm_refit import FitOutput, fit_problems
from distmi.kernels.significance import (
    basic_interval,
    bca_interval,
    influence_acceleration,
    jackknife_acceleration,
)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from distmi.core.errors import InvalidParameterError

        raise InvalidParameterError(
            f"device={name!r} was requested but no CUDA device is available; "
            "use device='cpu' or device='auto'."
        )
    return torch.device(name)


def _fit_config(cfg: GMMMIConfig) -> GMMFitConfig:
    """The numerical subset of the user-facing settings that the fitting kernels need."""
    return GMMFitConfig(**{f.name: getattr(cfg, f.name) for f in fields(GMMFitConfig)})


def standardise(data: np.ndarray) -> np.ndarray:
    """Per-column z-scores over the sample axis, at any scale. data (P, N, D) -> same shape.

    :func:`distmi.core.scaling.standardize` pre-scales by a power of two, so data in units of
    1e+-300 give the z-scores (and the MI) of unit-scale data."""
    from distmi.core.scaling import standardize

    return standardize(data, axis=1)


def prepare(blocks: Sequence[np.ndarray], cfg: GMMMIConfig, seed: int) -> np.ndarray:
    """Stack blocks (P, N, D), standardise, and add ``jitter`` sd of Gaussian noise.

    Jitter dequantises point masses and ties (ReLU zeros, rounded measurements), which a
    Gaussian mixture can only fit with collapsing components. The noise is one (N, D) draw
    per seed, the same for every block, so batched and single results stay equal; by the
    data-processing inequality the MI of the jittered variables is at most the original MI.
    """
    data = standardise(np.stack(blocks).astype(np.float64))  # (P, N, D), unit scale
    if cfg.jitter > 0:
        _, n, d = data.shape
        noise = derive_rng(seed, "gmm-jitter", n, d).standard_normal((n, d))
        data = standardise(data + cfg.jitter * noise[None])
    return data


def _integration_kwargs(cfg: GMMMIConfig, dim: int, seed: int, device) -> dict:
    scheme = resolve_scheme(dim, cfg.integration)
    kwargs: dict = {"scheme": scheme, "n_nodes": cfg.n_nodes}
    if scheme == "mc":
        rng = derive_rng(seed, "gmm-mc", dim)
        kwargs["mc_normals"] = torch.as_tensor(
            rng.standard_normal((cfg.mc_samples, dim)), dtype=torch.float64, device=device
        )
        kwargs["mc_uniforms"] = torch.as_tensor(
            rng.random(cfg.mc_samples), dtype=torch.float64, device=device
        )
    return kwargs


def _min_samples_check(n: int, cfg: GMMMIConfig, dim: int, what: str) -> None:
    required = max(2 * cfg.n_folds * (dim + 1), 10)
    check_min_samples(
        n,
        required,
        f"GMM-MI with {cfg.n_folds} folds in {dim} dimensions ({what})",
        f"collect more samples, or lower n_folds (n_folds={cfg.n_folds}).",
    )


def n_jackknife_groups(cfg: GMMMIConfig, n_bootstrap: int) -> int:
    """Jackknife refits needed: only BCa intervals with ``acceleration="jackknife"`` use them
    (and only with >= 2 replicates)."""
    wanted = cfg.ci_method == "bca" and cfg.acceleration == "jackknife" and n_bootstrap >= 2
    return cfg.n_jackknife if wanted else 0


def wants_influence(cfg: GMMMIConfig, n_bootstrap: int) -> bool:
    """Whether the BCa acceleration comes from the influence values (pointwise MI)."""
    return cfg.ci_method == "bca" and cfg.acceleration == "influence" and n_bootstrap >= 2


def intervals(value: np.ndarray, boot: np.ndarray, jack: np.ndarray | None,
              cfg: GMMMIConfig, accel: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Interval ends (P,), (P,) by ``cfg.ci_method`` from estimates (P,), replicates (P, B)
    and the BCa acceleration: ``accel`` (P,) when given (influence values), else from the
    jackknife values (P, J) (None or J < 3: a = 0, the BC interval)."""
    if cfg.ci_method == "percentile":
        ends = np.array([percentile_interval(b, cfg.ci_level) for b in boot]).reshape(-1, 2)
        return ends[:, 0], ends[:, 1]
    if cfg.ci_method == "basic":
        return basic_interval(value, boot, cfg.ci_level)
    if accel is None and jack is not None and jack.shape[1] >= 3:
        accel = jackknife_acceleration(jack)
    return bca_interval(value, boot, cfg.ci_level, accel)


def summarise(
    values: np.ndarray,
    boot: np.ndarray,
    jack: np.ndarray | None,
    diagnostics: list[dict],
    *,
    n: int,
    cfg: GMMMIConfig,
    seed: int,
    n_bootstrap: int,
    accel: np.ndarray | None = None,
) -> list[MIResult]:
    """One MIResult per problem from point estimates (P,), replicates (P, B), jackknife (P, J)
    and the influence-value acceleration (P,) (``acceleration="influence"``)."""
    p = values.shape[0]
    if n_bootstrap >= 2:
        std = np.std(boot, axis=1, ddof=1)
        low, high = intervals(values, boot, jack, cfg, accel)
    else:
        std = np.full(p, math.nan)
        low = high = np.full(p, math.nan)
    for i in range(p):
        diagnostics[i].update(_status(diagnostics[i], values[i], boot[i], std[i], low[i], high[i],
                                      cfg))
    params = cfg.model_dump()
    params.update(random_state=seed, n_bootstrap=n_bootstrap)
    out = []
    for i in range(p):
        diag = diagnostics[i]
        if n_bootstrap >= 2:
            diag["bootstrap_mean"] = float(np.mean(boot[i]))
            # resampling bias of the replicates, removed once: 2 theta - mean(theta*)
            diag["bias_corrected"] = float(2.0 * values[i] - np.mean(boot[i]))
        if jack is not None and jack.shape[1]:
            diag["jackknife"] = jack[i].tolist()
        if accel is not None:
            diag["acceleration"] = float(accel[i])
        diag["bootstrap"] = boot[i].tolist()
        out.append(MIResult(
            value=float(values[i]), std=float(std[i]), ci=(float(low[i]), float(high[i])),
            n_samples=n, method="gmm", params=dict(params), diagnostics=diag,
        ))
    return out


def _status(diag: dict, value: float, boot: np.ndarray, std: float, low: float, high: float,
            cfg: GMMMIConfig) -> dict:
    """``status`` ("ok" or "warning") and ``warnings`` (one string, "; "-separated) of a result:
    conditions under which the estimate or its interval deserve a second look."""
    notes = []
    if not diag["converged"]:
        notes.append(f"EM did not converge within max_iter={cfg.max_iter}")
    if cfg.n_components is None and diag["n_components"] >= cfg.max_components:
        notes.append(f"K reached max_components={cfg.max_components}: the mixture may need "
                     "more components (raise max_components)")
    if diag.get("sample_limited"):
        notes.append("K was capped by the sample size while still improving: the density may "
                     "be under-fitted (collect more samples)")
    if boot.size >= 2 and np.isfinite(std) and abs(np.mean(boot) - value) > max(std, 1e-12):
        notes.append("the bootstrap replicates are biased by more than their spread (typical "
                     "of MI near 0 or small samples): the interval is centred on the "
                     "bias-corrected estimate")
    if np.isfinite(low) and not low <= value <= high:
        notes.append("the point estimate lies outside its bias-corrected interval")
    return {"status": "warning" if notes else "ok", "warnings": "; ".join(notes)}


def fit_diagnostics(fit: FitOutput, rows: slice | int) -> dict:
    """EM iteration counts per stage of problem(s) ``rows`` (summed over classes)."""
    out = {f"em_iter_{stage}": int(it[rows].sum()) for stage, it in fit.em_iterations.items()}
    out["sample_limited"] = bool(fit.sample_limited[rows].any())
    return out


def continuous_pairs(
    blocks: Sequence[np.ndarray],
    group_dims: Sequence[Sequence[int]],
    cfg: GMMMIConfig,
    n_bootstrap: int,
    seed: int,
    conditional: bool = False,
) -> list[MIResult]:
    """GMM-MI for P problems given as joint sample blocks.

    Args:
        blocks: P arrays of shape (N, D), each the joint samples [x | y] (or [x | y | z]).
        group_dims: column indices of x, y (and z when ``conditional``) inside a block.
        conditional: estimate I(X; Y | Z) instead of I(X; Y).
    Returns:
        one MIResult per block.
    """
    device = resolve_device(cfg.device)
    data_np = prepare(blocks, cfg, seed)  # (P, N, D)
    p, n, dim = data_np.shape
    _min_samples_check(n, cfg, dim, "joint samples")
    data = torch.as_tensor(data_np, dtype=torch.float64, device=device)
    problems = Problems(
        data=data,
        problem_data=torch.arange(p, device=device),
        base_weights=torch.ones((1, n), dtype=torch.float64, device=device),
        problem_base=torch.zeros(p, dtype=torch.long, device=device),
    )
    n_jack = n_jackknife_groups(cfg, n_bootstrap)
    fit = fit_problems(problems, _fit_config(cfg), seed, n_bootstrap, n_jack)
    x_dims, y_dims = list(group_dims[0]), list(group_dims[1])
    all_dims = list(range(dim))
    if conditional:
        z_dims = list(group_dims[2])
        terms = [(1.0, all_dims), (1.0, z_dims), (-1.0, x_dims + z_dims), (-1.0, y_dims + z_dims)]
    else:
        terms = [(1.0, all_dims), (-1.0, x_dims), (-1.0, y_dims)]
    kwargs = _integration_kwargs(cfg, dim, seed, device)
    full_mi = expected_log_ratio(fit.full, terms, **kwargs).cpu().numpy()
    boot_mi = (
        expected_log_ratio(fit.boot, terms, **kwargs).cpu().numpy().reshape(p, n_bootstrap)
        if fit.boot is not None
        else np.zeros((p, 0))
    )
    jack_mi = (
        expected_log_ratio(fit.jack, terms, **kwargs).cpu().numpy().reshape(p, n_jack)
        if fit.jack is not None
        else None
    )
    accel = None
    if wants_influence(cfg, n_bootstrap):
        accel = influence_acceleration(
            pointwise_log_ratio(fit.full, terms, data).cpu().numpy())
    diagnostics = []
    for i in range(p):
        diagnostics.append({
            "n_components": int(fit.n_components[i]),
            "converged": bool(fit.converged[i]),
            "selection_scores": fit.selection_scores[i],
            "integration": kwargs["scheme"],
            **fit_diagnostics(fit, i),
        })
    return summarise(full_mi, boot_mi, jack_mi, diagnostics, n=n, cfg=cfg, seed=seed,
                     n_bootstrap=n_bootstrap, accel=accel)


def _class_params(params: GMMParams, n_pairs: int, n_classes: int, reps: int) -> list[GMMParams]:
    """Split problem-major params (pair, class[, replicate]) into one GMMParams per class,
    each with n_pairs * reps elements ordered (pair, replicate)."""
    out = []
    for c in range(n_classes):
        rows = (
            (torch.arange(n_pairs)[:, None] * n_classes + c) * reps + torch.arange(reps)
        ).reshape(-1).to(params.means.device)
        sub = params.index(rows)
        out.append(sub)
    return out


def categorical_pairs(
    blocks: Sequence[np.ndarray],
    labels: np.ndarray,
    cfg: GMMMIConfig,
    n_bootstrap: int,
    seed: int,
) -> list[MIResult]:
    """GMM-MI between continuous x blocks and one label vector.

    Args:
        blocks: P arrays (N, Dx).
        labels: (N,) int64 codes in [0, C).
    """
    device = resolve_device(cfg.device)
    data_np = prepare(blocks, cfg, seed)
    p, n, dim = data_np.shape
    n_classes = int(labels.max()) + 1
    class_counts = np.bincount(labels, minlength=n_classes)
    for c, count in enumerate(class_counts):
        _min_samples_check(int(count), cfg, dim, f"class {c} has {count} samples")
    masks = np.stack([(labels == c).astype(np.float64) for c in range(n_classes)])  # (C, N)
    data = torch.as_tensor(data_np, dtype=torch.float64, device=device)
    problems = Problems(
        data=data,
        problem_data=torch.arange(p, device=device).repeat_interleave(n_classes),
        base_weights=torch.as_tensor(masks, device=device),
        problem_base=torch.arange(n_classes, device=device).repeat(p),
    )
    n_jack = n_jackknife_groups(cfg, n_bootstrap)
    fit = fit_problems(problems, _fit_config(cfg), seed, n_bootstrap, n_jack)
    kwargs = _integration_kwargs(cfg, dim, seed, device)
    masks_t = torch.as_tensor(masks.T, device=device)  # (N, C)

    log_prior_full = torch.log(torch.as_tensor(class_counts / n, device=device))
    full_mi = categorical_mi(
        _class_params(fit.full, p, n_classes, 1),
        log_prior_full.expand(p, -1),
        **kwargs,
    ).cpu().numpy()
    boot_mi = np.zeros((p, 0))
    if fit.boot is not None:
        counts = bootstrap_counts(seed, n, n_bootstrap, device)  # (B, N)
        prior = counts @ masks_t / counts.sum(-1, keepdim=True)  # (B, C)
        boot_mi = categorical_mi(
            _class_params(fit.boot, p, n_classes, n_bootstrap),
            torch.log(prior).repeat(p, 1),
            **kwargs,
        ).cpu().numpy().reshape(p, n_bootstrap)
    jack_mi = None
    if fit.jack is not None:
        keep = jackknife_masks(seed, n, n_jack, device)  # (J, N)
        prior = keep @ masks_t / keep.sum(-1, keepdim=True)
        jack_mi = categorical_mi(
            _class_params(fit.jack, p, n_classes, n_jack),
            torch.log(prior).repeat(p, 1),
            **kwargs,
        ).cpu().numpy().reshape(p, n_jack)
    accel = None
    if wants_influence(cfg, n_bootstrap):
        accel = influence_acceleration(categorical_pointwise(
            _class_params(fit.full, p, n_classes, 1), log_prior_full.expand(p, -1), data,
            torch.as_tensor(labels, device=device)).cpu().numpy())
    diagnostics = []
    for i in range(p):
        rows = slice(i * n_classes, (i + 1) * n_classes)
        ks = fit.n_components[rows].tolist()
        diagnostics.append({
            "n_components": int(max(ks)),
            "n_components_per_class": ks,
            "converged": bool(fit.converged[rows].all()),
            "class_prior": (class_counts / n).tolist(),
            "integration": kwargs["scheme"],
            **fit_diagnostics(fit, rows),
        })
    return summarise(full_mi, boot_mi, jack_mi, diagnostics, n=n, cfg=cfg, seed=seed,
                     n_bootstrap=n_bootstrap, accel=accel)
