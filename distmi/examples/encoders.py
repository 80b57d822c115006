"""Transformer encoders with random weights, built offline from a config (no download).

``bert-base-random`` is the size of BERT-base (12 layers, hidden 768, 12 heads, intermediate
3072, vocabulary 30,522: about 110M parameters) and serves to measure capture at the scale of a
real encoder; ``bert-tiny-random`` (2 layers x 32) keeps tests fast. Both use the
all-MiniLM-L6-v2 tokenizer, which has BERT's uncased vocabulary. Weights are drawn by
``transformers`` from its initialiser under ``torch.manual_seed(seed)``
(:func:`distmi.store.capture_models.load_model`), so every process builds the same model.
"""

from __future__ import annotations

from typing import Any


def bert_base_config(max_position_embeddings: int = 512) -> Any:
    """transformers ``BertConfig`` of BERT-base (12 x 768)."""
    from transformers import BertConfig

    return BertConfig(max_position_embeddings=max_position_embeddings)


def bert_tiny_config() -> Any:
    """A 2-layer, 32-wide ``BertConfig`` with BERT's vocabulary."""
    from transformers import BertConfig

    return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=128)
