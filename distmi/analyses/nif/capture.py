"""Run a classifier over its data and collect the node activations of its NIF graph.

Activations are kept as float32 (the activation store's dtype), so a flow computed in this
process and one computed from a stored dataset see the same numbers. Conv outputs
(n, C, *spatial) are reduced to their spatial mean per channel, (n, C).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from distmi.analyses.nif.graph import CLASSES, INPUT, LOGITS, FlowGraph, with_sizes
from distmi.core.errors import (
    InvalidInputError,
    LengthMismatchError,
    NonFiniteInputError,
    SingleClassError,
)


def check_labels(y: Any, n: int, n_classes: int | None = None) -> np.ndarray:
    """Class codes (n,) int64 in [0, n_classes).

    Raises:
        LengthMismatchError: ``y`` does not have one label per row of ``X``.
        InvalidInputError: labels are not integer class indices of the model's outputs.
        SingleClassError: fewer than two classes occur.
    """
    arr = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise InvalidInputError(
            f"y must be a vector of class indices, shape (n,), got shape {arr.shape}; pass "
            "labels, not one-hot rows (use y.argmax(1))."
        )
    if len(arr) != n:
        raise LengthMismatchError(
            f"y has {len(arr)} labels but X has {n} rows; pass one class label per row of X."
        )
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iub":
        raise InvalidInputError(
            f"y must hold integer class indices 0..C-1 matching the model's output columns, got "
            f"dtype {arr.dtype}; encode labels first, e.g. with sklearn's LabelEncoder."
        )
    codes = arr.astype(np.int64)
    if codes.min() < 0 or (n_classes is not None and codes.max() >= n_classes):
        raise InvalidInputError(
            f"y holds class indices in [{codes.min()}, {codes.max()}], but the model has "
            f"{n_classes} output columns; labels must be 0..{(n_classes or 1) - 1}."
        )
    if np.unique(codes).size < 2:
        raise SingleClassError(
            f"y holds a single class ({codes[0]}); information flow to the classes needs at "
            "least two classes in the data."
        )
    return codes


def _as_tensor(X: Any, model: Any) -> Any:
    import torch

    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        arr = np.asarray(X)
        if arr.dtype.kind not in "fiub":
            raise InvalidInputError(f"X must be numeric, got dtype {arr.dtype}.")
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if t.ndim < 2:
        raise InvalidInputError(
            f"X must have one row per sample, shape (n, features...), got shape {tuple(t.shape)}."
        )
    param = next(iter(model.parameters()), None)
    if param is not None:
        t = t.to(device=param.device, dtype=param.dtype)
    return t


def _as_units(out: Any, name: str) -> np.ndarray:
    import torch

    if isinstance(out, tuple | list):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise InvalidInputError(f"module {name!r} returned {type(out).__name__}, not a tensor.")
    x = out.detach().float().cpu()
    if x.ndim > 2:  # (n, C, *spatial): channel units, spatial mean
        x = x.flatten(2).mean(2)
    return x.numpy().astype(np.float32)


def capture_activations(model: Any, graph: FlowGraph, X: Any, batch_size: int = 4096
                        ) -> tuple[dict[str, np.ndarray], np.ndarray, FlowGraph]:
    """Node activations of every layer of ``graph`` and the model's logits.

    Returns:
        (activations: layer name -> (n, units) float32 in graph order (the output layer
        ``classes`` excluded), logits (n, C) float32, the graph with unit counts and names).

    Raises:
        InvalidInputError: the output is not (n, C) logits with C >= 2, or a layer returned
            something that is not a tensor.
        NonFiniteInputError: X or an activation holds NaN/Inf.
    """
    import torch

    xt = _as_tensor(X, model)
    n = xt.shape[0]
    if n < 8:
        raise InvalidInputError(f"X has {n} rows; information flow needs at least 8 samples.")
    modules = dict(model.named_modules())
    hidden = [layer.name for layer in graph.hidden]
    store: dict[str, list[np.ndarray]] = {name: [] for name in hidden}

    def hook_for(name: str):
        def hook(_m: Any, _i: Any, out: Any) -> None:
            store[name].append(_as_units(out, name))
        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in hidden]
    was_training = model.training
    logits_parts = []
    try:
        model.eval()
        with torch.inference_mode():
            for s in range(0, n, batch_size):
                out = model(xt[s:s + batch_size])
                if isinstance(out, tuple | list) and out:
                    out = out[0]
                if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] < 2:
                    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    raise InvalidInputError(
                        f"the model's output is {shape}, not (n, C) class scores with C >= 2: "
                        "NIF explains classifiers (one logit per class); wrap a regression or "
                        "single-score model to return per-class scores."
                    )
                logits_parts.append(out.detach().float().cpu().numpy())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    logits = np.concatenate(logits_parts)
    acts: dict[str, np.ndarray] = {INPUT: xt.detach().float().cpu().reshape(n, -1).numpy()}
    for name in hidden:
        rows = sum(len(part) for part in store[name])
        if rows != n:
            raise InvalidInputError(
                f"module {name!r} produced {rows} rows for {n} samples; NIF needs modules that "
                "run once per forward pass (not inside a loop or not at all)."
            )
        acts[name] = np.concatenate(store[name])
    if graph.outputs == "logits":
        acts[LOGITS] = logits
    for name, a in acts.items():
        if not np.isfinite(a).all():
            raise NonFiniteInputError(
                f"layer {name!r} holds NaN or Inf activations; check X and the model."
            )
    sizes = {name: a.shape[1] for name, a in acts.items()}
    sizes[CLASSES] = logits.shape[1]
    names = {name: [str(u) for u in range(k)] for name, k in sizes.items()}
    return acts, logits, with_sizes(graph, sizes, names)

