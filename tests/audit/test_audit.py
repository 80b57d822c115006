"""`distmi audit`: verdicts, exit codes, thresholds, missing rows and bad input, through the CLI.

The activations are synthetic with planted information (audit_data.py): a re-captured sample
of the same "model" must give exit 0; a sample of a model whose ``late`` layer lost and gained
information must give exit 1 with ``late`` ranked first and ``early`` untouched.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from audit_data import KINDS, activations, capture, job_doc, write_job
from typer.testing import CliRunner

from distmi.cli import _load_commands, app
from distmi.core.errors import InvalidInputError, SpecError
from distmi.jobs import load_spec, parse_spec, run_job, spec_hash
from distmi.jobs.audit import expand_placeholders, load_audit, run_audit
from distmi.store import write_dataset

runner = CliRunner()
_load_commands()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Datasets and the committed baseline results shared by the tests."""
    root = tmp_path_factory.mktemp("audit")
    capture(root / "base_data", seed=0)
    capture(root / "same_data", seed=1)
    capture(root / "drift_data", seed=2, drift_layer="late")
    job = write_job(root / "job.yaml", root / "base_data", root / "baseline")
    run_job(load_spec(job))
    return root


def _audit(world, tmp_path, *args, dataset="same_data", **over):
    job = write_job(tmp_path / "job.yaml", world / "base_data", world / "baseline", **over)
    return runner.invoke(app, ["audit", str(job), "--baseline", str(world / "baseline"),
                               "--dataset", str(world / dataset), *args])


def test_unchanged_model_on_a_recaptured_sample_exits_0(world, tmp_path):
    out = tmp_path / "audits" / "{date}"
    res = _audit(world, tmp_path, "--output", str(out))
    assert res.exit_code == 0, res.output
    folder = tmp_path / "audits" / dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    doc = load_audit(folder)
    assert doc["verdict"] == "no drift" and doc["exit_code"] == 0 and doc["reasons"] == []
    assert doc["baseline"]["path"] == str(world / "baseline")
    assert doc["baseline"]["dataset_hash"] != doc["new"]["dataset_hash"]
    assert doc["thresholds"] == {"baseline": None, "min_effect": 0.1, "fdr": 0.05,
                                 "fdr_method": "bh", "max_drift_fraction": 0.1,
                                 "missing_rows": "drift"}
    assert {r["layer"] for r in doc["layers"]} == {"early", "late"}
    assert (folder / "audit_rows.parquet").is_file()
    assert (folder / "report" / "index.html").is_file()
    assert "no drift: audit written to" in res.output


def test_drift_exits_1_and_ranks_the_changed_layer_first(world, tmp_path):
    res = _audit(world, tmp_path, "--output", str(tmp_path / "a"), dataset="drift_data")
    assert res.exit_code == 1, res.output
    doc = load_audit(tmp_path / "a")
    assert doc["verdict"] == "drift" and doc["drift"] is True
    assert doc["drifted_layers"] == ["late"]
    ranked = [r["layer"] for r in doc["layers"]]
    assert ranked == ["late", "early"]
    early = doc["layers"][1]
    assert early["n_units_changed"] == 0 and not early["drifted"]
    assert doc["reasons"][0].startswith("layer late: ")
    changed = {(s["unit"], s["target"]) for s in doc["largest_shifts"] if s["changed"]}
    assert changed == {(0, "label"), (1, "score"), (3, "label"), (4, "score")}
    assert "DRIFT" in res.output


def test_a_repeated_audit_reuses_the_committed_run(world, tmp_path):
    spec = parse_spec(job_doc(world / "same_data", tmp_path / "o"))
    first = run_audit(spec, world / "baseline")
    again = run_audit(spec, world / "baseline")
    assert first.job.batches_run > 0 and again.job.batches_run == 0
    assert again.drift is False and again.path.is_file()


@pytest.mark.parametrize("audit, code", [
    ({}, 1),                                        # the defaults of the job file
    ({"max_drift_fraction": 0.9}, 0),               # 4 of 6 units is below 90%
    ({"max_drift_fraction": 0.6}, 1),               # ... and above 60%
    ({"min_effect": 1.0}, 0),                       # no shift reaches 1 nat
    ({"fdr": 1e-30}, 1),                            # z ~ 8-16: still significant
    ({"fdr": 1e-60}, 0),                            # nothing is that significant
])
def test_thresholds_decide_the_verdict(world, audit, code):
    # one output folder for all: the audit section is not in the spec hash, so the committed
    # run is reused and only the verdict changes
    doc = job_doc(world / "drift_data", world / "thresholds")
    doc["audit"] = {**doc["audit"], **audit}
    result = run_audit(parse_spec(doc), world / "baseline")
    assert result.exit_code == code, result.reasons
    assert load_audit(world / "thresholds")["exit_code"] == code


def test_rows_on_one_side_only(world, tmp_path):
    layers, targets = activations(5)
    layers["late"] = layers["late"][:, :5]  # the layer lost a unit in the new model
    write_dataset(tmp_path / "resized", layers, targets, KINDS, model_id="fake-model",
                  block_units=4)
    job = write_job(tmp_path / "job.yaml", world / "base_data", world / "baseline")
    res = runner.invoke(app, ["audit", str(job), "--baseline", str(world / "baseline"),
                              "--dataset", str(tmp_path / "resized"),
                              "--output", str(tmp_path / "a"), "--no-report"])
    assert res.exit_code == 1, res.output
    doc = load_audit(tmp_path / "a")
    assert doc["rows"]["base_only"] == 2 and doc["rows"]["new_only"] == 0
    assert any("2 row(s) on one side only (2 only in the baseline" in r for r in doc["reasons"])
    assert {(r["layer"], r["unit"], r["side"]) for r in doc["one_sided"]} == {
        ("late", 5, "base_only")}
    assert not (tmp_path / "a" / "report").exists()
    spec = parse_spec(job_doc(tmp_path / "resized", tmp_path / "a",
                              audit={"missing_rows": "ignore"}))
    assert run_audit(spec, world / "baseline").exit_code == 0


def test_the_audit_section_does_not_change_the_spec_hash(world):
    with_audit = parse_spec(job_doc(world / "base_data", world / "x"))
    doc = job_doc(world / "base_data", world / "x")
    del doc["audit"]
    without = parse_spec(doc)
    assert without.audit is None
    assert spec_hash(with_audit) == spec_hash(without)
    tuned = parse_spec(job_doc(world / "base_data", world / "x", audit={"fdr": 0.01}))
    assert spec_hash(tuned) == spec_hash(without)
    # and the hash of a job without the section is what it always was
    legacy = {k: v for k, v in without.model_dump(mode="json").items()
              if k not in ("name", "scaling", "retries", "output", "audit", "screen")}
    legacy["dataset"].pop("verify")
    legacy["dataset"].pop("capture")
    import hashlib

    text = json.dumps(legacy, sort_keys=True, separators=(",", ":"))
    assert spec_hash(without) == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("audit, message", [
    ({"fdr": 1.5}, r"audit\.fdr: Input should be less than 1"),
    ({"min_efect": 0.1}, r"unknown key 'audit\.min_efect'"),
    ({"missing_rows": "warn"}, r"audit\.missing_rows: got 'warn', allowed values: 'drift' or 'ignore'"),
    ({"max_drift_fraction": -0.1}, r"audit\.max_drift_fraction: Input should be greater than or equal to 0"),
])
def test_bad_audit_sections_are_rejected(world, audit, message):
    doc = job_doc(world / "base_data", world / "x")
    doc["audit"] = audit
    with pytest.raises(SpecError, match=message):
        parse_spec(doc)


def _other_baseline(tmp_path, model_id="fake-model", **over):
    """Committed results of a job on another sample (and model id), with job overrides."""
    data = tmp_path / "other_data"
    capture(data, seed=7, model_id=model_id)
    run_job(parse_spec(job_doc(data, tmp_path / "other_base", **over)))
    return tmp_path / "other_base"


@pytest.mark.parametrize("case, message", [
    ("other_model", r"baseline was computed on model 'another-model' but the new results on "
                    r"model 'fake-model'"),
    ("other_job", r"baseline comes from another job \(estimator: .*max_components\": 3"),
    ("other_targets", r"shares no target with this audit: the baseline has \['score'\], the "
                      r"job plans \['label'\]; the targets are mismatched"),
    ("no_manifest", r"baseline .*holds no committed results \(no manifest\.json\)"),
])
def test_bad_baselines_exit_2_with_the_reason(world, tmp_path, case, message):
    if case == "other_model":
        base = _other_baseline(tmp_path, model_id="another-model")
        over = {}
    elif case == "other_job":
        base = _other_baseline(tmp_path, estimator={"method": "gmm", "params": {
            "max_components": 3, "n_inits": 1}})
        over = {}
    elif case == "other_targets":
        base = _other_baseline(tmp_path, targets=["score"])
        over = {"targets": ["label"]}
    else:
        base = tmp_path / "empty"
        (base / "parts").mkdir(parents=True)
        over = {}
    job = write_job(tmp_path / "job.yaml", world / "base_data", tmp_path / "o", **over)
    res = runner.invoke(app, ["audit", str(job), "--baseline", str(base), "--dataset",
                              str(world / "same_data"), "--no-report"])
    assert res.exit_code == 2, res.output
    import re

    assert re.search(message, " ".join(res.output.split())), res.output
    assert not (tmp_path / "o" / "audit.json").exists()


def test_spec_errors_exit_2(world, tmp_path):
    job = write_job(tmp_path / "job.yaml", world / "base_data", tmp_path / "o")
    res = runner.invoke(app, ["audit", str(job), "--dataset", str(world / "same_data")])
    assert res.exit_code == 2 and "has no baseline: pass --baseline RESULTS" in res.output
    res = runner.invoke(app, ["audit", str(job), "--baseline", str(world / "baseline"),
                              "--dataset", str(world / "same_data"), "--output",
                              str(world / "baseline")])
    assert res.exit_code == 2 and "is its baseline folder" in res.output
    topk = write_job(tmp_path / "k.yaml", world / "base_data", tmp_path / "o",
                     units={"top_k_variance": 3})
    res = runner.invoke(app, ["audit", str(topk), "--baseline", str(world / "baseline")])
    assert res.exit_code == 2 and "needs a fixed unit selection" in res.output
    res = runner.invoke(app, ["audit", str(job), "--baseline", str(world / "baseline"),
                              "--dataset", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(app, ["audit", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_a_crash_is_an_error_not_drift(world, tmp_path, monkeypatch):
    import distmi.jobs.audit as audit_mod

    def boom(*a, **k):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(audit_mod, "run_audit", boom)
    res = _audit(world, tmp_path, "--output", str(tmp_path / "a"))
    assert res.exit_code == 2 and "unexpected ZeroDivisionError: planted" in res.output


def test_placeholders():
    t = dt.datetime(2026, 11, 23, 4, 5, 6, tzinfo=dt.UTC)
    assert expand_placeholders("out/{date}/x-{time}", t) == "out/2026-11-23/x-040506"
    assert expand_placeholders("a/{datetime}", t) == "a/20261123-040506"


def test_python_api_refuses_mismatches_before_computing(world, tmp_path):
    spec = parse_spec(job_doc(world / "same_data", tmp_path / "o", layers=["early"],
                              targets=["score"]))
    base = _other_baseline(tmp_path, layers=["late"])
    with pytest.raises(InvalidInputError, match=r"shares no layer with this audit"):
        run_audit(spec, base)
    assert not (tmp_path / "o").exists()


def test_compare_command(world, tmp_path):
    new = world / "thresholds"
    run_job(parse_spec(job_doc(world / "drift_data", new)))  # reused when already committed
    res = runner.invoke(app, ["compare", str(world / "baseline"), str(new), "--min-effect",
                              "0.1", "--export", str(tmp_path / "rows.csv")])
    assert res.exit_code == 0, res.output
    assert "28 rows compared (28 tested), 4 changed; 0 only in" in " ".join(res.output.split())
    rows = __import__("pandas").read_csv(tmp_path / "rows.csv")
    assert len(rows) == 28 and rows["changed"].sum() == 4
    res = runner.invoke(app, ["compare", str(world / "baseline"), str(new), "--json"])
    doc = json.loads(res.output)
    assert res.exit_code == 0 and doc["rows"]["both"] == 28
    assert {r["layer"] for r in doc["by_layer"]} == {"early", "late"}
    (tmp_path / "half" / "parts").mkdir(parents=True)
    res = runner.invoke(app, ["compare", str(world / "baseline"), str(tmp_path / "half")])
    assert res.exit_code == 2 and "holds no committed results" in res.output
    assert "run the job again to resume it" in " ".join(res.output.split())
