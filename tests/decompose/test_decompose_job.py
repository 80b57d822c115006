"""Many layers as one job: one work unit per layer on the engine executors, resume, Ray."""

from __future__ import annotations

import json

import numpy as np
import pytest

from distmi.analyses.decompose.job import parse_spec, plan, run_explain_job
from distmi.core.errors import InvalidParameterError, SpecError
from distmi.examples.train_models import digits_data


def _spec(out, **kw):
    params = {"model": "digits", "layers": ("act1", "act2"), "output": str(out),
              "fit": {"epochs": 1}, "n_figures": 1, "evaluate": False, **kw}
    return parse_spec(**params)


def test_plan_has_one_unit_per_layer_with_stable_seeds(tmp_path):
    units = plan(_spec(tmp_path, layers=("act1", "act2", "act1")))
    assert [u.layer for u in units] == ["act1", "act2"]
    assert units[0].batch_id == "decompose|digits|act1"
    assert [u.seed for u in plan(_spec(tmp_path / "other", layers=("act2",)))] == [units[1].seed]
    minilm = plan(_spec(tmp_path, model="minilm", layers=("encoder.layer.3",)))
    assert minilm[0].layer == "transformer.encoder.layer.3"


def test_spec_validation(tmp_path):
    with pytest.raises(SpecError, match=r"set by the job per layer"):
        _spec(tmp_path, fit={"layer": "act1"})
    with pytest.raises(InvalidParameterError, match=r"unknown decomposition parameter 'epoch'"):
        _spec(tmp_path, fit={"epoch": 1})
    with pytest.raises(InvalidParameterError, match=r"model"):
        _spec(tmp_path, model="resnet")


def test_local_job_commits_every_layer_and_resumes(tmp_path):
    spec = _spec(tmp_path / "out", evaluate=True)
    first = run_explain_job(spec)
    assert first.summary["layer"].tolist() == ["act1", "act2"] and first.n_resumed == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["units"] == ["decompose|digits|act1", "decompose|digits|act2"]
    n_test = int(digits_data(0).is_test.sum())  # the 359 held-out digits
    for layer, shape in (("act1", (n_test, 8, 8)), ("act2", (n_test, 4, 4))):
        folder = tmp_path / "out" / "layers" / layer
        with np.load(folder / "maps.npz") as maps:
            assert maps["total"].shape == shape and maps["labels"].shape == (n_test,)
        assert (folder / "figures" / "sample_0.png").exists()
        assert (folder / "figures" / "curves.png").exists()
        methods = [r["method"] for r in json.loads((folder / "evaluation.json").read_text())]
        assert {"decision", "LayerGradCam", "IntegratedGradients"} <= set(methods)
    # a rerun keeps both committed layers and runs nothing
    again = run_explain_job(spec)
    assert again.n_resumed == 2
    assert again.summary.equals(first.summary)
    # an interrupted layer (no unit.json) is rerun, the other kept
    (tmp_path / "out" / "layers" / "act2" / "unit.json").unlink()
    third = run_explain_job(spec)
    assert third.n_resumed == 1
    with np.load(tmp_path / "out" / "layers" / "act2" / "maps.npz") as a:
        assert np.isfinite(a["total"]).all()
    # another spec in the same folder is refused
    with pytest.raises(SpecError, match=r"different explain job"):
        run_explain_job(_spec(tmp_path / "out", fit={"epochs": 2}))


@pytest.mark.ray
def test_ray_actors_give_the_in_process_maps(tmp_path, ray_local):
    from distmi.engine.ray_executor import RayExecutor

    spec_local = _spec(tmp_path / "local", layers=("act2",))
    spec_ray = _spec(tmp_path / "ray", layers=("act2",))
    run_explain_job(spec_local)
    res = run_explain_job(spec_ray, executor=RayExecutor(workers=1, cpus_per_worker=1.0))
    assert res.manifest["executor"] == "ray"
    with np.load(tmp_path / "local" / "layers" / "act2" / "maps.npz") as a, \
            np.load(tmp_path / "ray" / "layers" / "act2" / "maps.npz") as b:
        for name in ("total", "decision", "mask"):
            np.testing.assert_array_equal(a[name], b[name])
