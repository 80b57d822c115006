"""Layers of a ``torch.nn.Module``: names, output extraction and pooling over tokens.

Layers are named by their ``named_modules()`` path (``"encoder.layer.3"``, ``"features.0"``).
What a layer records is the output of its forward hook:

- a tensor is taken as is; a tuple/list gives its first tensor (Hugging Face layers return
  ``(hidden_states, ...)``); a mapping or ``ModelOutput`` gives ``last_hidden_state`` or
  its first tensor value.

Pooling (per layer) turns an output of shape (B, T, H) -- batch, tokens, hidden -- into
per-sample vectors, respecting the attention mask m (B, T) with m = 1 on real tokens:

- ``"mean"``:  h_b = sum_t m_bt x_bt / sum_t m_bt  (x_bt in R^H)          -> (B, H)
- ``"first"``: x at the first position with m = 1 (the [CLS] token)    -> (B, H)
- ``"last"``:  x at the last position with m = 1                       -> (B, H)
- ``"none"``:  every token kept, padded positions set to 0; units are (T, H) flattened
  to T*H (unit t*H + h) and the mask is stored with the dataset      -> (B, T, H)
- ``"spatial_mean"``: conv feature maps (B, C, *spatial) averaged over the spatial axes
  (global average pooling)                                           -> (B, C)

Outputs of shape (B, H) have nothing to pool and are stored as they are (pooling ``"none"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from distmi.core.errors import InvalidInputError, InvalidParameterError
from distmi.store.reader import unknown_name_error

POOLINGS = ("none", "mean", "first", "last", "spatial_mean")


@dataclass(frozen=True)
class LayerListing:
    """One capturable layer of a model."""

    name: str
    type: str
    n_parameters: int
    output_shape: tuple[int, ...] | None = None  # per-sample shape, when an example was run


def module_names(model: Any) -> list[str]:
    """``named_modules()`` paths of ``model`` except the root."""
    return [name for name, _ in model.named_modules() if name]


def resolve_layers(model: Any, layers: Any) -> list[str]:
    """Validate requested layer names against the model (unknown -> closest suggestions)."""
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise InvalidParameterError(
            "layers is empty; name at least one layer (see distmi.store.list_layers(model) or "
            "`distmi layers MODEL`)."
        )
    available = module_names(model)
    known = set(available)
    for name in layers:
        if name not in known:
            raise unknown_name_error("layer", name, available, f"model {type(model).__name__}")
    dup = sorted({n for n in layers if layers.count(n) > 1})
    if dup:
        raise InvalidParameterError(f"layers {dup} are listed more than once; list each once.")
    return layers


def resolve_pooling(pooling: Any, layers: list[str]) -> dict[str, str]:
    """A pooling name for every layer from a string or a ``{layer: pooling}`` mapping."""
    if isinstance(pooling, str):
        pooling = dict.fromkeys(layers, pooling)
    elif isinstance(pooling, Mapping):
        extra = sorted(set(pooling) - set(layers))
        if extra:
            raise InvalidParameterError(
                f"pooling names layers {extra} that are not captured; captured layers: {layers}."
            )
        pooling = {name: pooling.get(name, "none") for name in layers}
    else:
        raise InvalidParameterError(
            f"pooling must be one of {list(POOLINGS)} or a {{layer: pooling}} dict, got {pooling!r}."
        )
    for name, value in pooling.items():
        if value not in POOLINGS:
            raise InvalidParameterError(
                f"pooling of layer {name!r} must be one of {list(POOLINGS)}, got {value!r}."
            )
    return pooling


def first_tensor(output: Any, layer: str):
    """The tensor a layer's forward hook records (see module docstring)."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping) or hasattr(output, "to_tuple"):
        value = output.get("last_hidden_state") if hasattr(output, "get") else None
        if isinstance(value, torch.Tensor):
            return value
        output = list(output.values()) if hasattr(output, "values") else list(output.to_tuple())
    if isinstance(output, list | tuple):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    raise InvalidInputError(
        f"layer {layer!r} returned {type(output).__name__}, which holds no tensor; capture a "
        "module whose forward returns a tensor (or a tuple/dict with one)."
    )


def pool(x: Any, pooling: str, mask: Any, layer: str) -> tuple[Any, str]:
    """Apply ``pooling`` to a layer output ``x`` (B, ...); return (pooled, pooling applied)."""
    import torch

    if x.dim() < 2:
        raise InvalidInputError(
            f"layer {layer!r} returned shape {tuple(x.shape)}; expected a batch of per-sample "
            "outputs (batch, ...)."
        )
    if x.dim() == 2:
        return x, "none"
    if pooling == "spatial_mean":
        return x.mean(dim=tuple(range(2, x.dim()))), pooling
    if x.dim() != 3:
        if pooling == "none":
            return x, pooling
        raise InvalidParameterError(
            f"pooling {pooling!r} of layer {layer!r} needs a (batch, tokens, hidden) output, got "
            f"shape {tuple(x.shape)}; use pooling='spatial_mean' for conv feature maps or "
            "'none' to keep every value."
        )
    b, t, _ = x.shape
    if mask is not None:
        if tuple(mask.shape) != (b, t):
            raise InvalidInputError(
                f"layer {layer!r} output has {t} tokens but the attention mask has shape "
                f"{tuple(mask.shape)}; token pooling needs a mask of shape (batch, tokens)."
            )
        m = mask.to(device=x.device, dtype=x.dtype)
    else:
        m = torch.ones((b, t), device=x.device, dtype=x.dtype)
    if pooling == "none":
        return x * m[:, :, None], pooling
    if pooling == "mean":
        return (x * m[:, :, None]).sum(1) / m.sum(1).clamp_min(1.0)[:, None], pooling
    present = m > 0
    if not bool(present.any(dim=1).all()):
        raise InvalidInputError(
            f"a sample has no unmasked token (all-zero attention mask) at layer {layer!r}; "
            "drop empty inputs before capture."
        )
    pos = torch.arange(t, device=x.device)
    if pooling == "first":
        idx = torch.where(present, pos, t).min(dim=1).values
    else:  # last
        idx = torch.where(present, pos, -1).max(dim=1).values
    return x[torch.arange(b, device=x.device), idx], pooling


def list_layers(model: Any, example: Any = None) -> list[LayerListing]:
    """Capturable layers of ``model``; with ``example`` (one batch) also their output shapes."""
    import torch

    mods = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}
    if example is not None:
        from distmi.store.batches import call_model, make_source

        source = make_source(example, batch_size=8)
        batch = next(iter(source.iter_from(0)))
        handles = []
        for name, mod in mods.items():
            if not name:
                continue

            def hook(_m, _a, out, name=name):
                try:
                    shapes.setdefault(name, tuple(first_tensor(out, name).shape[1:]))
                except InvalidInputError:
                    pass

            handles.append(mod.register_forward_hook(hook))
        try:
            with torch.inference_mode():
                call_model(model, batch.inputs, None)
        finally:
            for h in handles:
                h.remove()
    return [
        LayerListing(
            name=name,
            type=type(mod).__name__,
            n_parameters=sum(p.numel() for p in mod.parameters(recurse=True)),
            output_shape=shapes.get(name),
        )
        for name, mod in mods.items()
        if name
    ]
