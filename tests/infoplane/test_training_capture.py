"""Capture over training: epochs as one dataset, resume, determinism, checkpoints, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from plane_data import Interrupt, tiny_model, tiny_problem, train_tiny

from distmi.core.errors import InvalidParameterError, StoreError, UnknownLayerError
from distmi.store.training import (
    TrainingCapture,
    capture_checkpoints,
    checkpoint_value,
    open_training,
)


def test_epochs_form_one_dataset(trained) -> None:
    ds = open_training(trained)
    assert ds.dimension == "epoch" and ds.values == [0, 1, 2, 3, 4]
    assert ds.layers == ["0", "2", "3"] and ds.n_samples == 300
    x, labels = tiny_problem()
    np.testing.assert_array_equal(ds.read_layer("0", 3), x)  # the input does not change
    first, last = ds.read_layer("2", 0), ds.read_layer("2", 4)
    assert first.shape == (300, 8) and not np.allclose(first, last)  # training moved it
    np.testing.assert_array_equal(ds.read_targets(["label"])["label"].to_numpy(), labels)
    assert ds.dataset(2).manifest["model"]["epoch"] == 2
    assert ds.check(["0", "2", "3"]) == [0, 1, 2, 3, 4]
    index = json.loads((trained / "training.json").read_text())
    assert [e["value"] for e in index["entries"]] == [0, 1, 2, 3, 4]
    assert "loss" in index["entries"][1]["info"]


def test_resume_after_interruption_is_identical(tmp_path) -> None:
    """An interrupted run resumes from the committed epochs; the result equals a clean run
    byte for byte (same manifest hashes), and a second clean run is identical too."""
    clean = tmp_path / "clean"
    train_tiny(clean)
    cut = tmp_path / "cut"
    with pytest.raises(Interrupt):
        train_tiny(cut, stop_after=2)
    assert open_training(cut).values == [0, 1, 2]
    cap = TrainingCapture(cut, tiny_problem()[0], ["0", "2", "3"],
                          targets={"label": tiny_problem()[1]}, batch_size=128)
    assert cap.done(2) and not cap.done(3) and cap.captured == [0, 1, 2]
    train_tiny(cut)  # the rerun replays training and captures epochs 3-4 only
    again = tmp_path / "again"
    train_tiny(again)
    hashes = {}
    for root in (clean, cut, again):
        index = json.loads((root / "training.json").read_text())
        hashes[root.name] = [e["manifest_sha256"] for e in index["entries"]]
    assert hashes["clean"] == hashes["cut"] == hashes["again"]


def test_every_and_values_choose_epochs(tmp_path) -> None:
    x, labels = tiny_problem()
    cap = TrainingCapture(tmp_path / "a", x, ["2"], targets={"label": labels}, every=2)
    assert [e for e in range(7) if cap.wants(e)] == [0, 2, 4, 6]
    cap = TrainingCapture(tmp_path / "b", x, ["2"], targets={"label": labels}, values=[1, 5])
    model = tiny_model()
    assert cap(model, 0) is None and cap(model, 1) is not None
    assert open_training(tmp_path / "b").values == [1]


def test_checkpoints(tmp_path) -> None:
    import torch

    x, labels = tiny_problem()
    model = tiny_model()
    paths = []
    for epoch in (0, 3, 7):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1)
        path = tmp_path / f"epoch-{epoch:02d}.pt"
        torch.save(model.state_dict(), path)
        paths.append(path)
    ds = capture_checkpoints(tiny_model(), paths, tmp_path / "ckpt", x, ["2", "3"],
                             targets={"label": labels})
    assert ds.values == [0, 3, 7] and ds.layers == ["2", "3"]
    model.load_state_dict(torch.load(paths[1], weights_only=True))
    with torch.inference_mode():
        expect = model[2](model[1](torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(ds.read_layer("2", 3), expect, rtol=1e-6)
    assert checkpoint_value("run1/epoch-12.pt") == 12
    with pytest.raises(InvalidParameterError, match="cannot read an epoch number"):
        checkpoint_value("final.pt")
    with pytest.raises(InvalidParameterError, match="checkpoint values repeat"):
        capture_checkpoints(tiny_model(), paths[:2], tmp_path / "dup", x, ["2"], values=[1, 1])


def test_cli_capture_checkpoints(tmp_path) -> None:
    import torch
    from typer.testing import CliRunner

    from distmi.cli import _load_commands, app

    _load_commands()
    x, _ = tiny_problem()
    np.save(tmp_path / "x.npy", x)
    model = tiny_model()
    for epoch in (1, 2):
        torch.save(model.state_dict(), tmp_path / f"e{epoch}.pt")
    result = CliRunner().invoke(app, [
        "capture-checkpoints", "plane_data:tiny_model", str(tmp_path / "x.npy"),
        str(tmp_path / "e1.pt"), str(tmp_path / "e2.pt"), "--layer", "2",
        "-o", str(tmp_path / "out"),
    ])
    assert result.exit_code == 0, result.output
    assert "captured 2 epochs (1-2)" in result.output
    bad = CliRunner().invoke(app, [
        "capture-checkpoints", "plane_data:tiny_model", str(tmp_path / "x.npy"),
        str(tmp_path / "e1.pt"), "--layer", "2", "-o", str(tmp_path / "out2"), "--values", "a",
    ])
    assert bad.exit_code == 2 and "must be comma-separated integers" in bad.output


def test_bad_input(tmp_path, trained) -> None:
    x, labels = tiny_problem()
    with pytest.raises(StoreError, match=r"epoch 9 was not captured; captured epochs: 0-4"):
        open_training(trained).dataset(9)
    with pytest.raises(StoreError, match=r"other settings \(\['layers'\] differ\)"):
        TrainingCapture(trained, x, ["2"], targets={"label": labels}, batch_size=128)
    with pytest.raises(StoreError, match="with other weights"):
        cap = TrainingCapture(trained, x, ["0", "2", "3"], targets={"label": labels},
                              batch_size=128)
        cap.capture(tiny_model(seed=5), 1)
    # a layer missing at some epoch (datasets combined by hand)
    from distmi.store import write_dataset

    a = write_dataset(tmp_path / "e0", {"h": x, "g": x[:, :2]}, {"label": labels})
    b = write_dataset(tmp_path / "e1", {"h": x}, {"label": labels})
    ds = open_training({0: a.path, 1: b.path})
    with pytest.raises(UnknownLayerError, match=r"layer 'g' is missing at epoch 1 .* capture it"):
        ds.check(["h", "g"])
    with pytest.raises(StoreError, match=r"has no training\.json; it is a single activation"):
        open_training(a.path)
    with pytest.raises(InvalidParameterError, match="dimension must be one of"):
        TrainingCapture(tmp_path / "z", x, ["2"], dimension="batch")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match=r"is not empty and holds no training\.json"):
        TrainingCapture(tmp_path / "junk", x, ["2"])
