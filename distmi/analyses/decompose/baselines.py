"""Attribution baselines for the deletion/insertion comparison (captum, and Grad-CAM per token);
see :mod:`.evaluation`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from distmi.analyses.decompose.locals import call_model, find_module, logits_of
from distmi.core.seeds import derive_rng


def _captum() -> Any:
    try:
        import captum.attr
    except ImportError as exc:  # pragma: no cover - the explain extra installs it
        from distmi.core.errors import DistmiError

        raise DistmiError(
            "the attribution baselines need captum: pip install -c requirements/constraints.txt "
            "-e '.[explain]'."
        ) from exc
    return captum.attr


def gradcam_maps(model: nn.Module, layer: str, x: torch.Tensor, target: Any) -> np.ndarray:
    """captum ``LayerGradCam`` on ``layer``, upsampled bilinearly to the input: (n, H, W)."""
    attr = _captum()
    module = find_module(model, layer)
    cam = attr.LayerGradCam(model, module).attribute(
        x, target=torch.as_tensor(np.asarray(target), dtype=torch.long), relu_attributions=True)
    up = attr.LayerAttribution.interpolate(cam.detach(), tuple(x.shape[2:]), "bilinear")
    return up.sum(1).numpy().astype(np.float64)


def integrated_gradients_maps(model: nn.Module, x: torch.Tensor, target: Any,
                              n_steps: int = 50) -> np.ndarray:
    """captum ``IntegratedGradients`` from an all-zero input, summed over channels: (n, H, W)."""
    attr = _captum()
    ig = attr.IntegratedGradients(model).attribute(
        x, baselines=torch.zeros_like(x), target=torch.as_tensor(np.asarray(target),
                                                                  dtype=torch.long),
        n_steps=n_steps)
    return ig.detach().sum(1).numpy().astype(np.float64)


def token_gradcam_maps(model: nn.Module, layer: str, inputs: Mapping[str, torch.Tensor],
                       target: Any) -> np.ndarray:
    """Grad-CAM per token: ReLU(sum_d alpha_d h_{t,d}), alpha_d = mean over valid tokens of
    d score / d h_{t,d}, at the (B, T, D) output of ``layer``: (n, T), NaN at padding."""
    module = find_module(model, layer)
    store: dict[str, torch.Tensor] = {}

    def hook(mod: nn.Module, args: Any, output: Any) -> Any:
        h = output[0] if isinstance(output, tuple) else output
        if h.requires_grad:
            h.retain_grad()
            store["h"] = h
            return None
        # a frozen model (no parameter requires grad): make the layer output the leaf
        h = h.detach().requires_grad_(True)
        store["h"] = h
        return (h, *output[1:]) if isinstance(output, tuple) else h

    handle = module.register_forward_hook(hook)
    try:
        logits = logits_of(call_model(model, inputs))
        tgt = torch.as_tensor(np.asarray(target), dtype=torch.long)
        logits.gather(1, tgt[:, None]).sum().backward()
    finally:
        handle.remove()
    h, grad = store["h"].detach(), store["h"].grad
    valid = inputs["attention_mask"].bool().unsqueeze(-1)
    alpha = (grad * valid).sum(1, keepdim=True) / valid.sum(1, keepdim=True).clamp_min(1)
    cam = torch.relu((alpha * h).sum(-1)).double()
    return cam.masked_fill(~valid[..., 0], float("nan")).numpy()


def token_integrated_gradients_maps(model: nn.Module, embeddings: str,
                                    inputs: Mapping[str, torch.Tensor], target: Any,
                                    pad_id: int = 0, n_steps: int = 32,
                                    internal_batch_size: int = 256) -> np.ndarray:
    """captum ``LayerIntegratedGradients`` on the word-embedding module, baseline all ``pad_id``
    tokens, summed over the embedding: (n, T), NaN at padding."""
    attr = _captum()
    module = find_module(model, embeddings)
    ids = inputs["input_ids"]
    rest = {k: v for k, v in inputs.items() if k != "input_ids"}

    def forward(input_ids: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        return logits_of(call_model(model, {"input_ids": input_ids,
                                            **dict(zip(rest, values, strict=True))}))

    lig = attr.LayerIntegratedGradients(forward, module)
    out = lig.attribute(ids, baselines=torch.full_like(ids, pad_id),
                        target=torch.as_tensor(np.asarray(target), dtype=torch.long),
                        additional_forward_args=tuple(rest.values()), n_steps=n_steps,
                        internal_batch_size=internal_batch_size)
    values = out.detach().sum(-1).double()
    return values.masked_fill(~inputs["attention_mask"].bool(), float("nan")).numpy()


def saliency_maps(model: nn.Module, layer: str, inputs: Any, explanation: Any, *,
                  embeddings: str | None = None, pad_id: int = 0, seed: int = 0,
                  ig_steps: int = 50) -> dict[str, np.ndarray]:
    """The maps compared by deletion/insertion, at the positions the curves remove.

    Images: {"decision", "total"} (upsampled to the input), "LayerGradCam" (same layer),
    "IntegratedGradients" (input, zero baseline), "random". Tokens: {"decision", "total"},
    "Grad-CAM (tokens)" (same layer), "IntegratedGradients" (word embeddings; needs
    ``embeddings``), "random". Gradient methods explain the model's predicted class.
    """
    target = explanation.predictions
    rng = derive_rng(seed, "random-saliency")
    if explanation.local == "conv":
        size = tuple(inputs.shape[2:])
        return {
            "decision": explanation.upsample(size, "decision"),
            "total": explanation.upsample(size, "total"),
            "LayerGradCam": gradcam_maps(model, layer, inputs, target),
            "IntegratedGradients": integrated_gradients_maps(model, inputs, target, ig_steps),
            "random": rng.random((len(inputs), *size)),
        }
    maps = {
        "decision": explanation.decision,
        "total": explanation.total,
        "Grad-CAM (tokens)": token_gradcam_maps(model, layer, inputs, target),
    }
    if embeddings is not None:
        maps["IntegratedGradients"] = token_integrated_gradients_maps(
            model, embeddings, inputs, target, pad_id=pad_id, n_steps=min(ig_steps, 32))
    maps["random"] = rng.random(explanation.total.shape)
    return maps
