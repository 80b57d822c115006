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
- ``"max"``:   h_bj = max over t with m_bt = 1 of x_btj                  -> (B, H)
- ``"tokens"``: one row per real token: x_bt for every (b, t) with m_bt = 1, in row-major
  (b, t) order; a batch of B inputs gives sum_bt m_bt rows            -> (sum m, H)
- ``"none"``:  every token kept, padded positions set to 0; units are (T, H) flattened
  to T*H (unit t*H + h) and the mask is stored with the dataset      -> (B, T, H)
- ``"spatial_mean"``: conv feature maps (B, C, *spatial) averaged over the spatial axes
  (global average pooling)                                           -> (B, C)

Outputs of shape (B, H) have nothing to pool and are stored as they are (pooling ``"none"``).
``"cls"`` is accepted as another name of ``"first"``.

Layer *patterns* (:func:`expand_layers`) select modules by name, by glob or all at once:
``*`` matches within one dotted component (``encoder.layer.*`` is ``encoder.layer.0``,
``encoder.layer.1``, ... but not ``encoder.layer.0.attention``), ``**`` matches across
components, ``?`` and ``[...]`` as in :mod:`fnmatch`; ``"all"`` is the blocks of the model's
largest ``ModuleList`` (a transformer's layers, what ``output_hidden_states`` reports) or, for
a model without one, its leaf modules.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from distmi.core.errors import InvalidInputError, InvalidParameterError
from distmi.store.reader import unknown_name_error

POOLINGS = ("none", "mean", "first", "last", "max", "tokens", "spatial_mean")
#: Other names accepted for a pooling.
POOLING_ALIASES = {"cls": "first"}
#: Poolings that reduce the token axis of a (batch, tokens, hidden) output.
TOKEN_POOLINGS = ("mean", "first", "last", "max")


@dataclass(frozen=True)
class LayerListing:
    """One capturable layer of a model."""

    name: str
    type: str
    n_parameters: int
    output_shape: tuple[int, ...] | None = None  # per-sample shape, when an example was run
    in_all: bool = False  # selected by layers "all" (see expand_layers)


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
        value = POOLING_ALIASES.get(value, value) if isinstance(value, str) else value
        if value not in POOLINGS:
            raise InvalidParameterError(
                f"pooling of layer {name!r} must be one of {list(POOLINGS)}, got {value!r}."
            )
        pooling[name] = value
    per_token = sorted(n for n, v in pooling.items() if v == "tokens")
    if per_token and len(per_token) != len(pooling):
        raise InvalidParameterError(
            f"layers {per_token} are captured one row per token (pooling 'tokens') and the "
            f"others one row per input; a dataset has one kind of rows: capture them into two "
            "datasets, or give every layer pooling 'tokens'."
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
        if pooling == "tokens":
            raise InvalidParameterError(
                f"pooling 'tokens' of layer {layer!r} needs a (batch, tokens, hidden) output, "
                f"got shape {tuple(x.shape)}; capture a layer that returns hidden states per token."
            )
        return x, "none"
    if pooling == "spatial_mean":
        return x.mean(dim=tuple(range(2, x.dim()))), pooling
    if x.dim() != 3:
        if pooling == "none":
            return x, pooling
        if pooling == "tokens":
            raise InvalidParameterError(
                f"pooling 'tokens' of layer {layer!r} needs a (batch, tokens, hidden) output, "
                f"got shape {tuple(x.shape)}."
            )
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
    if pooling == "tokens":
        return x[present], pooling
    if not bool(present.any(dim=1).all()):
        raise InvalidInputError(
            f"a sample has no unmasked token (all-zero attention mask) at layer {layer!r}; "
            "drop empty inputs before capture."
        )
    if pooling == "max":
        return x.masked_fill(~present[:, :, None], float("-inf")).amax(dim=1), pooling
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
    chosen = set(default_layers(model))
    return [
        LayerListing(
            name=name,
            type=type(mod).__name__,
            n_parameters=sum(p.numel() for p in mod.parameters(recurse=True)),
            output_shape=shapes.get(name),
            in_all=name in chosen,
        )
        for name, mod in mods.items()
        if name
    ]


def default_layers(model: Any) -> list[str]:
    """What layers ``"all"`` selects (see module docstring), in ``named_modules()`` order."""
    from torch import nn

    lists = [(name, mod) for name, mod in model.named_modules()
             if isinstance(mod, nn.ModuleList) and len(mod) > 0]
    if lists:
        name, mod = max(lists, key=lambda item: len(item[1]))  # first of the largest
        prefix = f"{name}." if name else ""
        return [f"{prefix}{child}" for child, _ in mod.named_children()]
    return [name for name, mod in model.named_modules()
            if name and next(mod.children(), None) is None]


def glob_regex(pattern: str) -> re.Pattern[str]:
    """``*`` within a dotted component, ``**`` across components, ``?`` one character."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append(r"[^.]*")
        elif c == "?":
            out.append(r"[^.]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def is_pattern(text: str) -> bool:
    """Whether a layer entry is a glob (holds ``*``, ``?`` or ``[``)."""
    return any(ch in text for ch in "*?[")


def _pattern_suggestions(pattern: str, available: Sequence[str]) -> list[str]:
    """Globs and names close to ``pattern``: each name, and each name with numbers as ``*``."""
    generic = {re.sub(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.|$)", "*", n) for n in available}
    candidates = sorted(generic | set(available))
    return difflib.get_close_matches(pattern, candidates, n=3, cutoff=0.5)


def expand_layers(model: Any, layers: Any) -> list[str]:
    """Layer names from names, globs and ``"all"`` (see module docstring), in request order.

    Each entry is a ``named_modules()`` path, a glob, or ``"all"``; globs expand in the model's
    module order; a module selected by two entries is kept once (an entry listed twice is
    refused).

    Raises:
        InvalidParameterError: an empty request, or a glob that matches no module (with the
            closest globs or names: "Did you mean 'encoder.layer.*'?").
        UnknownLayerError: a name that is not a module (with the closest names).
    """
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise InvalidParameterError(
            "layers is empty; name at least one layer, a glob such as 'encoder.layer.*', or "
            "'all' (see `distmi layers MODEL`)."
        )
    dup = sorted({n for n in layers if layers.count(n) > 1})
    if dup:
        raise InvalidParameterError(f"layers {dup} are listed more than once; list each once.")
    available = module_names(model)
    out: list[str] = []
    for entry in layers:
        if entry == "all":
            found = default_layers(model)
        elif is_pattern(entry):
            rx = glob_regex(entry)
            found = [n for n in available if rx.match(n)]
            if not found:
                close = _pattern_suggestions(entry, available)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise InvalidParameterError(
                    f"layer glob {entry!r} matches no module of model {type(model).__name__}."
                    f"{hint} '*' matches within one dotted name component, '**' across "
                    "components; list the modules with `distmi layers MODEL`."
                )
        else:
            if entry not in set(available):
                raise unknown_name_error("layer", entry, available,
                                         f"model {type(model).__name__}")
            found = [entry]
        out.extend(n for n in found if n not in out)
    return out
