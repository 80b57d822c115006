"""A job with a capture stage: one command from model to attribution table; reuse, recapture,
old datasets rebuilt; bad inputs with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from distmi.core.errors import InvalidInputError, InvalidParameterError, StoreError
from distmi.jobs.datasets import pending_build, resolve_dataset
from distmi.jobs.runner import run_job
from distmi.jobs.spec import load_spec, parse_spec

TINY = {"model": "bert-tiny-random", "inputs": {"set": "concept_texts", "params": {"n": 160}},
        "layers": "encoder.layer.*", "pooling": "mean", "batch_size": 32, "rows_per_shard": 64}


def _job(tmp_path, capture=None, **kw):
    doc = {"name": "cap", "dataset": {"path": str(tmp_path / "ds"), "capture": capture or TINY},
           "layers": "all", "units": {"range": [0, 4]}, "targets": ["topic", "sentiment"],
           "estimator": {"method": "gmm", "params": {"max_components": 2, "n_inits": 1}},
           "n_bootstrap": 0, "null_permutations": 0, "output": str(tmp_path / "out"),
           "scaling": {"executor": "local"}, **kw}
    return parse_spec(doc)


def test_run_captures_then_sweeps_then_reuses(tmp_path):
    logs = []
    res = run_job(_job(tmp_path), log=logs.append)
    assert any("is missing: capturing bert-tiny-random" in m for m in logs)
    assert set(res.table["layer"]) == {"encoder.layer.0", "encoder.layer.1"}
    assert len(res.table) == 2 * 4 * 2 and res.table["estimate"].notna().all()
    from distmi.store import open_dataset

    ds = open_dataset(tmp_path / "ds")
    assert ds.n_samples == 160 and ds.manifest["capture"]["spec"]["model"] == "bert-tiny-random"
    assert len(ds.layer_info("encoder.layer.0").parts) == 3
    assert res.manifest["dataset"]["manifest_sha256"] == ds.manifest_hash
    assert pending_build(_job(tmp_path).dataset) is None
    # another job on the same capture (other units) uses the dataset as it is
    logs.clear()
    again = run_job(_job(tmp_path, units={"range": [4, 6]}, output=str(tmp_path / "o2")),
                    log=logs.append)
    assert not any("captur" in m for m in logs) and len(again.table) == 2 * 2 * 2
    assert open_dataset(tmp_path / "ds").manifest_hash == ds.manifest_hash



def test_one_job_file_captures_screens_and_refines(tmp_path):
    """Model to a two-stage table from one job: capture, rank screen with p-values over every
    unit, GMM-MI on the strongest significant pairs, with the null tables beside the results."""
    from distmi.jobs.spec import load_spec as load

    doc = {"name": "cap-screen", "dataset": {"path": str(tmp_path / "ds"), "capture": TINY},
           "layers": "all", "units": "all", "targets": ["topic", "sentiment"],
           "screen": {"n_permutations": "auto", "fdr": 0.05, "max_refine_per_family": 2},
           "estimator": {"method": "gmm", "params": {"max_components": 2, "n_inits": 1}},
           "n_bootstrap": 0, "null_permutations": 0, "output": str(tmp_path / "out"),
           "scaling": {"executor": "local"}}
    path = tmp_path / "job.yaml"
    import yaml

    path.write_text(yaml.safe_dump(doc))
    res = run_job(load(path))
    t = res.table
    from distmi.store import open_dataset

    ds = open_dataset(tmp_path / "ds")
    width = ds.layer_shape("encoder.layer.0")[1]
    assert len(t) == 2 * width * 2  # every unit of both layers against both targets
    assert {"screen_estimate", "p_value", "q_value", "significant", "stage"} <= set(t.columns)
    refined = t[t.stage == "refined"]
    assert 0 < len(refined) <= 2 * 2 * 2 and refined.significant.all()
    assert refined.estimate.notna().all() and t[t.stage == "screen"].estimate.isna().all()
    assert (tmp_path / "out" / "null_tables.parquet").is_file()
    assert res.manifest["dataset"]["manifest_sha256"] == ds.manifest_hash

def test_a_changed_capture_section_is_captured_again(tmp_path):
    run_job(_job(tmp_path))
    changed = _job(tmp_path, capture={**TINY, "pooling": "max"})
    assert "was captured with another capture section" in pending_build(changed.dataset)
    logs = []
    res = run_job(changed, log=logs.append, overwrite=True)
    assert any("another capture section" in m and "capturing" in m for m in logs)
    from distmi.store import open_dataset

    assert open_dataset(tmp_path / "ds").layer_info("encoder.layer.0").pooling == "max"
    assert len(res.table) == 16


def test_old_format_datasets_are_rebuilt_or_recaptured(tmp_path):
    from distmi.store import open_dataset

    spec = parse_spec({"dataset": {"path": str(tmp_path / "iris"), "builtin": "iris"},
                       "targets": ["species"], "output": str(tmp_path / "r")})
    first = resolve_dataset(spec.dataset)
    manifest = tmp_path / "iris" / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["format_version"] = 1
    manifest.write_text(json.dumps(doc))
    with pytest.raises(StoreError, match="format 1"):
        open_dataset(tmp_path / "iris")
    assert "will be built (iris)" in pending_build(spec.dataset)
    logs = []
    ds = resolve_dataset(spec.dataset, log=logs.append)
    assert any("is of format 1" in m and "rebuilding the bundled 'iris'" in m for m in logs)
    assert ds.manifest_hash == first.manifest_hash  # the same dataset again
    job = _job(tmp_path)
    resolve_dataset(job.dataset)
    manifest = tmp_path / "ds" / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["format_version"] = 1
    manifest.write_text(json.dumps(doc))
    logs = []
    resolve_dataset(job.dataset, log=logs.append)
    assert any("is of format 1 (distmi 0.1.0)" in m and "capturing" in m for m in logs)
    open_dataset(tmp_path / "ds")


def test_a_local_model_folder_gives_the_dataset_of_the_same_weights(tmp_path, tiny_bert_folder):
    from distmi.store import open_dataset

    resolve_dataset(_job(tmp_path).dataset)
    other = _job(tmp_path / "f", capture={**TINY, "model": str(tiny_bert_folder)})
    resolve_dataset(other.dataset)
    a, b = open_dataset(tmp_path / "ds"), open_dataset(tmp_path / "f" / "ds")
    assert a.dataset_id == b.dataset_id  # same class, weights and batches: same capture
    for layer in a.layers:
        np.testing.assert_array_equal(a.read_layer(layer), b.read_layer(layer))


def test_token_level_sweep_from_one_job(tmp_path):
    res = run_job(_job(tmp_path, capture={**TINY, "pooling": "none", "layers": ["encoder.layer.1"]},
                       targets=["concept_word", "topic_word"]))
    from distmi.store import open_dataset

    ds = open_dataset(tmp_path / "ds")
    t = ds.read_targets()
    assert ds.n_samples == len(t) > 160 and {"input_row", "position", "token_id"} <= set(t)
    assert set(res.table["target"]) == {"concept_word", "topic_word"}
    assert len(res.table) == 4 * 2


@pytest.mark.parametrize(
    ("capture", "error", "match"),
    [
        ({**TINY, "layers": "encoder.layers.*"}, InvalidParameterError,
         r"layer glob 'encoder\.layers\.\*' matches no module of model BertModel\. Did you mean "
         r"'encoder\.layer\.\*'\?"),
        ({**TINY, "model": "iris-mlp"}, InvalidInputError,
         r"the inputs are texts but the model has no tokenizer"),
        ({**TINY, "inputs": {"set": "iris"}, "layers": "all"}, InvalidInputError,
         r"the model could not run on the first batch of inputs"),
        ({**TINY, "inputs": {"set": "concept_texts", "token_targets": {"w": ["rain"]}}},
         InvalidParameterError, r"token_targets label tokens, but these layers are pooled"),
    ],
)
def test_bad_inputs_fail_before_any_shard_with_a_clear_error(tmp_path, capture, error, match):
    with pytest.raises(error, match=match):
        resolve_dataset(_job(tmp_path, capture=capture).dataset)
    assert not (tmp_path / "ds" / "manifest.json").exists()


def test_inputs_files_of_the_wrong_type(tmp_path):
    frame = pd.DataFrame({"text": [1, 2, 3], "label": ["a", "b", "a"]})
    frame.to_csv(tmp_path / "numbers.csv", index=False)
    cap = {**TINY, "inputs": {"path": str(tmp_path / "numbers.csv"), "text_column": "text"}}
    with pytest.raises(InvalidInputError, match=r"column 'text' of .*numbers\.csv holds int64 "
                       r"values, not text"):
        resolve_dataset(_job(tmp_path, capture=cap).dataset)
    pd.DataFrame({"words": ["a b", "c"]}).to_parquet(tmp_path / "t.parquet")
    cap = {**TINY, "model": "iris-mlp", "layers": "all",
           "inputs": {"path": str(tmp_path / "t.parquet"), "columns": ["words"]}}
    with pytest.raises(InvalidInputError, match=r"input columns \['words'\] of .* are not numeric"):
        resolve_dataset(_job(tmp_path, capture=cap).dataset)
    cap = {**TINY, "inputs": {"path": str(tmp_path / "missing.jsonl")}}
    with pytest.raises(InvalidInputError, match=r"inputs file .*missing\.jsonl does not exist"):
        resolve_dataset(_job(tmp_path, capture=cap).dataset)


def test_text_files_with_label_columns(tmp_path):
    from distmi.examples.texts import concept_texts

    texts, concepts = concept_texts(70, seed=2)
    rows = [{"text": t, "topic": c} for t, c in zip(texts, concepts["topic"], strict=True)]
    path = tmp_path / "texts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cap = {**TINY, "inputs": {"path": str(path), "token_targets": {"rainy": ["rain", "storm"]}},
           "pooling": "none"}
    ds = resolve_dataset(_job(tmp_path, capture=cap).dataset)
    t = ds.read_targets()
    assert {"topic", "rainy", "input_row", "position"} <= set(t)
    assert (t.loc[t["rainy"], "topic"] == "weather").all() and t["rainy"].any()


def test_the_bundled_capture_jobs_are_valid():
    root = Path(__file__).resolve().parents[2] / "jobs"
    for name in ("minilm_capture_sweep.yaml", "minilm_token_sweep.yaml"):
        spec = load_spec(root / name)
        assert spec.dataset.capture is not None
        req = spec.dataset.capture.request()
        assert req.model.kind == "huggingface"
