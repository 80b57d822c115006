"""A frozen model on the decomposition's device, with its taps: one forward pass per call.

:class:`ModelSession` is a context manager. On entry it moves the model to the device, puts it
in eval mode with every parameter's ``requires_grad`` off (:func:`locals.frozen`) and installs
the taps; on exit it removes them and restores the model's training flag, its ``requires_grad``
flags and its device. The model's weights are never written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from distmi.analyses.decompose.data import Inputs, inputs_to
from distmi.analyses.decompose.locals import (
    LayerTap,
    call_model,
    check_local_output,
    flatten_representation,
    frozen,
    logits_of,
    to_positions,
    token_validity,
)


@dataclass
class Forward:
    """One captured pass: the layer output ``x`` (B, C, H, W) or (B, T, D), its local inputs as
    (B, P, C), their validity (B, P), the flattened representation (B, d_z) and the logits."""

    x: torch.Tensor
    positions: torch.Tensor
    valid: torch.Tensor
    z: torch.Tensor
    logits: torch.Tensor


def _model_device(model: nn.Module) -> torch.device | None:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return None


class ModelSession:
    """See module docstring. ``representation`` is a resolved spec (``name`` or ``input:name``)."""

    def __init__(self, model: nn.Module, layer: str, local: str, representation: str,
                 device: torch.device) -> None:
        self.model = model
        self.layer = layer
        self.local = local
        self.representation = representation
        self.device = device
        self._tap: LayerTap | None = None
        self._frozen: Any = None
        self._home: torch.device | None = None

    def __enter__(self) -> ModelSession:
        self._home = _model_device(self.model)
        self.model.to(self.device)
        self._frozen = frozen(self.model)
        self._frozen.__enter__()
        self._tap = LayerTap(self.model, self.layer, self.representation)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._tap is not None:
            self._tap.remove()
            self._tap = None
        if self._frozen is not None:
            self._frozen.__exit__(None, None, None)
            self._frozen = None
        if self._home is not None:
            self.model.to(self._home)

    def expect_layer_shape(self, shape: tuple[int, ...] | None) -> None:
        """Refuse inputs whose layer output per sample is not ``shape`` (before the rest of the
        model runs on them)."""
        assert self._tap is not None, "use ModelSession as a context manager"
        self._tap.expected_shape = tuple(shape) if shape is not None else None

    def capture(self, inputs: Inputs) -> Forward:
        """A no-grad pass on the unmasked inputs."""
        tap = self._tap
        assert tap is not None, "use ModelSession as a context manager"
        inputs = inputs_to(inputs, self.device)
        tap.state.mode = "capture"
        try:
            with torch.no_grad():
                logits = logits_of(call_model(self.model, inputs))
        finally:
            tap.state.mode = "off"
        x = tap.state.captured
        tap.state.captured = None
        check_local_output(x, self.local, self.layer)
        positions = to_positions(x, self.local)
        if self.local == "tokens":
            valid = token_validity(inputs, x.shape[0], x.shape[1], x.device)
        else:
            valid = torch.ones(positions.shape[:2], dtype=torch.bool, device=x.device)
        z = flatten_representation(tap.z, valid if self.local == "tokens" else None)
        tap.z = None
        return Forward(x.detach(), positions.detach(), valid, z.detach().float(), logits)

    def substitute(self, inputs: Inputs, x_masked: torch.Tensor) -> torch.Tensor:
        """Logits of the network with the layer output replaced by ``x_masked`` (grad flows)."""
        tap = self._tap
        assert tap is not None, "use ModelSession as a context manager"
        inputs = inputs_to(inputs, self.device)
        tap.state.mode = "substitute"
        tap.state.replacement = x_masked
        try:
            return logits_of(call_model(self.model, inputs))
        finally:
            tap.state.mode = "off"
            tap.state.replacement = None
            tap.z = None
