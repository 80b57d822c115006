"""Reading local inputs X_i and the representation Z out of a frozen model, and feeding X' back.

A *tap* is a forward hook on the module whose output holds the local inputs:

- ``local="conv"``: the output is a feature map (B, C, H, W); the local inputs are the H*W
  positions, each a C-vector, laid out as (B, P, C) with P = H*W in row-major order.
- ``local="tokens"``: the output is hidden states (B, T, D) (or a tuple whose first element is,
  as older ``transformers`` layers return); the local inputs are the T tokens, each a D-vector,
  with a validity mask (B, T) taken from the ``attention_mask`` input (padding is not a local
  input).

The tap captures the output (``capture`` mode) or replaces it by a given tensor of the same
shape (``substitute`` mode): this is how X' = lambda * X enters the rest of the network, so any
architecture works without rewriting its forward pass.

The representation Z is the output of a named module, flattened to (B, d_z) (token outputs
(B, T, D) are averaged over valid tokens), or, with ``representation="auto"``, the input of the
last ``nn.Linear`` that runs in the forward pass (the penultimate features of a classifier).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from distmi.core.errors import InvalidInputError, InvalidParameterError, UnknownLayerError

LOCAL_MODES = ("conv", "tokens")

Inputs = torch.Tensor | Mapping[str, torch.Tensor]


def find_module(model: nn.Module, name: str, what: str = "layer") -> nn.Module:
    """The submodule called ``name`` in ``model.named_modules()``, or a clear error."""
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return modules[name]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listed = ", ".join(repr(n) for n in names[:12]) + (", ..." if len(names) > 12 else "")
    raise UnknownLayerError(
        f"the model has no {what} named {name!r}.{hint} Its modules are: {listed} "
        "(names as in model.named_modules())."
    )


def call_model(model: nn.Module, inputs: Inputs) -> Any:
    """``model(**inputs)`` for a mapping of tensors (tokenizer output), else ``model(inputs)``."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def logits_of(output: Any) -> torch.Tensor:
    """Class scores (B, n_classes) from a model output (tensor, ``.logits`` or a tuple)."""
    if hasattr(output, "logits"):
        output = output.logits
    elif isinstance(output, tuple | list):
        output = output[0]
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise InvalidInputError(
            f"the model must return class scores of shape (batch, n_classes) for the decision "
            f"term CE(f(X'), y); it returned {shape}. Wrap an encoder with a classification head "
            "(see distmi.analyses.decompose.bundled.SentenceClassifier)."
        )
    return output


def token_validity(inputs: Inputs, batch: int, length: int, device: torch.device) -> torch.Tensor:
    """Bool (B, T): the ``attention_mask`` of mapping inputs, else every token valid."""
    if isinstance(inputs, Mapping) and "attention_mask" in inputs:
        valid = inputs["attention_mask"].to(device) > 0
        if tuple(valid.shape) != (batch, length):
            raise InvalidInputError(
                f"attention_mask has shape {tuple(valid.shape)} but the layer outputs "
                f"{length} tokens for {batch} samples; pass the tokenizer output unchanged."
            )
        return valid
    return torch.ones(batch, length, dtype=torch.bool, device=device)


def _primary(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple | list) else output


def check_local_output(x: torch.Tensor, local: str, layer: str) -> None:
    """Raise when the layer's output does not fit the local mode."""
    if local not in LOCAL_MODES:
        raise InvalidParameterError(
            f"local must be one of {LOCAL_MODES}, got {local!r}; use 'conv' for a feature map "
            "(batch, channels, H, W) or 'tokens' for hidden states (batch, tokens, dim)."
        )
    want = 4 if local == "conv" else 3
    if not isinstance(x, torch.Tensor) or x.ndim != want:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        other = "tokens" if local == "conv" else "conv"
        raise InvalidParameterError(
            f"local={local!r} needs layer {layer!r} to output a "
            f"{'(batch, channels, H, W) feature map' if want == 4 else '(batch, tokens, dim) tensor'}"
            f", but it outputs {shape}; choose another layer or local={other!r}."
        )


def to_positions(x: torch.Tensor, local: str) -> torch.Tensor:
    """Local inputs as (B, P, C): conv (B, C, H, W) -> (B, H*W, C); tokens stay (B, T, D)."""
    if local == "conv":
        return x.flatten(2).transpose(1, 2)
    return x


def from_positions(x: torch.Tensor, like: torch.Tensor, local: str) -> torch.Tensor:
    """Inverse of :func:`to_positions` for a tensor shaped like ``like``."""
    if local == "conv":
        return x.transpose(1, 2).reshape(like.shape)
    return x


@dataclass
class _TapState:
    mode: str = "off"  # "off" | "capture" | "substitute"
    captured: torch.Tensor | None = None
    replacement: torch.Tensor | None = None


class LayerTap:
    """Forward hooks on the local layer and the representation module (see module docstring)."""

    def __init__(self, model: nn.Module, layer: str, representation: str) -> None:
        self.layer_module = find_module(model, layer)
        self.rep_name, self.rep_from_input = parse_representation(representation)
        self.rep_module = find_module(model, self.rep_name, "representation module")
        self.state = _TapState()
        self.z: torch.Tensor | None = None
        self.expected_shape: tuple[int, ...] | None = None  # per-sample shape of the layer
        self._handles = [
            self.layer_module.register_forward_hook(self._layer_hook),
            self.rep_module.register_forward_hook(self._rep_hook),
        ]

    def _layer_hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        if self.state.mode != "off" and self.expected_shape is not None:
            got = tuple(_primary(output).shape[1:])
            if got != self.expected_shape:
                raise InvalidInputError(
                    f"the layer outputs feature maps of shape {got} for these inputs, but the "
                    f"decomposition was fitted on {self.expected_shape}; explain inputs of the "
                    "fitted size."
                )
        if self.state.mode == "capture":
            self.state.captured = _primary(output)
            return None
        if self.state.mode == "substitute":
            new = self.state.replacement
            old = _primary(output)
            if new is None or new.shape != old.shape:
                raise InvalidInputError(
                    f"the replacement for the layer output has shape "
                    f"{None if new is None else tuple(new.shape)}, expected {tuple(old.shape)}."
                )
            if isinstance(output, tuple):
                return (new, *output[1:])
            if isinstance(output, list):
                return [new, *output[1:]]
            return new
        return None

    def _rep_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.state.mode == "off":
            return
        self.z = args[0] if self.rep_from_input else _primary(output)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def parse_representation(spec: str) -> tuple[str, bool]:
    """``"name"`` -> (name, False): the module's output; ``"input:name"`` -> (name, True)."""
    if spec.startswith("input:"):
        return spec[len("input:"):], True
    return spec, False


def flatten_representation(z: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Z as (B, d_z): token outputs (B, T, D) are averaged over valid tokens, others flattened."""
    z = _primary(z)
    if z.ndim == 3 and valid is not None and z.shape[1] == valid.shape[1]:
        w = valid.to(z.dtype).unsqueeze(-1)
        return (z * w).sum(1) / w.sum(1).clamp_min(1.0)
    return z.flatten(1)


def resolve_auto_representation(model: nn.Module, inputs: Inputs) -> str:
    """``"input:<name>"`` of the last ``nn.Linear`` called in a forward pass, or an error."""
    order: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name:
            handles.append(module.register_forward_hook(
                lambda m, a, o, name=name: order.append(name)))
    try:
        with torch.no_grad():
            call_model(model, inputs)
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise InvalidParameterError(
            "representation='auto' takes the input of the model's last nn.Linear (its "
            "penultimate features), but the model calls no nn.Linear; pass representation="
            "'<module name>' whose output is the representation Z."
        )
    return f"input:{order[-1]}"


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` on every parameter; both restored on exit.

    Gradients still flow *through* the model (to the inserted mask) but never *into* its
    weights, and no optimizer ever sees them, so the backbone is unchanged by fitting.
    """
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
