"""`distmi capture` with the capture options, `distmi layers` without weights, `distmi validate`
of a capture job."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("transformers")

from distmi.cli import _load_commands, app
from distmi.store import open_dataset

_load_commands()
runner = CliRunner()


def test_layers_of_a_huggingface_folder_are_listed_from_its_config(tiny_bert_folder):
    from distmi.store.capture_models import model_layers, resolve_model

    model = model_layers(resolve_model(str(tiny_bert_folder)))
    assert all(p.is_meta for p in model.parameters())  # no weights on any device
    result = runner.invoke(app, ["layers", str(tiny_bert_folder)])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines()[1:-1]]
    assert "encoder.layer.1.attention.self.query" in names
    assert result.output.splitlines()[-1] == (
        "layers 'all' = 2 layers: encoder.layer.0, encoder.layer.1")
    row = next(line for line in result.output.splitlines() if line.startswith("encoder.layer.0 "))
    assert row.split()[1] == "BertLayer"


def test_capture_with_globs_progress_and_a_model_folder(tmp_path, tiny_bert_folder):
    out = tmp_path / "ds"
    result = runner.invoke(app, ["capture", str(tiny_bert_folder), "concept_texts",
                                 "--param", "n=80", "--layers", "encoder.layer.*",
                                 "--pooling", "mean", "--batch-size", "16",
                                 "--rows-per-shard", "32", "--dtype", "bfloat16", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "captured 80 samples into" in result.output
    assert "rows/s" in result.output and "80/80" in result.output  # the progress bar
    ds = open_dataset(out)
    assert ds.layers == ["encoder.layer.0", "encoder.layer.1"]
    assert ds.layer_info("encoder.layer.0").dtype == "bfloat16"
    assert {"topic", "sentiment"} <= set(ds.target_kinds)


def test_capture_of_a_csv_with_a_text_column_per_token(tmp_path):
    import pandas as pd

    pd.DataFrame({"sentence": ["The rain stopped.", "A happy puppy.", "Rain again"],
                  "grade": [1, 2, 1]}).to_csv(tmp_path / "t.csv", index=False)
    result = runner.invoke(app, ["capture", "bert-tiny-random", str(tmp_path / "t.csv"),
                                 "--text-column", "sentence", "-l", "encoder.layer.1",
                                 "-o", str(tmp_path / "ds"), "--quiet"])
    assert result.exit_code == 0, result.output
    ds = open_dataset(tmp_path / "ds")
    t = ds.read_targets()
    assert ds.n_samples == len(t) == (t["input_row"] == 0).sum() + (t["input_row"] > 0).sum()
    assert set(t["grade"]) == {1, 2} and ds.layer_info("encoder.layer.1").pooling == "tokens"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["capture", "{tmp}/no-model", "concept_texts", "--layers", "all", "-o", "{tmp}/x"],
         "model folder '{tmp}/no-model' does not exist"),
        (["capture", "bert-tiny-random", "concept_texts", "--layers", "encoder.layers.*",
          "-o", "{tmp}/x", "--quiet"],
         "layer glob 'encoder.layers.*' matches no module of model BertModel. Did you mean "
         "'encoder.layer.*'?"),
        (["capture", "bert-tiny-random", "concept_texts", "-o", "{tmp}/x"],
         "name the layers to record"),
        (["capture", "bert-tiny-random", "no_set", "--layers", "all", "-o", "{tmp}/x"],
         "is neither a registered input set"),
        (["capture", "bert-tiny-random", "concept_texts", "--layers", "all", "--device", "tpu",
          "-o", "{tmp}/x"], "device must be auto, cpu, cuda or cuda:N"),
        (["layers", "{tmp}/no-model"], "model folder '{tmp}/no-model' does not exist"),
    ],
)
def test_capture_errors_exit_2_with_a_message(tmp_path, args, message):
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message.format(tmp=tmp_path) in result.output


def test_validate_checks_the_capture_layers_without_weights(tmp_path):
    import yaml

    job = {"dataset": {"path": str(tmp_path / "ds"), "capture": {
        "model": "bert-tiny-random", "inputs": {"set": "concept_texts"},
        "layers": "encoder.layer.*"}}, "targets": ["topic"], "output": str(tmp_path / "o")}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    result = runner.invoke(app, ["validate", str(tmp_path / "job.yaml")])
    assert result.exit_code == 0, result.output
    assert "it will be captured (bert-tiny-random, 2 layers: encoder.layer.0, encoder.layer.1)" \
        in result.output
    job["dataset"]["capture"]["layers"] = "decoder.*"
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    result = runner.invoke(app, ["validate", str(tmp_path / "job.yaml")])
    assert result.exit_code == 2 and "layer glob 'decoder.*' matches no module" in result.output
