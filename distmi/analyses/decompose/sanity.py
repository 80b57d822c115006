"""The model-randomisation sanity check (Adebayo et al. 2018); see :mod:`.evaluation`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from distmi.core.seeds import derive_seed


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy with every parameter re-initialised (each module's ``reset_parameters``;
    parameters of modules without one are redrawn from N(0, 0.02))."""
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "randomise-model"))
        covered: set[int] = set()
        for module in clone.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                covered.update(id(p) for p in module.parameters(recurse=False))
        with torch.no_grad():
            for p in clone.parameters():
                if id(p) not in covered:
                    p.normal_(0.0, 0.02)
    clone.eval()
    return clone


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each pair of rows of (n, ...) maps; NaN entries and constant
    rows give NaN. Returns (n,)."""
    from scipy.stats import spearmanr

    a2 = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b2 = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    out = np.full(len(a2), np.nan)
    for i in range(len(a2)):
        ok = np.isfinite(a2[i]) & np.isfinite(b2[i])
        if ok.sum() > 2 and np.ptp(a2[i][ok]) > 0 and np.ptp(b2[i][ok]) > 0:
            out[i] = spearmanr(a2[i][ok], b2[i][ok]).statistic
    return out


def randomisation_check(dec: Any, fit_inputs: Any, explain_inputs: Any, *, seed: int = 0,
                        explanation: Any = None,
                        extra_maps: Callable[[nn.Module], dict[str, np.ndarray]] | None = None
                        ) -> dict[str, float]:
    """Model-randomisation sanity check of a fitted decomposition (see module docstring).

    Args:
        dec: the fitted :class:`~distmi.analyses.decompose.Decomposition`.
        fit_inputs: inputs (without labels) to refit on; the random model's predictions serve
            as labels.
        explain_inputs: inputs whose maps are compared.
        explanation: ``dec.explain(explain_inputs)`` when already computed.
        extra_maps: optional function model -> {name: (n, ...) map} (e.g. Grad-CAM) whose
            trained-vs-random correlation is reported alongside, for reference.

    Returns:
        {"total": mean Spearman rho, "decision": ..., "redundant": ..., plus extra names}.
    """
    from distmi.analyses.decompose.decomposition import fit

    random_model = randomised_copy(dec.model, seed)
    params = dec.config.model_dump()
    params["representation"] = dec.representation_
    params["random_state"] = params["random_state"] + 1
    rand_dec = fit(random_model, fit_inputs, **params)
    trained = explanation if explanation is not None else dec.explain(explain_inputs)
    randomised = rand_dec.explain(explain_inputs)
    out = {name: float(np.nanmean(rank_correlation(trained.map(name), randomised.map(name))))
           for name in ("total", "decision", "redundant")}
    if extra_maps is not None:
        a, b = extra_maps(dec.model), extra_maps(random_model)
        for name in a:
            out[name] = float(np.nanmean(rank_correlation(a[name], b[name])))
    return out
