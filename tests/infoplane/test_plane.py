"""The information plane: planted answers, table and figure, resume, executors, CLI, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from distmi.analyses.infoplane import (
    information_plane,
    parse_plane_spec,
    plan_units,
    plane_figure,
    run_plane,
)
from distmi.analyses.infoplane.run import CSV, FIGURE
from distmi.core.errors import InvalidParameterError, SpecError, StoreError, UnknownLayerError
from distmi.engine.executors import InProcessExecutor

FAST = {"n_slices": 64, "n_permutations": 1}


def _check_planted(table: pd.DataFrame) -> None:
    sig = table[table.layer == "sig"].set_index("epoch")
    noise = table[table.layer == "noise"].set_index("epoch")
    # label information grows with s (epochs 0, 1, 2) and is clear of its null at the end
    assert sig.loc[0, "i_ly"] < sig.loc[1, "i_ly"] < sig.loc[2, "i_ly"]
    assert sig.loc[2, "i_ly"] > sig.loc[2, "i_ly_null"] + 4 * sig.loc[2, "i_ly_std"]
    # the noise layer carries nothing about the label: within 4 std of its null, every epoch
    assert np.all(np.abs(noise["i_ly"] - noise["i_ly_null"]) < 4 * noise["i_ly_std"] + 0.01)
    # both layers are functions of 2 of the 8 coordinates of X: I(X; L) above the null (sliced
    # MI of an 8-D X with a 2-D function of it is small, ~0.07 nats at these sizes)
    for frame in (sig, noise):
        assert np.all(frame["i_xl"] > frame["i_xl_null"] + 2.5 * frame["i_xl_std"])
    assert np.all(table["i_xl_ci_low"] < table["i_xl"]) and np.all(table["i_xl"] < table["i_xl_ci_high"])


@pytest.mark.parametrize("base", ["wkl", "ksg"])
def test_sliced_plane_finds_planted_information(planted, base: str) -> None:
    result = information_plane(planted, ["sig", "noise"], target="label", base=base, **FAST)
    table = result.table
    assert len(table) == 6 and list(table.layer) == ["sig"] * 3 + ["noise"] * 3
    assert table.epoch.tolist() == [0, 1, 2, 0, 1, 2]
    assert set(table.i_xl_error) == {"slices"}
    assert set(table.i_ly_error) == ({"slices"} if base == "wkl" else {"slice-groups"})
    assert np.all(np.isfinite(table[["i_xl", "i_xl_std", "i_ly", "i_ly_std"]].to_numpy()))
    _check_planted(table)
    again = information_plane(planted, ["sig", "noise"], target="label", base=base, **FAST)
    pd.testing.assert_frame_equal(table.drop(columns="seconds"), again.table.drop(columns="seconds"))


def test_pca_plane(planted) -> None:
    table = information_plane(planted, ["sig", "noise"], target="label", method="pca",
                              n_components=2, n_bootstrap=6).table
    assert set(table.base) == {"ksg"} and set(table.method) == {"pca"}
    _check_planted(table)


def test_figure(planted, tmp_path) -> None:
    table = information_plane(planted, ["sig", "noise"], target="label", **FAST).table
    fig = plane_figure(table, title="planted")
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("I(X; L)") and ax.get_ylabel().startswith("I(L; Y)")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sig", "noise"]
    assert len(ax.collections) >= 2 and fig.axes[1].get_ylabel() == "epoch"  # colour bar
    fig.savefig(tmp_path / "plane.png")
    assert (tmp_path / "plane.png").read_bytes()[:4] == b"\x89PNG"


class _Crash(InProcessExecutor):
    """Runs ``limit`` units, then fails like a killed worker."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def run(self, batches, task):
        for i, out in enumerate(super().run(batches, task)):
            if i == self.limit:
                raise RuntimeError("worker lost")
            yield out


def test_committed_job_resumes(planted, tmp_path) -> None:
    spec = parse_plane_spec({"source": str(planted), "layers": ["sig", "noise"],
                             "target": "label", "output": str(tmp_path / "out"), **FAST})
    with pytest.raises(RuntimeError, match="worker lost"):
        run_plane(spec, executor=_Crash(limit=2))
    assert not (tmp_path / "out" / "manifest.json").exists()  # nothing looks complete
    resumed = run_plane(spec)
    assert resumed.n_resumed == 2 and resumed.n_run == 4
    clean = run_plane(spec.model_copy(update={"output": str(tmp_path / "clean")}))
    cols = [c for c in resumed.table.columns if c != "seconds"]
    pd.testing.assert_frame_equal(resumed.table[cols], clean.table[cols])
    out = tmp_path / "out"
    assert (out / FIGURE).read_bytes()[:4] == b"\x89PNG"
    assert pd.read_csv(out / CSV).shape[0] == 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["analysis"] == "infoplane" and manifest["epochs"] == [0, 1, 2]
    assert run_plane(spec).n_run == 0  # committed: nothing recomputed


def test_units_and_seeds_are_stable(planted) -> None:
    spec = parse_plane_spec({"source": str(planted), "layers": ["sig", "noise"],
                             "target": "label"})
    units = plan_units(spec, [0, 1, 2])
    assert [u.batch_id for u in units[:2]] == ["infoplane|0|sig", "infoplane|1|sig"]
    assert plan_units(spec, [2])[0].seed == units[2].seed  # independent of the epoch list
    assert spec.hash() == spec.model_copy(update={"workers": 7, "executor": "ray"}).hash()


@pytest.mark.slow
def test_ray_equals_in_process(planted) -> None:
    pytest.importorskip("ray")
    local = information_plane(planted, ["sig", "noise"], target="label", **FAST).table
    ray_table = information_plane(planted, ["sig", "noise"], target="label", executor="ray",
                                  workers=2, **FAST).table
    cols = [c for c in local.columns if c != "seconds"]
    pd.testing.assert_frame_equal(local[cols], ray_table[cols])


def test_cli(planted, tmp_path) -> None:
    from typer.testing import CliRunner

    from distmi.cli import _load_commands, app

    _load_commands()
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["infoplane", str(planted), "--layer", "sig", "--layer",
                                      "noise", "--target", "label", "-o", str(out),
                                      "--n-slices", "32", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "information plane" in result.output and (out / FIGURE).is_file()
    bad = CliRunner().invoke(app, ["infoplane", str(planted), "--layer", "sig"])
    assert bad.exit_code == 2 and "--target" in bad.output
    bad = CliRunner().invoke(app, ["infoplane", str(planted), "--layer", "sig", "--target",
                                   "label", "--epochs", "0,7"])
    assert bad.exit_code == 2 and "epoch 7 was not captured" in bad.output


def test_bad_input(planted, tmp_path) -> None:
    common = {"source": str(planted), "target": "label", **FAST}
    with pytest.raises(StoreError, match=r"epoch 5 was not captured; captured epochs: 0-2"):
        run_plane(parse_plane_spec({**common, "layers": ["sig"], "epochs": [0, 5]}))
    with pytest.raises(UnknownLayerError, match=r"layer 'fc9' is missing at epoch 0-2"):
        run_plane(parse_plane_spec({**common, "layers": ["fc9"]}))
    with pytest.raises(InvalidParameterError, match="target 'score' is continuous"):
        run_plane(parse_plane_spec({**common, "layers": ["sig"], "target": "score"}))
    with pytest.raises(InvalidParameterError, match="x_layer 'input' is also in layers"):
        run_plane(parse_plane_spec({**common, "layers": ["input", "sig"]}))
    with pytest.raises(SpecError, match="unknown key 'slices'"):
        parse_plane_spec({**common, "layers": ["sig"], "slices": 3})
    with pytest.raises(SpecError, match="layers repeat"):
        parse_plane_spec({**common, "layers": ["sig", "sig"]})
    # a layer missing at one epoch: an index over datasets of different layers
    from distmi.store import write_dataset

    root = tmp_path / "mixed"
    root.mkdir()
    x = np.random.default_rng(0).normal(size=(200, 4))
    labels = np.arange(200) % 2
    entries = []
    for epoch, layers in enumerate(({"input": x, "h": x[:, :2]}, {"input": x})):
        ds = write_dataset(root / f"epoch-{epoch:06d}", layers, {"label": labels})
        entries.append({"value": epoch, "dir": f"epoch-{epoch:06d}",
                        "manifest_sha256": ds.manifest_hash, "weights_sha256": "", "info": {}})
    (root / "training.json").write_text(json.dumps({
        "format": "distmi-training-activations", "format_version": 1,
        "settings": {"dimension": "epoch"}, "entries": entries}))
    with pytest.raises(UnknownLayerError, match=r"layer 'h' is missing at epoch 1 "):
        run_plane(parse_plane_spec({"source": str(root), "layers": ["h"], "target": "label"}))


@pytest.mark.slow
def test_bundled_digits_example(tmp_path) -> None:
    from typer.testing import CliRunner

    from distmi.cli import _load_commands, app

    _load_commands()
    result = CliRunner().invoke(app, ["infoplane", str(tmp_path / "train"), "--example",
                                      "digits", "--train-epochs", "2", "-o",
                                      str(tmp_path / "plane"), "--n-slices", "100"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "plane" / CSV)
    assert len(table) == 3 * 4 and set(table.layer) == {"act1", "act2", "act3", "out"}
    last = table[table.epoch == 2].set_index("layer")
    first = table[table.epoch == 0].set_index("layer")
    assert last.loc["out", "i_ly"] > first.loc["out", "i_ly"]  # training adds label information


def test_bundled_plane_job_file_is_valid() -> None:
    from pathlib import Path

    from distmi.analyses.infoplane import load_plane_spec

    path = Path(__file__).parents[2] / "jobs" / "infoplane" / "digits.yaml"
    spec = load_plane_spec(path)
    assert spec.layers == ["act1", "act2", "act3", "out"] and spec.base == "wkl"


@pytest.mark.parametrize("sizes", [(200, 200, 200), (5, 60, 535)])
def test_sliced_plane_equals_slice_by_slice_estimates(sizes) -> None:
    """Every number of a WKL plane unit is the mean over its slices of the estimator applied to
    each projected slice on its own (the class entropies share the layer's sort in the plane;
    here every class is gathered and sorted anew); the null uses the shuffled labels."""
    from distmi.analyses.infoplane.compute import SlicedPlane
    from distmi.core.seeds import derive_rng
    from distmi.estimators.sliced import parse_sliced_config
    from distmi.estimators.sliced_compute import Projector
    from distmi.estimators.wkl_compute import mi_rows, mi_rows_labels

    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), sizes)
    rng.shuffle(labels)
    n = labels.size
    x = rng.normal(size=(n, 6)) + labels[:, None]
    acts = np.maximum(x @ rng.normal(size=(6, 9)), 0.0) + 0.1 * rng.normal(size=(n, 9))
    cfg = parse_sliced_config(n_slices=24, base="wkl", k=12)
    plane = SlicedPlane(x, labels, cfg, seed=7, n_bootstrap=1, n_permutations=1)
    got = plane.estimate("L", acts, unit_seed=11)
    xr = plane.proj_x.rows(plane.frames_x)[:, 0]
    lr = Projector(acts, 7, "y", cfg.jitter).rows(plane.frames("L", 9))[:, 0]
    wkl = cfg.wkl_config()
    perm = derive_rng(11, "null", 0).permutation(n)
    np.testing.assert_allclose(got["i_xl"].value, mi_rows(xr, lr, wkl).mean(), atol=1e-12)
    np.testing.assert_allclose(got["i_ly"].value, mi_rows_labels(lr, labels, wkl).mean(),
                               atol=1e-12)
    np.testing.assert_allclose(got["i_ly"].null, mi_rows_labels(lr, labels[perm], wkl).mean(),
                               atol=1e-12)
