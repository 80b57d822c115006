"""Pruning neurons: weight surgery, accuracy before/after, and pruning curves.

Removing hidden neuron u of a layer produced by weight module P and read by weight module Q:

* its incoming weights ``P.weight[u]`` and bias ``P.bias[u]`` are zeroed;
* its outgoing weights ``Q.weight[:, u]`` are zeroed after folding its output value c_u into
  Q's bias, ``Q.bias += Q.weight[:, u] * c_u``.

For a neuron that is constant on the data (a dead ReLU, c_u = 0, or a neuron whose inputs are
all zero) this leaves every output unchanged. Pruning a live neuron folds its mean activation
(replacement by the mean), which is what the pruning curves do for every order. Conv channels
(spatial-mean nodes) are removed only when their map is identically 0 (constant 0 after a
non-negative activation such as ReLU); other channels are kept and reported, since a constant
map cannot be folded into a bias exactly in general (padding).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from distmi.analyses.nif.graph import FlowGraph, NodeLayer
from distmi.core.errors import InvalidInputError, InvalidParameterError
from distmi.core.seeds import derive_rng

_NONNEGATIVE = ("ReLU", "ReLU6", "Sigmoid", "Softplus", "Hardsigmoid")


@dataclass
class PruneReport:
    """What :func:`prune_neurons` did.

    Attributes:
        pruned: (layer, unit) removed.
        skipped: (layer, unit, reason) kept.
        params_zeroed: weights and biases set to 0 that were not 0 before.
        params_total: weights and biases of the model.
    """

    pruned: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    params_zeroed: int = 0
    params_total: int = 0


def _modules(model: Any) -> dict[str, Any]:
    return dict(model.named_modules())


def _check_layer(layer: NodeLayer, mods: dict[str, Any]) -> tuple[Any, Any]:
    for role in ("producer", "consumer"):
        name = getattr(layer, role)
        if name is None or name not in mods:
            raise InvalidInputError(
                f"cannot prune layer {layer.name!r}: its {role} module {name!r} is not in the "
                "model; prune the model the flow was computed on."
            )
    prod, cons = mods[layer.producer], mods[layer.consumer]
    if prod.weight.shape[0] != layer.n_units:
        raise InvalidInputError(
            f"cannot prune layer {layer.name!r}: its producer {layer.producer!r} has "
            f"{prod.weight.shape[0]} outputs, the flow has {layer.n_units} units; prune the "
            "model the flow was computed on."
        )
    if cons.weight.shape[1] % layer.n_units:
        raise InvalidInputError(
            f"cannot prune layer {layer.name!r}: consumer {layer.consumer!r} reads "
            f"{cons.weight.shape[1]} inputs, not a multiple of the layer's {layer.n_units} units."
        )
    return prod, cons


def _count_nonzero(model: Any) -> int:
    return int(sum(int((p != 0).sum()) for p in model.parameters()))


def prune_neurons(model: Any, graph: FlowGraph, units: Sequence[tuple[str, int]],
                  values: dict[tuple[str, int], float]) -> tuple[Any, PruneReport]:
    """A copy of ``model`` with ``units`` removed (see module docstring).

    Args:
        model: the torch model the flow was computed on.
        graph: its NIF graph (producer/consumer modules of each hidden layer).
        units: (layer, unit) to remove; input features and outputs are skipped.
        values: (layer, unit) -> output value folded into the consumer's bias.
    """
    import torch

    pruned = copy.deepcopy(model)
    mods = _modules(pruned)
    report = PruneReport(params_total=int(sum(p.numel() for p in pruned.parameters())))
    before = _count_nonzero(pruned)
    by_layer: dict[str, list[int]] = {}
    for layer_name, unit in units:
        by_layer.setdefault(layer_name, []).append(int(unit))
    with torch.no_grad():
        for layer in graph.layers:
            todo = sorted(set(by_layer.pop(layer.name, [])))
            if not todo:
                continue
            if layer.kind != "hidden":
                report.skipped += [(layer.name, u, f"{layer.kind} nodes are not pruned")
                                   for u in todo]
                continue
            prod, cons = _check_layer(layer, mods)
            span = cons.weight.shape[1] // layer.n_units  # >1: conv channel -> flattened Linear
            act_type = type(mods[layer.module]).__name__ if layer.module in mods else ""
            for u in todo:
                c = float(values.get((layer.name, u), 0.0))
                if layer.conv and not (c == 0.0 and act_type in _NONNEGATIVE):
                    report.skipped.append((layer.name, u, "conv channel whose map is not "
                                           "identically 0 cannot be folded into a bias"))
                    continue
                prod.weight[u] = 0.0
                if prod.bias is not None:
                    prod.bias[u] = 0.0
                cols = slice(u * span, (u + 1) * span)
                w_out = cons.weight[:, cols]
                if c != 0.0:
                    if cons.bias is None:
                        cons.bias = torch.nn.Parameter(torch.zeros(cons.weight.shape[0],
                                                                   dtype=cons.weight.dtype))
                    fold = w_out.reshape(w_out.shape[0], -1).sum(1) * c
                    cons.bias += fold.to(cons.bias.dtype)
                cons.weight[:, cols] = 0.0
                report.pruned.append((layer.name, u))
        for name, rest in by_layer.items():
            report.skipped += [(name, u, "not a layer of the flow's graph") for u in rest]
    report.params_zeroed = before - _count_nonzero(pruned)
    return pruned, report


def predict(model: Any, X: Any, batch_size: int = 4096) -> np.ndarray:
    """Logits of ``model`` on X (float32 numpy), eval mode, no gradients."""
    import torch

    xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    was = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = [model(xt[s:s + batch_size]).float().numpy() for s in range(0, len(xt), batch_size)]
    finally:
        model.train(was)
    return np.concatenate(out)


def accuracy(model: Any, X: Any, y: np.ndarray) -> float:
    """Share of rows whose arg-max logit is the label."""
    return float((predict(model, X).argmax(1) == np.asarray(y)).mean())


def _l1_scores(model: Any, graph: FlowGraph, hidden: pd.DataFrame) -> np.ndarray:
    """L1 norm of each hidden neuron's incoming weights (magnitude pruning, Li et al. 2017)."""
    mods = _modules(model)
    scores = np.empty(len(hidden))
    for k, (layer_name, unit) in enumerate(zip(hidden["layer"], hidden["unit"], strict=True)):
        prod = mods[graph.layer(layer_name).producer]
        scores[k] = float(prod.weight[int(unit)].detach().abs().sum())
    return scores


def pruning_orders(model: Any, graph: FlowGraph, neurons: pd.DataFrame, n_random: int,
                   seed: int) -> dict[str, list[np.ndarray]]:
    """Orders (row indices into the hidden neurons, first pruned first) per strategy.

    ``nif``: zero-flow neurons first, then by increasing information flow through the neuron
    (eq. 2 link values); ``nif_mi``: the same with the raw link MI (no redundancy term);
    ``l1``: increasing L1 norm of incoming weights; ``random``: ``n_random`` permutations.
    """
    hidden = neurons[neurons["kind"] == "hidden"].reset_index(drop=True)
    idx = np.arange(len(hidden))
    nif = np.lexsort((idx, hidden["flow"].to_numpy(), ~hidden["zero_flow"].to_numpy(bool)))
    zero_last = ~hidden["zero_flow"].to_numpy(bool)
    orders = {"nif": [nif]}
    if "flow_mi" in hidden:
        orders["nif_mi"] = [np.lexsort((idx, hidden["flow_mi"].to_numpy(), zero_last))]
    l1 = np.lexsort((idx, _l1_scores(model, graph, hidden)))
    rand = [derive_rng(seed, "nif", "prune-random", r).permutation(len(hidden))
            for r in range(n_random)]
    return {**orders, "l1": [l1], "random": rand}


def pruning_curve(model: Any, graph: FlowGraph, neurons: pd.DataFrame, X: Any, y: np.ndarray,
                  fractions: Sequence[float] | None = None, n_random: int = 5, seed: int = 0
                  ) -> pd.DataFrame:
    """Accuracy on (X, y) after pruning a growing fraction of hidden neurons, per order.

    Returns:
        rows (order, fraction, n_pruned, accuracy, accuracy_sd); ``random`` is the mean over
        ``n_random`` orders (sd across them).
    """
    if fractions is None:
        fractions = np.round(np.linspace(0.0, 1.0, 11), 2)
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or ((fr < 0) | (fr > 1)).any():
        raise InvalidParameterError(f"fractions must lie in [0, 1], got {list(fractions)}.")
    hidden = neurons[neurons["kind"] == "hidden"].reset_index(drop=True)
    values = {(layer, int(u)): float(m) for layer, u, m in
              zip(hidden["layer"], hidden["unit"], hidden["mean"], strict=True)}
    keys = list(zip(hidden["layer"], hidden["unit"].astype(int), strict=True))
    rows = []
    for name, orders in pruning_orders(model, graph, neurons, n_random, seed).items():
        for f in fr:
            k = round(f * len(hidden))
            accs = []
            for order in orders:
                pruned, _ = prune_neurons(model, graph, [keys[i] for i in order[:k]], values)
                accs.append(accuracy(pruned, X, y))
            rows.append({"order": name, "fraction": float(f), "n_pruned": k,
                         "accuracy": float(np.mean(accs)),
                         "accuracy_sd": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0})
    return pd.DataFrame(rows)


def curve_summary(curve: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
    """Per order: the largest fraction pruned with accuracy >= the unpruned one - tolerance
    (nothing smaller failing first), and the mean accuracy over the curve (area)."""
    rows = []
    for name, g in curve.groupby("order", sort=False):
        g = g.sort_values("fraction")
        base = float(g["accuracy"].iloc[0])
        ok = (g["accuracy"] >= base - tolerance).to_numpy()
        first_bad = int(np.argmin(ok)) if not ok.all() else len(ok)
        keep = float(g["fraction"].iloc[first_bad - 1]) if first_bad > 0 else 0.0
        rows.append({"order": name, "kept_accuracy_to_fraction": keep,
                     "mean_accuracy": float(g["accuracy"].mean())})
    return pd.DataFrame(rows)
