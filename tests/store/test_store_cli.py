"""`distmi layers`, `distmi capture`, `distmi inspect` through the CLI runner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from distmi.cli import _load_commands, app
from distmi.store import open_dataset

_load_commands()
runner = CliRunner()
MODEL = "distmi.examples.train_models:trained_iris_mlp"
DATA = "distmi.examples.train_models:iris_source"


def test_layers_lists_names_types_and_shapes():
    result = runner.invoke(app, ["layers", MODEL, "--data", DATA])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["layer", "type", "params"]
    assert lines[2].split() == ["fc1", "Linear", "80", "(16,)"]


def test_capture_then_inspect(tmp_path):
    out = tmp_path / "iris"
    result = runner.invoke(app, ["capture", MODEL, DATA, "-l", "act1", "-l", "out", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "captured 150 samples" in result.output
    ds = open_dataset(out)
    assert ds.layers == ["act1", "out"] and "species" in ds.target_kinds
    result = runner.invoke(app, ["inspect", str(out), "--verify"])
    assert result.exit_code == 0, result.output
    assert "act1" in result.output and "units       16" in result.output
    assert "species                  categorical, 3 classes (0: 50, 1: 50, 2: 50)" in result.output
    assert "verified: every file matches its sha256" in result.output
    result = runner.invoke(app, ["inspect", str(out), "--json"])
    assert '"n_samples": 150' in result.output


def test_capture_from_a_csv_with_target_columns(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 4)).astype(np.float32),
                         columns=["a", "b", "c", "d"])
    frame["label"] = rng.integers(0, 3, 40)
    frame.to_csv(tmp_path / "x.csv", index=False)
    out = tmp_path / "ds"
    result = runner.invoke(app, ["capture", MODEL, str(tmp_path / "x.csv"), "-l", "act2",
                                 "--target-column", "label", "-o", str(out), "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    assert open_dataset(out).target_kinds == {"label": "categorical"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["capture", MODEL, DATA, "-l", "act_1", "-o", "{tmp}/x"], "Did you mean 'act1'"),
        (["capture", "no_such_module:f", DATA, "-l", "act1", "-o", "{tmp}/x"],
         "cannot import module 'no_such_module'"),
        (["capture", MODEL, DATA, "-l", "act1", "--pooling", "avg", "-o", "{tmp}/x"],
         "pooling of layer 'act1' must be one of"),
        (["inspect", "{tmp}/missing"], "does not exist"),
    ],
)
def test_errors_exit_2_with_a_message(tmp_path, args, message):
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2
    assert message in result.output


def test_upgrade_dataset_command(tmp_path):
    from store_edits import make_format_1, small_dataset

    ds = small_dataset(tmp_path / "old")
    values = ds.read_layer("h")
    make_format_1(ds)
    result = runner.invoke(app, ["inspect", str(tmp_path / "old")])
    assert result.exit_code == 2 and "distmi upgrade-dataset" in result.output
    result = runner.invoke(app, ["upgrade-dataset", str(tmp_path / "old")])
    assert result.exit_code == 0, result.output
    assert "rewrote layers/L000_h/part-00000.parquet" in result.output
    assert "is in format 2" in result.output
    np.testing.assert_array_equal(open_dataset(tmp_path / "old").read_layer("h"), values)
