"""NIF attributions against Integrated Gradients (captum) and SHAP (shap) on the same model.

Every method yields a features x classes matrix of non-negative importances:

* **NIF**: the eq. 4 attribution matrix;
* **IG**: captum's ``IntegratedGradients`` (Sundararajan et al. 2017) with the training mean as
  baseline, |attribution| averaged over the explained rows, one column per target class;
* **SHAP**: shap's ``DeepExplainer`` (DeepLIFT-style SHAP values, Lundberg & Lee 2017) with a
  background of training rows, |value| averaged over the explained rows;
* **raw MI**: I(feature; 1[y = c]), the seed's reference ("raw mutual information").

Comparisons:

* the seed's **K-S table**: a two-sample Kolmogorov-Smirnov test between each method's
  matrix and the raw-MI matrix, each scaled to sum 1 (with d x C values; the seed reports
  NIF 1.0 / p = 0.011, SHAP 0.75 / 0.107, IG 0.25 / 0.996 on iris). With so few values the
  test has little power, so also:
* **Spearman** rank correlation of per-feature importance (summed over classes) between
  every two methods, and **top-k overlap** (shared features among the k most important);
* a **deletion curve** (Petsiuk et al. 2018): test accuracy after replacing the k most
  important features by their training mean, k = 0..d; a lower curve (smaller area) means the
  ranking found the features the model relies on. A random order is the baseline.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from distmi.analyses.nif.pruning import accuracy
from distmi.core.seeds import derive_rng


def _explained_rows(n: int, max_rows: int, seed: int) -> np.ndarray:
    if n <= max_rows:
        return np.arange(n)
    return np.sort(derive_rng(seed, "nif", "explain-rows").choice(n, size=max_rows, replace=False))


def integrated_gradients(model: Any, X: np.ndarray, baseline: np.ndarray, n_classes: int,
                         n_steps: int = 50) -> np.ndarray:
    """mean |IG| per feature and target class, shape (d, C)."""
    import torch
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(model)
    x = torch.as_tensor(np.asarray(X, np.float32))
    base = torch.as_tensor(np.asarray(baseline, np.float32)).reshape(1, -1).expand_as(x)
    was = model.training
    model.eval()
    try:
        cols = [ig.attribute(x, baselines=base, target=c, n_steps=n_steps).abs().mean(0)
                .detach().numpy() for c in range(n_classes)]
    finally:
        model.train(was)
    return np.stack(cols, axis=1)


def shap_values(model: Any, X: np.ndarray, background: np.ndarray) -> np.ndarray:
    """mean |SHAP value| per feature and class from shap's DeepExplainer, shape (d, C)."""
    import shap
    import torch

    was = model.training
    model.eval()
    try:
        explainer = shap.DeepExplainer(model, torch.as_tensor(np.asarray(background, np.float32)))
        vals = explainer.shap_values(torch.as_tensor(np.asarray(X, np.float32)),
                                     check_additivity=False)
    finally:
        model.train(was)
    arr = np.asarray(vals)
    if arr.ndim == 3 and arr.shape[0] != X.shape[0]:  # older shap: list over classes
        arr = np.moveaxis(arr, 0, -1)
    return np.abs(arr).mean(axis=0)  # (d, C)


def _normalised(m: np.ndarray) -> np.ndarray:
    m = np.clip(np.nan_to_num(np.asarray(m, np.float64)), 0.0, None)
    total = m.sum()
    return m / total if total > 0 else m


def ks_table(matrices: dict[str, np.ndarray], reference: np.ndarray) -> pd.DataFrame:
    """The seed's table: K-S statistic and p-value of each method vs the reference matrix."""
    from scipy.stats import ks_2samp

    ref = _normalised(reference).ravel()
    rows = []
    for name, m in matrices.items():
        res = ks_2samp(_normalised(m).ravel(), ref)
        rows.append({"attribution": name, "ks_statistic": float(res.statistic),
                     "p_value": float(res.pvalue)})
    return pd.DataFrame(rows)


def agreement(importance: dict[str, np.ndarray], k: int) -> pd.DataFrame:
    """Spearman correlation and top-k overlap of per-feature importances, every method pair."""
    from scipy.stats import spearmanr

    rows = []
    for a, b in itertools.combinations(importance, 2):
        va, vb = importance[a], importance[b]
        rho = spearmanr(va, vb).statistic if np.ptp(va) > 0 and np.ptp(vb) > 0 else np.nan
        top_a = set(np.argsort(-va, kind="stable")[:k])
        top_b = set(np.argsort(-vb, kind="stable")[:k])
        rows.append({"method_a": a, "method_b": b, "spearman": float(rho),
                     f"top{k}_overlap": len(top_a & top_b) / k})
    return pd.DataFrame(rows)


def deletion_curve(model: Any, X: np.ndarray, y: np.ndarray, fill: np.ndarray,
                   orders: dict[str, list[np.ndarray]], steps: list[int]) -> pd.DataFrame:
    """Accuracy after replacing the first k features of each order by ``fill`` (per feature).

    A method with several orders (the random baseline) gets their mean accuracy.
    """
    rows = []
    for name, order_list in orders.items():
        for k in steps:
            accs = []
            for order in order_list:
                xd = np.array(X, dtype=np.float32, copy=True)
                cols = order[:k]
                xd[:, cols] = fill[cols]
                accs.append(accuracy(model, xd, y))
            rows.append({"method": name, "n_deleted": int(k), "accuracy": float(np.mean(accs))})
    return pd.DataFrame(rows)


def compare_attributions(flow: Any, model: Any, x_train: np.ndarray, x_test: np.ndarray,
                         y_test: np.ndarray, *, max_rows: int = 200, background: int = 100,
                         top_k: int | None = None, n_random: int = 5, seed: int = 0
                         ) -> dict[str, pd.DataFrame]:
    """Run IG and SHAP on the flow's model and compare them with NIF and raw MI.

    Args:
        flow: a :class:`~distmi.analyses.nif.flow.Flow` of ``model``.
        model: the torch classifier (inputs are rows of ``x_*``, flattened features).
        x_train: rows for the IG baseline (mean), SHAP background and deletion fill.
        x_test, y_test: rows explained and scored by the deletion curve.
        max_rows: at most this many test rows are explained (seeded subset).
        background: SHAP background rows (seeded subset of ``x_train``).
        top_k: k of the top-k overlap (default max(2, ceil(d / 4))).
        n_random: random deletion orders averaged for the baseline.

    Returns:
        ``matrices`` (long: method, feature, class, importance), ``ks`` (the seed's table),
        ``agreement`` (Spearman, top-k), ``deletion`` (curve), ``deletion_area`` (mean
        accuracy per method).
    """
    x_train = np.asarray(x_train, np.float32).reshape(len(x_train), -1)
    x_test = np.asarray(x_test, np.float32).reshape(len(x_test), -1)
    d = x_train.shape[1]
    n_classes = flow.raw_mi.shape[1]
    rows = _explained_rows(len(x_test), max_rows, seed)
    bg = x_train[_explained_rows(len(x_train), background, seed + 1)]
    mean = x_train.mean(axis=0)
    ig = integrated_gradients(model, x_test[rows], mean, n_classes)
    sh = shap_values(model, x_test[rows], bg)
    nif = flow.attribution.to_numpy()
    if nif.shape[1] != n_classes:  # logits outputs: same class columns
        nif = nif[:, :n_classes]
    mats = {"NIF": nif, "SHAP": sh, "IG": ig}
    features = list(flow.attribution.index)
    classes = list(flow.raw_mi.columns)
    long = pd.concat([
        pd.DataFrame({"method": name, "feature": np.repeat(features, n_classes),
                      "class": np.tile(classes, d), "importance": m.ravel()})
        for name, m in {**mats, "raw MI": flow.raw_mi.to_numpy()}.items()
    ], ignore_index=True)
    ks = ks_table(mats, flow.raw_mi.to_numpy())
    importance = {name: m.sum(axis=1) for name, m in
                  {**mats, "raw MI": flow.raw_mi.to_numpy()}.items()}
    k = top_k or max(2, int(np.ceil(d / 4)))
    agree = agreement(importance, min(k, d))
    orders = {name: [np.argsort(-v, kind="stable")] for name, v in importance.items()}
    orders["random"] = [derive_rng(seed, "nif", "deletion-random", r).permutation(d)
                        for r in range(n_random)]
    step = max(1, d // 16)
    steps = sorted({*range(0, d + 1, step), d})
    deletion = deletion_curve(model, x_test, y_test, mean, orders, steps)
    area = deletion.groupby("method", sort=False)["accuracy"].mean().rename("mean_accuracy")
    return {"matrices": long, "ks": ks, "agreement": agree, "deletion": deletion,
            "deletion_area": area.reset_index()}
