"""`distmi validate | run | results | submit --dry-run` through the real CLI app."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from distmi.cli import _load_commands, app

ROOT = Path(__file__).parents[2]
runner = CliRunner()
_load_commands()


def _job(tmp_path, dataset, **over):
    doc = {
        "name": "cli-tiny", "dataset": {"path": str(dataset)}, "layers": ["a"],
        "targets": ["label"], "estimator": {"params": {"n_components": 1, "n_inits": 1}},
        "n_bootstrap": 2, "output": str(tmp_path / "res"),
        "scaling": {"executor": "ray", "batch_size": 4}, **over,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_validate_reports_plan_and_errors(tiny_dataset, tmp_path):
    job = _job(tmp_path, tiny_dataset)
    res = runner.invoke(app, ["validate", str(job)])
    assert res.exit_code == 0, res.output
    assert "plan: pairs=unit-target, 6 pairs in 2 batches" in res.output
    bad = _job(tmp_path, tiny_dataset, targets=["labl"])
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2 and "Did you mean 'label'" in res.output
    doc = yaml.safe_load(job.read_text())
    doc["scaling"]["executr"] = "ray"
    job.write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["validate", str(job)])
    assert res.exit_code == 2 and "unknown key 'scaling.executr'" in res.output


def test_run_then_results(tiny_dataset, tmp_path):
    job = _job(tmp_path, tiny_dataset)
    res = runner.invoke(app, ["run", str(job), "--executor", "local", "--top", "1"])
    assert res.exit_code == 0, res.output
    assert "committed 6 rows" in res.output and "label" in res.output
    res = runner.invoke(app, ["run", str(job), "--executor", "local", "--quiet"])
    assert "0 batches run, 2 resumed" in res.output
    out_csv = tmp_path / "top.csv"
    res = runner.invoke(app, ["results", str(tmp_path / "res"), "--target", "label",
                              "--min-excess", "0.1", "--export", str(out_csv)])
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(out_csv)
    assert rows[["layer", "unit"]].values.tolist() == [["a", 0]]
    res = runner.invoke(app, ["results", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no committed results" in res.output


def test_submit_dry_run_prints_the_submission(monkeypatch):
    monkeypatch.chdir(ROOT)
    unreachable = "http://127.0.0.1:9"  # planned as for a remote cluster
    res = runner.invoke(app, ["submit", "jobs/quickstart.yaml", "--address", unreachable,
                              "--dry-run", "--output", "s3://b/out", "--dataset", "s3://b/iris"])
    assert res.exit_code == 0, res.output
    sub = json.loads(res.stdout)
    assert sub["entrypoint"] == ("python -m distmi.cli run jobs/quickstart.yaml --address auto "
                                 "--output s3://b/out --dataset s3://b/iris")
    res = runner.invoke(app, ["submit", "jobs/quickstart.yaml", "--address", unreachable,
                              "--dry-run"])
    assert res.exit_code == 2 and "output 'out/iris-quickstart' is a relative path" in res.output
    res = runner.invoke(app, ["submit", "jobs/quickstart.yaml", "--address", "head:6379"])
    assert res.exit_code == 2 and "dashboard URL" in res.output


@pytest.mark.slow
@pytest.mark.ray
def test_quickstart_on_a_fresh_checkout(ray_local, tmp_path, monkeypatch):
    """What a newcomer runs: builds the iris dataset, runs on Ray, prints the summary."""
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", str(ROOT / "jobs" / "quickstart.yaml")])
    assert res.exit_code == 0, res.output
    assert "committed 64 rows to out/iris-quickstart" in res.output
    table = pd.read_parquet(tmp_path / "out/iris-quickstart/attribution.parquet")
    ok = table[table.status == "ok"]
    best = ok.sort_values("estimate").iloc[-1]
    # the species carries log(3) = 1.0986 nats: no unit can exceed it by more than its CI
    assert ok[ok.target == "species"].ci_low.max() <= 1.0986 + 0.05 and best.estimate > 0.5
