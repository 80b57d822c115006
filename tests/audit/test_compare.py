"""distmi.reduce.compare on hand-made tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import false_discovery_control, norm

from distmi.core.errors import InvalidInputError, InvalidParameterError
from distmi.reduce import compare


def table(rows):
    """rows: (layer, unit, target, estimate, std[, status])."""
    recs = []
    for r in rows:
        layer, unit, target, est, std = r[:5]
        recs.append({"layer": layer, "unit": unit, "target": target, "target_unit": -1,
                     "estimate": est, "std": std, "ci_low": est - 2 * std,
                     "ci_high": est + 2 * std, "null_mean": 0.01, "n_samples": 500,
                     "status": r[5] if len(r) > 5 else "ok"})
    return pd.DataFrame(recs)


def test_one_row_z_and_p_match_the_closed_form():
    base = table([("l1", 0, "y", 0.50, 0.03)])
    new = table([("l1", 0, "y", 0.60, 0.04)])
    c = compare(base, new)
    row = c.rows.iloc[0]
    assert row["side"] == "both"
    assert row["delta"] == pytest.approx(0.10)
    assert row["se_delta"] == pytest.approx(0.05)  # sqrt(0.03^2 + 0.04^2)
    assert row["z"] == pytest.approx(2.0)
    assert row["p_value"] == pytest.approx(2 * norm.sf(2.0))
    assert row["q_value"] == pytest.approx(row["p_value"])  # one test: q = p
    assert bool(row["changed"])  # q = 0.0455 <= 0.05, |delta| >= 0
    assert not compare(base, new, min_effect=0.2).rows["changed"].iloc[0]  # too small a shift
    assert not compare(base, new, fdr=0.01).rows["changed"].iloc[0]  # not significant at 1%


def test_q_values_are_benjamini_hochberg_over_all_rows():
    rng = np.random.default_rng(3)
    n = 60
    est_b = rng.uniform(0.1, 1.0, n)
    shift = np.where(np.arange(n) < 10, 0.3, 0.0)
    est_n = est_b + shift + rng.normal(0, 0.05, n)
    rows_b = [("l1" if i < 30 else "l2", i, "y", est_b[i], 0.04) for i in range(n)]
    rows_n = [("l1" if i < 30 else "l2", i, "y", est_n[i], 0.03) for i in range(n)]
    c = compare(table(rows_b), table(rows_n))
    r = c.rows.sort_values("unit")
    z = (est_n - est_b) / 0.05
    np.testing.assert_allclose(r["z"], z, rtol=1e-12)
    p = 2 * norm.sf(np.abs(z))
    np.testing.assert_allclose(r["p_value"], p, rtol=1e-9)
    np.testing.assert_allclose(r["q_value"], false_discovery_control(p, method="bh"), rtol=1e-9)
    # grouped correction: each layer its own family
    g = compare(table(rows_b), table(rows_n), fdr_groups="layer").rows.sort_values("unit")
    for layer, idx in (("l1", slice(0, 30)), ("l2", slice(30, 60))):
        np.testing.assert_allclose(g[g.layer == layer]["q_value"],
                                   false_discovery_control(p[idx], method="bh"), rtol=1e-9)
    # the planted shifts (units 0-9 of l1) are found; l2 is untouched
    assert set(c.changed_rows()["unit"]) == set(range(10))
    by = c.by_layer.set_index("layer")
    assert by.loc["l1", "n_units_changed"] == 10 and by.loc["l1", "n_units"] == 30
    assert by.loc["l1", "frac_units_changed"] == pytest.approx(1 / 3)
    assert by.loc["l2", "n_units_changed"] == 0
    assert by.loc["l1", "max_abs_delta"] == pytest.approx(np.abs(est_n - est_b)[:30].max())
    assert by.loc["l1", "top_unit"] == int(np.argmax(np.abs(est_n - est_b)[:30]))
    shifts = c.largest_shifts(3)
    assert list(shifts["unit"]) == list(np.argsort(-np.abs(est_n - est_b))[:3])


def test_z_test_is_calibrated_when_the_errors_are_right():
    """Under no change, with standard errors that are the true sampling sd, p ~ U(0, 1)."""
    rng = np.random.default_rng(11)
    n = 20000
    truth = rng.uniform(0.0, 2.0, n)
    sd_b, sd_n = rng.uniform(0.01, 0.1, n), rng.uniform(0.01, 0.1, n)
    b = pd.DataFrame({"layer": "l", "unit": np.arange(n), "target": "y", "target_unit": -1,
                      "estimate": truth + sd_b * rng.normal(size=n), "std": sd_b})
    m = b.assign(estimate=truth + sd_n * rng.normal(size=n), std=sd_n)
    c = compare(b, m)
    p = c.rows["p_value"].to_numpy()
    for level in (0.01, 0.05, 0.2, 0.5):
        rate = (p <= level).mean()
        assert abs(rate - level) < 4 * np.sqrt(level * (1 - level) / n), (level, rate)
    assert c.n_changed <= 5  # BH at 5% over 20000 null rows: almost never a discovery
    assert c.by_layer["rank_corr"].iloc[0] > 0.95


def test_rows_on_one_side_are_reported_not_dropped():
    base = table([("l1", 0, "y", 0.5, 0.02), ("l1", 1, "y", 0.4, 0.02), ("l1", 2, "y", 0.3, 0.02),
                  ("l1", 0, "gone", 0.2, 0.02)])
    new = table([("l1", 0, "y", 0.5, 0.02), ("l1", 1, "y", 0.4, 0.02), ("l1", 3, "y", 0.1, 0.02)])
    c = compare(base, new)
    sides = c.rows.set_index(["unit", "target"])["side"]
    assert sides[(2, "y")] == "base_only" and sides[(0, "gone")] == "base_only"
    assert sides[(3, "y")] == "new_only" and sides[(0, "y")] == "both"
    one = c.rows[c.rows.side != "both"]
    assert one["p_value"].isna().all() and not one["changed"].any()
    assert one["estimate_new"].isna().sum() == 2 and one["estimate_base"].isna().sum() == 1
    lay = c.by_layer.set_index("layer")
    assert (lay.loc["l1", "n_base_only"], lay.loc["l1", "n_new_only"]) == (2, 1)
    tgt = c.by_target.set_index("target")
    assert tgt.loc["gone", "n_rows"] == 0 and tgt.loc["gone", "n_base_only"] == 1
    d = c.to_dict()
    assert d["rows"] == {"both": 2, "base_only": 2, "new_only": 1, "tested": 2, "changed": 0}
    assert {(r["unit"], r["side"]) for r in d["one_sided"]} == {(2, "base_only"), (0, "base_only"),
                                                               (3, "new_only")}
    assert any("one side only" in n for n in c.notes)


def test_status_changes():
    base = table([("l1", 0, "y", 0.5, 0.02), ("l1", 1, "y", 0.0, 0.0, "constant"),
                  ("l1", 2, "y", 0.3, 0.02)])
    new = table([("l1", 0, "y", 0.0, 0.0, "constant"), ("l1", 1, "y", 0.0, 0.0, "constant"),
                 ("l1", 2, "y", np.nan, np.nan, "nonfinite")])
    r = compare(base, new).rows.set_index("unit")
    assert r.loc[0, "changed"] and r.loc[0, "z"] == pytest.approx(-25.0)  # a unit that died
    assert r.loc[1, "p_value"] == 1.0 and not r.loc[1, "changed"]  # constant on both sides
    assert np.isnan(r.loc[2, "p_value"]) and not r.loc[2, "changed"]  # NaN: not testable
    assert (r.loc[2, "status_base"], r.loc[2, "status_new"]) == ("ok", "nonfinite")


def test_standard_errors_from_stored_replicates():
    rng = np.random.default_rng(0)
    reps_b, reps_n = rng.normal(0.5, 0.03, 200), rng.normal(0.7, 0.04, 200)
    base = table([("l1", 0, "y", 0.5, 99.0)]).assign(replicates=[reps_b])
    new = table([("l1", 0, "y", 0.7, 99.0)]).assign(replicates=[reps_n])
    c = compare(base, new)
    se = np.hypot(reps_b.std(ddof=1), reps_n.std(ddof=1))
    assert c.rows["se_delta"].iloc[0] == pytest.approx(se)
    assert c.settings["standard_errors"] == ["replicates"]


def test_deltas_only_without_standard_errors():
    base = table([("l1", 0, "y", 0.5, np.nan), ("l1", 1, "y", 0.5, np.nan)])
    new = table([("l1", 0, "y", 0.9, np.nan), ("l1", 1, "y", 0.52, np.nan)])
    with pytest.raises(InvalidInputError, match=r"n_bootstrap: 0.*test='none'"):
        compare(base, new)
    c = compare(base, new, test="none", min_effect=0.1)
    assert list(c.rows["changed"]) == [True, False] and c.rows["p_value"].isna().all()


@pytest.mark.parametrize("kwargs, message", [
    ({"fdr": 0.0}, r"fdr must lie in \(0, 1\)"),
    ({"min_effect": -1.0}, r"min_effect must be a finite number of nats >= 0"),
    ({"test": "t"}, r"test must be one of"),
    ({"fdr_groups": "unit"}, r"fdr_groups must be None or one of"),
])
def test_bad_parameters(kwargs, message):
    t = table([("l1", 0, "y", 0.5, 0.02)])
    with pytest.raises(InvalidParameterError, match=message):
        compare(t, t, **kwargs)


def test_mismatched_tables_are_refused_with_the_reason():
    a = table([("l1", 0, "species", 0.5, 0.02)])
    with pytest.raises(InvalidInputError, match=r"share no target: base has \['species'\], new "
                                                r"has \['topic'\].*mismatched"):
        compare(a, table([("l1", 0, "topic", 0.5, 0.02)]))
    with pytest.raises(InvalidInputError, match=r"share no layer"):
        compare(a, table([("l9", 0, "species", 0.5, 0.02)]))
    with pytest.raises(InvalidInputError, match=r"share no \(layer, unit, target\) row.*top_k_variance"):
        compare(a, table([("l1", 5, "species", 0.5, 0.02)]))
    with pytest.raises(InvalidInputError, match=r"lacks the columns \['estimate'\]"):
        compare(a, a.drop(columns="estimate"))
    with pytest.raises(InvalidInputError, match=r"more than once"):
        compare(a, pd.concat([a, a]))
    with pytest.raises(InvalidInputError, match=r"must be a results folder"):
        compare(a, [1, 2])


def _manifest(model="m", method="gmm", params=None, n=500, dataset_hash="h1"):
    return {"job_name": "j", "spec_hash": "s", "dataset_hash": dataset_hash,
            "dataset": {"model_id": model, "n_samples": n, "path": "/d"},
            "spec": {"pairs": "unit-target", "estimator": {"method": method,
                                                             "params": params or {}},
                     "n_slices": None, "seed": 0}}


def test_results_of_another_model_or_job_are_refused():
    t = table([("l1", 0, "y", 0.5, 0.02)])
    with pytest.raises(InvalidInputError, match=r"baseline was computed on model 'iris' but the "
                                                r"new results on model 'minilm'"):
        compare((t, _manifest(model="iris")), (t, _manifest(model="minilm")))
    with pytest.raises(InvalidInputError, match=r"another job \(estimator: base .*max_components"):
        compare((t, _manifest(params={"max_components": 4})), (t, _manifest()))
    c = compare((t, _manifest()), (t, _manifest(n=400, dataset_hash="h2")))
    assert any("sample sizes differ" in n for n in c.notes)
    assert c.base["model_id"] == "m" and c.new["dataset_hash"] == "h2"
    same = compare((t, _manifest()), (t, _manifest()))
    assert any("same dataset" in n for n in same.notes)
    compare((t, _manifest(model="iris")), (t, _manifest(model="minilm")), check=False)


def _layered(shifts):
    """Layers l0..l3 of 10 units; ``shifts[layer]`` units get +0.5 nats (z = 10)."""
    base, new = [], []
    for li in range(4):
        for u in range(10):
            base.append((f"l{li}", u, "y", 0.3, 0.03))
            new.append((f"l{li}", u, "y", 0.3 + (0.5 if u < shifts.get(f"l{li}", 0) else 0.0),
                        0.04))
    return compare(table(base), table(new), min_effect=0.1)


def test_verdicts_rank_layers_and_find_the_onset():
    from distmi.reduce.drift import judge_layers, onset_layer

    c = _layered({"l1": 2, "l2": 6, "l3": 4})
    drift, reasons, layers = judge_layers(c, max_drift_fraction=0.2)
    assert drift and list(layers["layer"]) == ["l2", "l3", "l1", "l0"]
    assert list(layers["rank"]) == [1, 2, 3, 4]
    assert list(layers["drifted"]) == [True, True, False, False]  # 0.2 is not above 0.2
    assert onset_layer(layers) == "l2"  # l1 changed, but not enough to drift
    assert reasons[0].startswith("layer l2: 6 of 10 units changed (60.0% > 20.0%)")
    drift, _, layers = judge_layers(c, max_drift_fraction=0.1)
    assert onset_layer(layers) == "l1"
    drift, reasons, layers = judge_layers(c, max_drift_fraction=0.6)
    assert not drift and reasons == [] and onset_layer(layers) is None
    # the depth order comes from the caller (a job's layer list), not the names
    _, _, layers = judge_layers(c, 0.1, order=["l3", "l2", "l1", "l0"])
    assert onset_layer(layers) == "l3"
    with pytest.raises(ValueError, match="missing_rows must be one of"):
        judge_layers(c, 0.1, missing_rows="warn")


def test_changed_flags_can_be_rejudged_from_stored_rows():
    from distmi.reduce.compare import comparison_from_rows

    c = _layered({"l2": 6})
    again = comparison_from_rows(c.rows, c.settings)
    pd.testing.assert_frame_equal(again.by_layer, c.by_layer)
    stricter = comparison_from_rows(c.rows, c.settings, min_effect=0.6)
    assert stricter.n_changed == 0 and stricter.settings["min_effect"] == 0.6
    looser = comparison_from_rows(c.rows, c.settings, fdr=0.5)
    assert looser.n_changed == c.n_changed == 6
