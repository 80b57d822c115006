"""`distmi nif --builtin ... --out DIR` and NIF job files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distmi.analyses.nif.job import load_nif_job
from distmi.cli import _load_commands, app
from distmi.core.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runner():
    _load_commands()
    return CliRunner()


def test_cli_builtin_iris(runner, tmp_path):
    out = tmp_path / "iris"
    res = runner.invoke(app, ["nif", "--builtin", "iris", "--out", str(out), "--n-bootstrap",
                              "4", "--n-permutations", "499"])
    assert res.exit_code == 0, res.output
    assert "K-S test" in res.output and "zero-flow hidden neurons" in res.output
    for f in ("flow/summary.json", "flow/links.parquet", "pruning.json", "pruning_curve.csv",
              "report.json", "pruned_model.pt", "comparison/ks.csv", "comparison/deletion.csv",
              "figures/flow_graph.png", "figures/attribution.png",
              "figures/pruning_curve.png", "figures/deletion_curve.png"):
        assert (out / f).is_file(), f
    report = json.loads((out / "report.json").read_text())
    pr = report["pruning"]
    assert pr["accuracy_change"] == 0.0 and pr["max_logit_change_all_rows"] < 1e-5
    assert report["timings"]["total_cpu_s"] > 0
    # a second run resumes every committed link job
    res = runner.invoke(app, ["nif", "--builtin", "iris", "--out", str(out), "--n-bootstrap",
                              "4", "--n-permutations", "499", "--no-compare"])
    assert res.exit_code == 0, res.output
    again = json.loads((out / "report.json").read_text())
    assert all(j["batches_run"] == 0 for j in again["engine"]["jobs"].values())


def test_cli_errors(runner, tmp_path):
    res = runner.invoke(app, ["nif", "--builtin", "mnist", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown bundled data set 'mnist'" in res.output
    res = runner.invoke(app, ["nif", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "pass --builtin NAME --out DIR" in res.output
    res = runner.invoke(app, ["nif", "--builtin", "iris", "--out", str(tmp_path), "--beta",
                              "-2"])
    assert res.exit_code == 2 and "beta must be" in res.output


def test_bundled_job_files_are_valid():
    for name in ("nif_iris.yaml", "nif_digits.yaml"):
        spec = load_nif_job(ROOT / "jobs" / name)
        assert spec.scaling.executor == "ray" and spec.estimator.method == "ksg"


def test_bad_job_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {builtin: iris}\noutput: x\nbetta: 1\nn_bootstrap: -1\n")
    with pytest.raises(SpecError, match=r"(?s)(?=.*unknown key 'betta')(?=.*n_bootstrap: Input)"):
        load_nif_job(bad)
    with pytest.raises(SpecError, match="does not exist"):
        load_nif_job(tmp_path / "missing.yaml")


def test_job_runs_on_ray_and_matches_local(tmp_path, ray_local):
    import pandas as pd
    import yaml

    from distmi.analyses.nif.job import run_nif_job

    doc = yaml.safe_load((ROOT / "jobs" / "nif_iris.yaml").read_text())
    doc.update(n_bootstrap=3, n_permutations=199, compare=False, curve=False,
               output=str(tmp_path / "ray"))
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    spec = load_nif_job(path)
    rep_ray = run_nif_job(spec)
    rep_local = run_nif_job(spec, executor="local", output=str(tmp_path / "local"))
    assert rep_ray["engine"]["executor"] == "ray" and rep_local["engine"]["executor"] == "local"
    a = pd.read_parquet(tmp_path / "ray" / "flow" / "links.parquet")
    b = pd.read_parquet(tmp_path / "local" / "flow" / "links.parquet")
    pd.testing.assert_frame_equal(a, b)
