"""Two-stage sweeps: the screen/refine table, null tables, resume across stages, batching,
selection options, Ray equivalence and every bad screen setting."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from engine_data import make_planted, planted_spec, tiny_spec

import distmi
from distmi.core.errors import InvalidParameterError, SpecError
from distmi.core.seeds import derive_seed
from distmi.engine.executors import InProcessExecutor
from distmi.jobs import run_job
from distmi.jobs.spec import parse_spec, spec_hash
from distmi.kernels.significance import adjust_pvalues, min_p_pvalues
from distmi.reduce.screen_table import TWO_STAGE_COLUMNS

KEYS = ["layer", "unit", "target", "target_unit"]


@pytest.fixture(scope="module")
def two_stage(planted_dataset, tmp_path_factory):
    return run_job(planted_spec(planted_dataset, tmp_path_factory.mktemp("two") / "r"))


def _row(t, unit, target):
    return t[(t.unit == unit) & (t.target == target)].iloc[0]


def test_two_stage_table_finds_the_planted_units(two_stage):
    t = two_stage.table
    assert list(t.columns) == [*TWO_STAGE_COLUMNS, "screen_ksg", "screen_gaussian"]
    assert len(t) == 80
    found = set(zip(t.unit[t.significant], t.target[t.significant], strict=True))
    assert {(0, "score"), (1, "score"), (2, "label")} <= found
    assert len(found) <= 5  # 77 null pairs at fdr 0.05: a stray discovery at most
    refined = t[t.stage == "refined"]
    assert (refined.significant).all() and len(refined) == t.significant.sum()
    assert refined.estimate.notna().all() and refined.ci_low.notna().all()
    assert (refined.method == "ksg").all() and (refined.screen_method == "ksg+gaussian").all()
    screened = t[(t.stage == "screen") & (t.status == "ok")]
    assert screened[["estimate", "std", "ci_low", "ci_high", "null_mean"]].isna().all().all()
    assert screened.method.isna().all()
    dead = t[t.unit == 3]
    assert (dead.status == "constant").all() and (dead.estimate == 0).all()
    assert dead.p_value.isna().all() and not dead.significant.any()
    ok = t[t.status == "ok"]
    assert (ok.q_value >= ok.p_value).all()
    assert (t.significant == (t.q_value <= 0.05)).all()
    assert _row(t, 1, "score").screen_estimate > 0.3  # y^2: copula KSG sees it
    assert _row(t, 1, "score").screen_gaussian < 0.02  # the Gaussian copula does not


def test_refined_rows_equal_one_at_a_time_estimates(two_stage):
    t = two_stage.table
    layers, targets = make_planted()
    for _, row in t[t.stage == "refined"].iterrows():
        seed = derive_seed(11, "pairs", "h", "target", row.target)
        ref = distmi.mutual_information(
            layers["h"][:, row.unit].astype(np.float64), targets[row.target],
            method="ksg", discrete_y=row.target == "label", n_bootstrap=3, random_state=seed,
            k=3)
        np.testing.assert_allclose(row[["estimate", "std", "ci_low", "ci_high"]].to_numpy(float),
                                   [ref.value, ref.std, *ref.ci], rtol=1e-9, atol=1e-12)


def test_null_tables_are_stored_and_reproduce_the_pvalues(two_stage):
    out = two_stage.output
    m = two_stage.manifest["screen"]
    info = m["null_tables"]
    path = f"{out}/{info['path']}"
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == info["sha256"]
    null = pd.read_parquet(path)
    b = m["n_permutations_used"]
    assert b == 2399  # auto: (C + 1) m / fdr - 1 for the largest family (40 units), C = 2
    assert list(null.columns) == ["null_key", "permutation", "null_ksg", "null_gaussian"]
    assert info["tables"] == {"categorical|n=600|counts=" + ",".join(
        map(str, sorted(np.bincount(make_planted()[1]["label"]), reverse=True))): b,
        "continuous|n=600": b}
    t = two_stage.table
    ok = t[t.status == "ok"]
    for key, rows in ok.groupby("null_key"):
        table = null[null.null_key == key].sort_values("permutation")
        p = min_p_pvalues(rows[["screen_ksg", "screen_gaussian"]].to_numpy(),
                          table[["null_ksg", "null_gaussian"]].to_numpy())
        np.testing.assert_array_equal(p, rows.p_value.to_numpy())
    q = adjust_pvalues(t.p_value.to_numpy(), "bh", (t.layer + "|" + t.target).to_numpy())
    np.testing.assert_allclose(q, t.q_value.to_numpy())
    assert m["pairs_screened"] == 80 and m["pairs_tested"] == 78
    assert m["pairs_refined"] == int(t.significant.sum())
    assert m["min_discoveries_per_family"] == 1
    for part in m["refine_parts"]:
        assert hashlib.sha256(open(f"{out}/{part['path']}", "rb").read()).hexdigest() == part["sha256"]


def test_one_stage_jobs_keep_their_hash_and_table(tiny_dataset, tmp_path):
    spec = tiny_spec(tiny_dataset, tmp_path / "r")
    explicit = tiny_spec(tiny_dataset, tmp_path / "r", screen=None)
    assert spec_hash(spec) == spec_hash(explicit)
    doc = spec.model_dump(mode="json", exclude={"name", "scaling", "retries", "output", "screen",
                                          "audit"})
    doc["dataset"].pop("verify", None)
    doc["dataset"].pop("capture", None)
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    assert spec_hash(spec) == hashlib.sha256(text.encode()).hexdigest()
    screened = tiny_spec(tiny_dataset, tmp_path / "r", screen={"n_permutations": 200})
    assert spec_hash(screened) != spec_hash(spec)
    t = run_job(spec).table
    assert "p_value" not in t.columns and "stage" not in t.columns


class _Crash(InProcessExecutor):
    """Raises after ``after`` outputs of its ``call``-th run (0: the screen pass)."""

    def __init__(self, call: int, after: int) -> None:
        super().__init__()
        self.call, self.after, self.calls = call, after, 0

    def run(self, batches, task):
        this = self.calls
        self.calls += 1
        for k, out in enumerate(super().run(batches, task)):
            if this == self.call and k == self.after:
                raise KeyboardInterrupt
            yield out


@pytest.mark.parametrize("call,after", [(0, 3), (1, 1)])
def test_interrupted_two_stage_job_resumes_to_the_same_table(two_stage, planted_dataset,
                                                             tmp_path, call, after):
    spec = planted_spec(planted_dataset, tmp_path / "r")
    with pytest.raises(KeyboardInterrupt):
        run_job(spec, executor=_Crash(call, after))
    resumed = run_job(spec)
    assert resumed.batches_resumed >= after
    pd.testing.assert_frame_equal(resumed.table, two_stage.table, check_exact=True)
    if call == 1:  # the refine parts of the interrupted run were kept
        assert resumed.manifest["screen"]["timings"]["refine_batches_resumed"] == after
    assert run_job(spec).batches_run == 0


def test_batching_does_not_change_the_table(two_stage, planted_dataset, tmp_path):
    spec = planted_spec(planted_dataset, tmp_path / "r",
                        screen={"batch_size": 7, "null_batch_size": 333},
                        scaling={"batch_size": 3, "units_per_shard": 40})
    assert spec_hash(spec) == spec_hash(planted_spec(planted_dataset, tmp_path / "x"))
    other = run_job(spec).table
    a = two_stage.table
    screen_cols = ["stage", "screen_estimate", "p_value", "q_value", "significant", "status",
                   "screen_ksg", "screen_gaussian", "null_key"]
    pd.testing.assert_frame_equal(a[KEYS + screen_cols], other[KEYS + screen_cols],
                                  check_exact=True)
    vals = ["estimate", "std", "ci_low", "ci_high", "null_mean"]
    np.testing.assert_allclose(a[vals].to_numpy(), other[vals].to_numpy(), rtol=1e-9, atol=1e-12)


def test_selection_options(two_stage, planted_dataset, tmp_path):
    t = two_stage.table
    capped = run_job(planted_spec(planted_dataset, tmp_path / "cap", screen={"max_refine": 2})).table
    top2 = t[t.significant].sort_values("screen_estimate", ascending=False).head(2)
    assert set(zip(capped.unit[capped.stage == "refined"], capped.target[capped.stage == "refined"],
                   strict=True)) == set(zip(top2.unit, top2.target, strict=True))
    per = run_job(planted_spec(planted_dataset, tmp_path / "per",
                               screen={"max_refine_per_family": 1})).table
    ref_rows = per[per.stage == "refined"]
    assert sorted(ref_rows.target) == ["label", "score"]  # one per (layer, target) family
    for target, fam in t[t.significant].groupby("target"):
        assert ref_rows[ref_rows.target == target].unit.item() == fam.loc[
            fam.screen_estimate.idxmax(), "unit"]
    only = run_job(planted_spec(planted_dataset, tmp_path / "only", screen={"max_refine": 0}))
    assert (only.table.stage == "screen").all() and only.manifest["screen"]["pairs_refined"] == 0
    pd.testing.assert_series_equal(only.table.p_value, t.p_value)
    top = run_job(planted_spec(planted_dataset, tmp_path / "top",
                               screen={"fdr": None, "max_refine": 4, "n_permutations": 0})).table
    assert top.p_value.isna().all() and not top.significant.any()
    assert (top.stage == "refined").sum() == 4
    assert top[top.stage == "refined"].screen_estimate.min() >= top[
        (top.stage == "screen") & (top.status == "ok")].screen_estimate.max()


def test_fdr_scope_and_method(planted_dataset, tmp_path):
    job = run_job(planted_spec(planted_dataset, tmp_path / "job",
                               screen={"fdr_scope": "job", "fdr_method": "by",
                                       "max_refine": 0}))
    m = job.manifest["screen"]
    assert m["families"] == 1 and m["largest_family"] == 80
    c_m = np.sum(1 / np.arange(1, 81))
    assert m["n_permutations_used"] == int(np.ceil(3 * 80 * c_m / 0.05)) - 1
    jt = job.table
    ok = (jt.status == "ok").to_numpy()
    by = adjust_pvalues(jt.p_value[ok].to_numpy(), "by")
    np.testing.assert_allclose(jt.q_value[ok], by)
    assert (by >= adjust_pvalues(jt.p_value[ok].to_numpy(), "bh")).all()
    found = set(zip(jt.unit[jt.significant], jt.target[jt.significant], strict=True))
    assert {(0, "score"), (1, "score"), (2, "label")} <= found  # BY over the whole job


def test_unit_unit_screen(planted_dataset, tmp_path):
    res = run_job(planted_spec(planted_dataset, tmp_path / "uu", layers=["h", "g"],
                               pairs="adjacent-layers", targets=[], n_bootstrap=0,
                               null_permutations=0, screen={"max_refine": 0}))
    t = res.table
    assert len(t) == 40 * 8 and (t.null_key == "continuous|n=600").all()
    found = set(zip(t.unit[t.significant], t.target_unit[t.significant], strict=True))
    assert {(0, 0), (4, 1)} <= found  # linear and |h4| (non-monotone) links


@pytest.mark.parametrize("screen,match", [
    ({"fdr": 0.0}, r"screen.fdr must lie in \(0, 1\)"),
    ({"fdr": 1.0}, r"screen.fdr must lie in \(0, 1\)"),
    ({"fdr": -0.1}, r"screen.fdr must lie in \(0, 1\)"),
    ({"n_permutations": 50}, r"n_permutations=50 is too few .* at least 100"),
    ({"n_permutations": "many"}, r"screen.n_permutations"),
    ({"method": "mine"}, r"screen.method: got 'mine', allowed values: 'ksg\+gaussian'"),
    ({"fdr": None}, r"nothing selects the pairs to refine"),
    ({"max_refine": -1}, r"screen.max_refine"),
    ({"max_refine_per_family": -2}, r"screen.max_refine_per_family"),
    ({"k": 0}, r"screen.k"),
    ({"fdr_scope": "layer"}, r"screen.fdr_scope: got 'layer'"),
    ({"fdr_method": "holm"}, r"screen.fdr_method: got 'holm'"),
    ({"permutations": 10}, r"unknown key 'screen.permutations'"),
])
def test_bad_screen_settings_are_refused(tiny_dataset, tmp_path, screen, match):
    with pytest.raises(SpecError, match=match):
        tiny_spec(tiny_dataset, tmp_path / "r", screen=screen)


def test_screens_the_plan_cannot_serve_are_refused(tiny_dataset, tmp_path):
    spec = tiny_spec(tiny_dataset, tmp_path / "r", pairs="layer-target", targets=["score"],
                     screen={})
    with pytest.raises(SpecError, match=r"needs pairs of single units.*layer-target"):
        run_job(spec)
    spec = tiny_spec(tiny_dataset, tmp_path / "r", screen={"k": 500})
    with pytest.raises(SpecError, match=r"screen.k=500 neighbours needs more than 500 samples"):
        run_job(spec)


def test_pairwise_mi_gives_the_jobs_pvalues(two_stage):
    layers, targets = make_planted()
    t = two_stage.table
    b = two_stage.manifest["screen"]["n_permutations_used"]
    X = layers["h"][:, [0, 1, 2, 4]].astype(np.float64)  # no ties, not constant
    got = distmi.pairwise_mi(X, targets["score"][:, None], method="ksg", n_bootstrap=0,
                             random_state=11, n_permutations=b, k=3)
    want = t[(t.target == "score") & t.unit.isin([0, 1, 2, 4])]
    np.testing.assert_allclose(got.screen_estimate, want.screen_estimate, rtol=1e-12)
    np.testing.assert_array_equal(got.p_value, want.p_value)
    assert set(got.columns) >= {"estimate", "screen_estimate", "p_value", "q_value"}
    two = distmi.pairwise_mi(X, targets["label"], discrete_y=True, method="ksg", n_bootstrap=0,
                             n_permutations=999, fdr=0.05)
    assert two.loc[two.significant, "x_index"].tolist() == [2]
    assert two.stage.tolist() == ["screen", "screen", "refined", "screen"]
    assert two.estimate.isna().sum() == 3


@pytest.mark.parametrize("kw,match", [
    ({"n_permutations": 50}, r"n_permutations=50 is too few"),
    ({"n_permutations": 200, "fdr": 1.5}, r"fdr must lie in \(0, 1\)"),
    ({"fdr": 0.05}, r"n_permutations=0 is too few .* or fdr=None"),
    ({"n_permutations": 200, "screen": "knn"}, r"screen method must be one of"),
    ({"n_permutations": 200, "fdr_method": "holm"}, r"fdr_method must be 'bh' or 'by'"),
    ({"n_permutations": -1}, r"n_permutations must be >= 0"),
])
def test_pairwise_mi_bad_screen_arguments(kw, match):
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidParameterError, match=match):
        distmi.pairwise_mi(rng.normal(size=(100, 2)), rng.normal(size=(100, 1)), method="ksg",
                           n_bootstrap=0, **kw)


@pytest.mark.ray
def test_ray_actors_give_the_in_process_two_stage_table(ray_local, two_stage, planted_dataset,
                                                        tmp_path):
    from distmi.engine.ray_executor import RayExecutor

    ex = RayExecutor(workers=2, cpus_per_worker=0.5, retries=3)
    res = run_job(planted_spec(planted_dataset, tmp_path / "r",
                               scaling={"executor": "ray"}), executor=ex)
    pd.testing.assert_frame_equal(res.table, two_stage.table, check_exact=True)
    assert res.manifest["executor"] == "ray"


def test_yaml_screen_section(tmp_path, tiny_dataset):
    import yaml

    from distmi.jobs.spec import load_spec

    doc = {"dataset": {"path": str(tiny_dataset)}, "targets": ["label"], "output": "o",
           "screen": {"method": "ksg", "n_permutations": 2000, "fdr": 0.05, "max_refine": None},
           "estimator": {"method": "gmm"}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    spec = load_spec(path)
    assert spec.screen.request().n_permutations == 2000 and spec.screen.method == "ksg"
    assert parse_spec({**doc, "screen": {}}).screen.request().n_permutations is None


def test_screen_pairs_in_memory():
    rng = np.random.default_rng(5)
    n = 1500
    y = rng.normal(size=(n, 2))
    X = rng.normal(size=(n, 30))
    X[:, 4] = np.cos(2 * y[:, 0]) + 0.5 * X[:, 4]   # periodic, vs column 0
    X[:, 9] = 0.3 * y[:, 1] + X[:, 9]                # weak linear, vs column 1
    t = distmi.screen_pairs(X, y, threads=2)
    assert len(t) == 60 and {"screen_ksg", "screen_gaussian", "significant"} <= set(t.columns)
    found = set(zip(t.x_index[t.significant], t.y_index[t.significant], strict=True))
    assert {(4, 0), (9, 1)} <= found and len(found) <= 4
    again = distmi.screen_pairs(X, y, threads=1)
    pd.testing.assert_frame_equal(t, again)  # threads change nothing
    plain = distmi.screen_pairs(X, y, n_permutations=0, fdr=None, method="xi")
    assert list(plain.columns) == ["x_index", "y_index", "screen_estimate", "screen_xi"]
    with pytest.raises(InvalidParameterError, match=r"fdr must lie in \(0, 1\)"):
        distmi.screen_pairs(X, y, fdr=0)


def test_progress_reaches_its_total(planted_dataset, tmp_path):
    seen = []
    res = run_job(planted_spec(planted_dataset, tmp_path / "p"),
                  progress=lambda done, total: seen.append((done, total)))
    m = res.manifest["screen"]
    perms = m["n_permutations_used"] * len(m["null_tables"]["tables"])
    assert seen[-1] == (80 + perms + m["pairs_refined"],) * 2
    assert all(a <= b for a, b in seen) and [d for d, _ in seen] == sorted(d for d, _ in seen)
