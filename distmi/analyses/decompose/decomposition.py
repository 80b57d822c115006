"""``fit`` and the fitted :class:`Decomposition` (explain, save).

The method is Gu's "Explaining Representation by Mutual Information": the information between a
representation Z of an input and the input's local parts X_i (positions of a feature map, or
tokens) is split into the **total** information I(Z; X_i), the **decision-related** information
I(Z; X'_i) that survives a learned mask X' = lambda * X which keeps what the model's decision
needs, and the **redundant** information, total minus decision-related. Two small modules are
inserted and trained while the model stays frozen: an Infomax critic T(Z, X_i) and the mask.
See ``docs/decompose.md``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distmi.analyses.decompose.config import (
    DecomposeConfig,
    parse_config,
    resolve_device,
    torch_threads,
)
from distmi.analyses.decompose.critic import InfomaxCritic
from distmi.analyses.decompose.data import as_data, inputs_to
from distmi.analyses.decompose.explain import Explanation, compute_maps
from distmi.analyses.decompose.locals import find_module, frozen, resolve_auto_representation
from distmi.analyses.decompose.session import ModelSession, _model_device
from distmi.analyses.decompose.training import Survey, build_modules, survey, train
from distmi.core.errors import InvalidInputError


class Decomposition:
    """A fitted decomposition of one layer of one model (returned by :func:`fit`).

    Attributes:
        config: the validated :class:`DecomposeConfig`.
        representation_: the resolved representation (``"name"`` = that module's output,
            ``"input:name"`` = its input).
        critic_, mask_: the trained inserted modules (CPU).
        survey_: shapes, standardisation statistics and the reference bank.
        history_: one dict per epoch (loss, i_zx, i_zx_masked in nats, ce, mean_lambda,
            masked_accuracy, seconds).
        fit_seconds_: wall-clock time of :func:`fit`.
        model_fingerprint_: SHA-256 of the model's state dict (checked by :func:`load`).
    """

    def __init__(self, model: nn.Module, config: DecomposeConfig, representation: str,
                 critic: InfomaxCritic, mask: nn.Module, survey_: Survey,
                 history: list[dict[str, float]], fit_seconds: float, fingerprint: str) -> None:
        self.model = model
        self.config = config
        self.representation_ = representation
        self.critic_ = critic
        self.mask_ = mask
        self.survey_ = survey_
        self.history_ = history
        self.fit_seconds_ = fit_seconds
        self.model_fingerprint_ = fingerprint

    @property
    def layer(self) -> str:
        return self.config.layer

    @property
    def local(self) -> str:
        return self.config.local

    def __repr__(self) -> str:
        last = self.history_[-1] if self.history_ else {}
        return (f"Decomposition(layer={self.layer!r}, local={self.local!r}, "
                f"representation={self.representation_!r}, bound={self.config.bound!r}, "
                f"c={self.config.c}, epochs={len(self.history_)}, "
                f"I(Z;X)={last.get('i_zx', float('nan')):.3f} nats)")

    def session(self, device: str | None = None) -> ModelSession:
        """The frozen model with this decomposition's taps (a context manager)."""
        dev = resolve_device(device or self.config.device)
        return ModelSession(self.model, self.layer, self.local, self.representation_, dev)

    def explain(self, inputs: Any, batch_size: int = 256, device: str | None = None
                ) -> Explanation:
        """Total, decision-related and redundant maps of every sample of ``inputs``.

        Args:
            inputs: the same forms as :func:`fit` takes (labels, when given, are kept on the
                explanation for per-class aggregates; they do not change the maps).
            batch_size: samples per forward pass.
            device: overrides the fitted ``device`` ("auto", "cpu", "cuda").

        Returns:
            :class:`Explanation` with maps (n, H, W) for ``local="conv"`` or (n, T) for tokens.
        """
        data = as_data(inputs)
        with torch_threads(self.config.threads), self.session(device) as sess:
            return compute_maps(sess, self.critic_, self.mask_, self.survey_.reference, data,
                                batch_size, self.survey_.layer_shape)

    def save(self, path: str | Path, include_model: bool = True) -> Path:
        """Write the decomposition to the folder ``path`` (see :func:`distmi.decompose.load`)."""
        from distmi.analyses.decompose.io import save

        return save(self, path, include_model=include_model)


def _probe_inputs(data: Any, model: nn.Module) -> Any:
    for batch in data.batches(2):
        return inputs_to(batch.inputs, _model_device(model) or torch.device("cpu"))
    raise InvalidInputError("the data hold no samples.")


def fit(model: nn.Module, loader_or_tensors: Any, *, layer: str, local: str,
        representation: str = "auto", bound: str = "jsd", c: float = 0.5,
        fill: str = "auto", epochs: int = 30,
        batch_size: int = 64, lr: float = 2e-3, hidden: int = 128, embed: int = 64,
        mask_hidden: int = 32, n_reference: int = 256, device: str = "auto",
        threads: int | None = 1, random_state: int = 0, verbose: bool = False
        ) -> Decomposition:
    """Fit the Infomax critic and the mask on a frozen classifier; return a :class:`Decomposition`.

    Args:
        model: a ``torch.nn.Module`` returning class scores (batch, n_classes) (a tensor, an
            object with ``.logits`` or a tuple whose first element is). Called as
            ``model(x)`` or ``model(**inputs)`` for a mapping (tokenizer output). Its weights are
            never changed; its device, training flag and ``requires_grad`` flags are restored.
        loader_or_tensors: ``(inputs, labels)``, inputs alone (labels = the model's
            predictions), or a DataLoader of such batches (:mod:`.data`).
        layer: name (``model.named_modules()``) of the module whose output holds the local
            inputs.
        local: ``"conv"`` (positions of a (B, C, H, W) feature map) or ``"tokens"`` (tokens of
            (B, T, D) hidden states; padding from ``attention_mask`` is excluded).
        representation: module whose output is Z (flattened; token outputs averaged over valid
            tokens), ``"input:<name>"`` for a module's input, or ``"auto"``: the input of the
            last ``nn.Linear`` the forward pass calls (a classifier's penultimate features).
        bound: ``"jsd"`` (Jensen-Shannon, default) or ``"dv"`` (Donsker-Varadhan with MINE's
            moving-average gradient).
        c: weight of the sparsity term c * mean(lambda) (0.5 in Gu's paper). Larger c keeps
            fewer local inputs in X'.
        fill: what a removed local input becomes in X' = lambda * X + (1 - lambda) * fill:
            ``"noise"``: E[X] + sd[X] * N(0, 1) per position and channel, as in the information
            bottleneck attribution (Schulz et al. 2020); ``"mean"``: E[X]; ``"zero"``: 0, i.e.
            Gu's X' = lambda * X exactly; ``"auto"`` (default): noise for feature maps, mean for
            tokens. Scaling alone keeps information (the critic learns to read an attenuated
            X_i) and an all-zero feature map is one the network never saw; on the planted
            tasks (docs/decompose.md) noise separated the patches best for images, while noise
            in token embeddings disturbed the classifier and mean or zero worked best.
        epochs, batch_size, lr: Adam training of the two modules. Negatives are the other
            samples of a batch, so batch_size >= 2 (32-128 works well).
        hidden, embed, mask_hidden: widths of the critic MLPs, the critic embedding and the mask.
        n_reference: samples whose local inputs form the reference bank of the pointwise maps.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        threads: torch intra-op CPU threads while fitting and explaining (restored after);
            1 by default (small networks are latency-bound), None leaves torch's setting.
        random_state: seed of initialisation, batch order and reference bank.
        verbose: print one line per epoch.
    """
    from distmi.analyses.decompose.io import model_fingerprint

    t0 = time.perf_counter()
    cfg = parse_config(layer=layer, local=local, representation=representation, bound=bound,
                       c=c, fill=fill, epochs=epochs, batch_size=batch_size, lr=lr, hidden=hidden,
                       embed=embed, mask_hidden=mask_hidden, n_reference=n_reference,
                       device=device, threads=threads, random_state=random_state)
    if not isinstance(model, nn.Module):
        raise InvalidInputError(
            f"model must be a torch.nn.Module, got {type(model).__name__}."
        )
    find_module(model, cfg.layer)
    dev = resolve_device(cfg.device)
    data = as_data(loader_or_tensors)
    rep = cfg.representation
    if rep == "auto":
        with frozen(model):
            rep = resolve_auto_representation(model, _probe_inputs(data, model))
    fingerprint = model_fingerprint(model)
    log = (lambda row: print(
        f"epoch {row['epoch']:3d}  loss {row['loss']:+.3f}  I(Z;X) {row['i_zx']:.3f}  "
        f"I(Z;X') {row['i_zx_masked']:.3f}  CE {row['ce']:.3f}  "
        f"mean lambda {row['mean_lambda']:.3f}  acc(X') {row['masked_accuracy']:.3f}"
    )) if verbose else None
    with torch_threads(cfg.threads), ModelSession(model, cfg.layer, cfg.local, rep, dev) as sess:
        srv = survey(sess, data, cfg)
        critic, mask = build_modules(srv, cfg)
        history = train(sess, data, cfg, critic, mask, log)
    return Decomposition(model, cfg, rep, critic, mask, srv, history,
                         time.perf_counter() - t0, fingerprint)
