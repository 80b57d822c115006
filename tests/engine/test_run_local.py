"""In-process runs: numbers, batching independence, committed results, resume, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from engine_data import REAL_ESTIMATORS, make_activations, tiny_spec

import distmi
from distmi.core.errors import InvalidParameterError, SpecError, StoreError
from distmi.core.seeds import derive_seed
from distmi.engine.executors import InProcessExecutor
from distmi.jobs import filter_table, load_results, run_job
from distmi.reduce import attribution_matrix, top_units

VALUES = ["estimate", "std", "ci_low", "ci_high", "null_mean"]


@pytest.fixture(scope="module")
def baseline(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "r"
    return run_job(tiny_spec(tiny_dataset, out))


def test_table_rows_equal_one_at_a_time_estimates(baseline):
    t = baseline.table
    assert len(t) == 20 and list(t["status"]).count("constant") == 2
    layers, targets = make_activations()
    for layer, unit, target in [("a", 0, "label"), ("a", 1, "score"), ("b", 3, "score")]:
        row = t[(t.layer == layer) & (t.unit == unit) & (t.target == target)].iloc[0]
        seed = derive_seed(7, "pairs", layer, "target", target)
        ref = distmi.mutual_information(
            layers[layer][:, unit].astype(np.float64), targets[target],
            discrete_y=target == "label", n_bootstrap=3, random_state=seed,
            n_components=1, n_inits=1)
        np.testing.assert_allclose(row[["estimate", "std", "ci_low", "ci_high"]].to_numpy(float),
                                   [ref.value, ref.std, *ref.ci], rtol=1e-9, atol=1e-12)
    # a[:,0] carries the label, a[:,1] the score: both far above their permutation null
    strong = t[(t.layer == "a") & (t.unit.isin([0, 1]))].set_index(["unit", "target"])
    assert strong.loc[(0, "label"), "estimate"] > 10 * strong.loc[(0, "label"), "null_mean"]
    assert strong.loc[(1, "score"), "estimate"] > 10 * strong.loc[(1, "score"), "null_mean"]
    dead = t[t.unit.eq(4) & t.layer.eq("a")]
    assert (dead.estimate == 0).all() and (dead.status == "constant").all()


def test_results_do_not_depend_on_batching(baseline, tiny_dataset, tmp_path):
    other = run_job(tiny_spec(tiny_dataset, tmp_path / "r", scaling={"batch_size": 7,
                                                                     "units_per_shard": 2}))
    # same pairs, seeds and estimates; batched kernels agree to rounding (estimate_pairs contract)
    a, b = baseline.table, other.table
    pd.testing.assert_frame_equal(a[["layer", "unit", "target", "status"]],
                                  b[["layer", "unit", "target", "status"]])
    np.testing.assert_allclose(a[VALUES].to_numpy(), b[VALUES].to_numpy(), rtol=1e-9, atol=1e-12)


def test_committed_layout_loads_without_distmi(baseline):
    out = baseline.output
    direct = pd.read_parquet(f"{out}/attribution.parquet")
    parts = pd.read_parquet(f"{out}/parts")
    assert len(direct) == len(parts) == len(baseline.table)
    m = json.loads(open(f"{out}/manifest.json").read())
    assert m["spec_hash"] and m["dataset"]["manifest_sha256"] and m["seed"] == 7
    assert m["distmi_version"] == distmi.__version__ and m["unit"] == "nat"
    assert m["timings"]["batches_total"] == len(m["parts"]) == 10
    table, _manifest = load_results(out, verify=True)
    pd.testing.assert_frame_equal(table, baseline.table)


def test_matrix_and_filters(baseline):
    mat = attribution_matrix(baseline.table, "a")
    assert mat.shape == (6, 2)
    assert mat["label"].idxmax() == 0 and mat["score"].idxmax() == 1
    top = top_units(baseline.table, k=2)
    assert top.target.tolist() == ["label", "label", "score", "score"]
    assert top.loc[0, ["layer", "unit"]].tolist() == ["a", 0]
    assert top.loc[2, ["layer", "unit"]].tolist() == ["a", 1]
    assert top.excess.iloc[0] >= top.excess.iloc[1]
    rows = filter_table(baseline.table, targets=["label"], min_excess=0.1)
    assert set(zip(rows.layer, rows.unit, strict=True)) == {("a", 0), ("b", 0)}
    with pytest.raises(InvalidParameterError, match=r"target 'nope' is not in the results"):
        filter_table(baseline.table, targets=["nope"])


class _Crash(InProcessExecutor):
    """Stops after ``after`` batches, like a run killed mid-way."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def run(self, batches, task):
        for k, out in enumerate(super().run(batches, task)):
            if k == self.after:
                raise KeyboardInterrupt
            yield out


def test_interrupted_run_resumes_to_the_same_table(baseline, tiny_dataset, tmp_path):
    spec = tiny_spec(tiny_dataset, tmp_path / "r")
    with pytest.raises(KeyboardInterrupt):
        run_job(spec, executor=_Crash(after=4))
    with pytest.raises(StoreError, match=r"no committed results .* run the job again to resume"):
        load_results(tmp_path / "r")
    resumed = run_job(spec)
    assert (resumed.batches_resumed, resumed.batches_run) == (4, 6)
    pd.testing.assert_frame_equal(resumed.table, baseline.table, check_exact=True)
    again = run_job(spec)  # complete: nothing to do
    assert again.batches_run == 0
    pd.testing.assert_frame_equal(again.table, baseline.table)


def test_output_of_another_job_is_refused(baseline, tiny_dataset):
    other = tiny_spec(tiny_dataset, baseline.output, seed=8)
    with pytest.raises(SpecError, match=r"holds results of a different job .* --overwrite"):
        run_job(other)


def test_estimator_errors_fail_fast(tiny_dataset, tmp_path):
    spec = tiny_spec(tiny_dataset, tmp_path / "r", estimator={"params": {"n_compnents": 1}})
    with pytest.raises(InvalidParameterError, match=r"n_compnents"):
        run_job(spec)


def test_unit_unit_and_layer_target_modes(tiny_dataset, tmp_path):
    uu = run_job(tiny_spec(tiny_dataset, tmp_path / "uu", pairs="adjacent-layers", targets=[],
                           null_permutations=0, n_bootstrap=0))
    t = uu.table
    assert len(t) == 24 and t.null_mean.isna().all()
    top = t[t.status.isin(["ok", "warning"])].sort_values("estimate").iloc[-1]
    assert (top.unit, top.target, top.target_unit) == (0, "b", 0)
    mat = attribution_matrix(t, "a")
    assert mat.shape == (6, 4)
    lt = run_job(tiny_spec(tiny_dataset, tmp_path / "lt", pairs="layer-target",
                           targets=["score"], n_bootstrap=0))
    assert lt.table.unit.tolist() == [-1, -1] and lt.table.estimate.iloc[0] > 0.2


# ---- real estimator settings through a job ----------------------------------------------
@pytest.fixture(scope="module", params=sorted(REAL_ESTIMATORS))
def real_run(request, tiny_dataset, tmp_path_factory):
    spec = tiny_spec(tiny_dataset, tmp_path_factory.mktemp(request.param) / "r",
                     estimator=REAL_ESTIMATORS[request.param])
    return request.param, spec, run_job(spec)


def test_real_settings_rows_equal_direct_calls(real_run):
    """GMM with K selection over 3 inits, KSG and SMILE: a job's row is the direct estimate
    with the pair's derived seed (to float32 rounding for the neural bound, whose pairs train
    in groups)."""
    name, spec, res = real_run
    t = res.table
    layers, targets = make_activations()
    for layer, unit, target in [("a", 0, "label"), ("a", 1, "score"), ("b", 3, "score")]:
        row = t[(t.layer == layer) & (t.unit == unit) & (t.target == target)].iloc[0]
        seed = derive_seed(7, "pairs", layer, "target", target)
        ref = distmi.mutual_information(
            layers[layer][:, unit].astype(np.float64), targets[target],
            method=spec.estimator.method, discrete_y=target == "label", n_bootstrap=3,
            random_state=seed, **spec.estimator.params)
        tol = dict(rtol=1e-5, atol=1e-6) if name == "smile" else dict(rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(row[["estimate", "std", "ci_low", "ci_high"]].to_numpy(float),
                                   [ref.value, ref.std, *ref.ci], **tol)
        assert row.status == ref.status
    if name == "gmm-select":  # selection ran: some unit needed more than one component
        chosen = [json.loads(d)["n_components"] for d in t.diagnostics if d != "{}"]
        assert max(chosen) > 1
    strong = t[(t.layer == "a") & (t.unit == 0) & (t.target == "label")].iloc[0]
    assert strong.estimate > strong.null_mean + 0.2  # a[:, 0] carries the label


def test_real_settings_resume_to_the_same_table(real_run, tiny_dataset, tmp_path):
    _, spec, res = real_run
    doc = spec.model_dump(mode="json")
    doc["output"] = str(tmp_path / "r")
    from distmi.jobs.spec import parse_spec

    spec2 = parse_spec(doc)
    with pytest.raises(KeyboardInterrupt):
        run_job(spec2, executor=_Crash(after=3))
    resumed = run_job(spec2)
    assert (resumed.batches_resumed, resumed.batches_run) == (3, 7)
    pd.testing.assert_frame_equal(resumed.table, res.table, check_exact=True)


def test_untrustworthy_neural_rows_carry_their_status(tiny_dataset, tmp_path):
    """InfoNCE with 2 contrasts per row cannot exceed log 2, and the ceiling costs 0.1 nats
    from 0.09 nats on: the label-carrying unit is flagged "capped" in the status column and
    left out of the top units."""
    spec = tiny_spec(tiny_dataset, tmp_path / "r", layers=["a"], targets=["label"],
                     estimator={"method": "infonce", "params": {
                         "batch_size": 2, "critic": "concat", "hidden": [8, 8],
                         "max_steps": 200, "learning_rate": 0.01}},
                     null_permutations=0)
    t = run_job(spec).table
    row = t[t.unit == 0].iloc[0]
    assert row.status == "capped" and row.estimate <= np.log(2)
    assert json.loads(row.diagnostics)["status"] == "capped"
    assert (t.status == "constant").sum() == 1  # the dead unit
    assert 0 not in top_units(t, k=6).unit.tolist()
