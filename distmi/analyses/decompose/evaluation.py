"""Quantitative checks of saliency maps: deletion/insertion curves and model randomisation.

**Deletion and insertion** (Petsiuk et al. 2018, "RISE"): rank the input's positions by a map,
then remove the top-ranked ones step by step (deletion: they take the ``fill`` value) or start
from an input with everything removed and put them back (insertion), and follow the model's
accuracy (against the labels) and the mean probability of the class the model predicts on the
clean input. A map that finds what the decision needs makes the deletion curve fall fast (low
area under the curve) and the insertion curve rise fast (high area). Areas are trapezoids over
the removed/inserted fraction in [0, 1].

- images: positions are pixels (all channels together); maps at a layer's resolution are
  bilinearly upsampled to the input first. Ties (e.g. Grad-CAM's zeros) are broken in a seeded
  random order.
- tokens: positions are the content tokens (special tokens and padding are never touched);
  removal sets the token's ``attention_mask`` to 0, so no other token attends to it and mean
  pooling skips it. Each sentence removes the same *fraction* of its content tokens per step.

Baselines: captum's ``LayerGradCam`` on the same layer and ``IntegratedGradients`` on the input
(zero baseline) for images; for tokens, ``LayerIntegratedGradients`` on the word embeddings
(``[PAD]`` baseline) and Grad-CAM computed per token (weights = gradients averaged over tokens;
captum's ``LayerGradCam`` averages gradients over the trailing dimensions, which for (B, T, D)
hidden states would be the hidden features rather than the tokens).

**Model randomisation** (Adebayo et al. 2018, "Sanity checks for saliency maps"): re-initialise
every weight of the model, fit the decomposition again with the same settings (on the random
model's own predictions) and compare the maps of the same inputs by Spearman rank correlation
per sample. A map that explains the trained model must change: correlations near 1 would mean
the map reflects the input or the method, not the model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from distmi.analyses.decompose.locals import call_model, find_module, logits_of
from distmi.core.errors import InvalidParameterError
from distmi.core.seeds import derive_rng, derive_seed

CURVE_KINDS = ("deletion", "insertion")


@dataclass
class Curve:
    """One deletion or insertion curve (see module docstring)."""

    kind: str
    method: str
    fraction: np.ndarray  # (K,) in [0, 1]
    accuracy: np.ndarray  # (K,)
    probability: np.ndarray  # (K,) mean probability of the clean prediction

    @property
    def auc_accuracy(self) -> float:
        return float(np.trapezoid(self.accuracy, self.fraction))

    @property
    def auc_probability(self) -> float:
        return float(np.trapezoid(self.probability, self.fraction))


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


def ranking(saliency: np.ndarray, seed: int = 0) -> np.ndarray:
    """Positions of each row sorted by decreasing saliency, ties in a seeded random order.

    Args:
        saliency: (n, L) (NaN ranks last).
    Returns:
        (n, L) int64 position indices.
    """
    s = np.nan_to_num(np.asarray(saliency, dtype=np.float64), nan=-np.inf)
    tiebreak = derive_rng(seed, "deletion-ties").random(s.shape)
    return np.lexsort((tiebreak, -s), axis=-1).astype(np.int64)


@torch.no_grad()
def _predict(model: nn.Module, inputs: Any, batch_size: int) -> torch.Tensor:
    """Softmax probabilities (n, classes) in batches."""
    if isinstance(inputs, Mapping):
        n = len(next(iter(inputs.values())))
        chunks = [call_model(model, {k: v[s:s + batch_size] for k, v in inputs.items()})
                  for s in range(0, n, batch_size)]
    else:
        chunks = [call_model(model, inputs[s:s + batch_size])
                  for s in range(0, len(inputs), batch_size)]
    return torch.cat([logits_of(c).softmax(1) for c in chunks])


def _curve_point(probs: torch.Tensor, labels: torch.Tensor, clean: torch.Tensor
                 ) -> tuple[float, float]:
    acc = float((probs.argmax(1) == labels).double().mean())
    prob = float(probs.gather(1, clean[:, None]).double().mean())
    return acc, prob


def image_curve(model: nn.Module, x: torch.Tensor, labels: Any, saliency: np.ndarray, *,
                kind: str, method: str = "", steps: int | None = None, fill: float = 0.0,
                batch_size: int = 512, seed: int = 0) -> Curve:
    """Deletion or insertion curve of images (n, C, H, W) ranked by ``saliency`` (n, H, W)."""
    if kind not in CURVE_KINDS:
        raise InvalidParameterError(f"kind must be one of {CURVE_KINDS}, got {kind!r}.")
    n, c, h, w = x.shape
    sal = np.asarray(saliency)
    if sal.shape != (n, h, w):
        raise InvalidParameterError(
            f"saliency must have the input's shape (n, H, W) = {(n, h, w)}, got {sal.shape}; "
            "upsample layer maps first (Explanation.upsample)."
        )
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    length = h * w
    counts = np.unique(np.linspace(0, length, (steps or length) + 1).round().astype(int))
    order = torch.from_numpy(ranking(sal.reshape(n, length), seed))  # (n, L)
    clean = _predict(model, x, batch_size).argmax(1)
    flat = x.reshape(n, c, length)
    rank_of = torch.empty_like(order)
    rank_of.scatter_(1, order, torch.arange(length).expand(n, length))  # rank of each pixel
    accs, probs = [], []
    for k in counts:
        top = (rank_of < int(k)).unsqueeze(1)  # (n, 1, L): the k best-ranked pixels
        keep = ~top if kind == "deletion" else top
        xk = torch.where(keep, flat, torch.full_like(flat, fill)).reshape(x.shape)
        a, p = _curve_point(_predict(model, xk, batch_size), labels, clean)
        accs.append(a)
        probs.append(p)
    return Curve(kind, method, counts / length, np.array(accs), np.array(probs))


def token_curve(model: nn.Module, inputs: Mapping[str, torch.Tensor], labels: Any,
                saliency: np.ndarray, protected: np.ndarray, *, kind: str, method: str = "",
                steps: int = 20, batch_size: int = 256, seed: int = 0) -> Curve:
    """Deletion or insertion curve over content tokens (see module docstring).

    Args:
        inputs: tokenizer output with ``attention_mask`` (n, T).
        saliency: (n, T) token scores.
        protected: (n, T) bool, tokens never removed (special tokens); padding is implied by
            the attention mask.
    """
    if kind not in CURVE_KINDS:
        raise InvalidParameterError(f"kind must be one of {CURVE_KINDS}, got {kind!r}.")
    attention = inputs["attention_mask"].bool()
    n, t = attention.shape
    content = attention & ~torch.as_tensor(protected, dtype=torch.bool)
    sal = np.where(content.numpy(), np.nan_to_num(np.asarray(saliency, dtype=np.float64),
                                                  nan=-1e300), -np.inf)
    order = torch.from_numpy(ranking(sal, seed))
    rank_of = torch.empty_like(order)
    rank_of.scatter_(1, order, torch.arange(t).expand(n, t))
    n_content = content.sum(1, keepdim=True)  # (n, 1)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    clean = _predict(model, inputs, batch_size).argmax(1)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    accs, probs = [], []
    for f in fractions:
        k = torch.round(n_content.double() * f).long()
        top = (rank_of < k) & content
        keep = attention & ~top if kind == "deletion" else (attention & ~content) | top
        masked = dict(inputs)
        masked["attention_mask"] = keep.to(inputs["attention_mask"].dtype)
        a, p = _curve_point(_predict(model, masked, batch_size), labels, clean)
        accs.append(a)
        probs.append(p)
    return Curve(kind, method, fractions, np.array(accs), np.array(probs))


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

    def hook(mod: nn.Module, args: Any, output: Any) -> None:
        h = output[0] if isinstance(output, tuple) else output
        h.retain_grad()
        store["h"] = h

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


def compare_methods(model: nn.Module, inputs: Any, labels: Any, maps: Mapping[str, np.ndarray],
                    *, local: str, protected: np.ndarray | None = None, seed: int = 0
                    ) -> tuple[Any, list[Curve]]:
    """Deletion and insertion curves of every map; returns (table, curves).

    The table (pandas) has one row per method: deletion/insertion AUCs of accuracy (lower /
    higher is better) and of the clean-prediction probability.
    """
    import pandas as pd

    rows, curves = [], []
    for method, sal in maps.items():
        pair = []
        for kind in CURVE_KINDS:
            if local == "conv":
                curve = image_curve(model, inputs, labels, sal, kind=kind, method=method,
                                    seed=seed)
            else:
                curve = token_curve(model, inputs, labels, sal,
                                    protected if protected is not None
                                    else np.zeros(sal.shape, bool),
                                    kind=kind, method=method, seed=seed)
            pair.append(curve)
        curves.extend(pair)
        rows.append({"method": method,
                     "deletion_auc": pair[0].auc_accuracy,
                     "insertion_auc": pair[1].auc_accuracy,
                     "deletion_auc_prob": pair[0].auc_probability,
                     "insertion_auc_prob": pair[1].auc_probability})
    return pd.DataFrame(rows), curves
