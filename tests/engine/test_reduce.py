"""Accumulators merge in any split and order; the in-process executor retries flaky batches;
sliced MI runs as a layer-target job."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from engine_data import tiny_spec

from distmi.engine.executors import EngineError, InProcessExecutor
from distmi.engine.plan import make_plan
from distmi.engine.worker import BatchWorker
from distmi.estimators.registry import MethodSpec, available_methods, get_method, register_method
from distmi.jobs import run_job
from distmi.jobs.runner import task_config
from distmi.reduce import AttributionAccumulator
from distmi.store import open_dataset


def test_any_split_then_merge_equals_one_pass(tiny_dataset, tmp_path):
    spec = tiny_spec(tiny_dataset, tmp_path / "r", n_bootstrap=0, null_permutations=0)
    plan = make_plan(spec.plan_request(), open_dataset(tiny_dataset))
    worker = BatchWorker(task_config(spec, str(tiny_dataset)))
    outs = [worker.run(b).columns for b in plan.batches]
    one = AttributionAccumulator()
    for cols in outs:
        one.add(cols)
    rng = np.random.default_rng(0)
    for _ in range(3):
        order = rng.permutation(len(outs))
        cut = int(rng.integers(1, len(outs)))
        left, right = AttributionAccumulator(), AttributionAccumulator()
        for k in order[:cut]:
            left.add(outs[k])
        for k in order[cut:]:
            right.add(outs[k])
        right.add(outs[order[0]])  # a batch delivered twice (a retried task) is not double counted
        pd.testing.assert_frame_equal(right.merge(left).to_frame(), one.to_frame())
    assert len(one) == plan.n_pairs


_calls = {"n": 0}


def _flaky_estimate(x, y, **kw):
    _calls["n"] += 1
    if _calls["n"] == 1:
        raise OSError("transient read failure")
    return get_method("gmm").estimate(x, y, **kw)


def test_in_process_executor_retries_non_distmi_errors(tiny_dataset, tmp_path):
    register_method(MethodSpec("flaky_gmm_test", _flaky_estimate), overwrite=True)
    spec = tiny_spec(tiny_dataset, tmp_path / "r", layers=["b"], targets=["score"],
                     estimator={"method": "flaky_gmm_test"})
    ex = InProcessExecutor(retries=1)
    res = run_job(spec, executor=ex)
    assert ex.n_retried == 1 and (res.table.status == "ok").all()
    _calls["n"] = 0
    with pytest.raises(EngineError, match=r"failed 1 time\(s\); last error: OSError"):
        run_job(tiny_spec(tiny_dataset, tmp_path / "r2", layers=["b"], targets=["score"],
                          estimator={"method": "flaky_gmm_test"}), executor=InProcessExecutor())


def test_sliced_layer_target_job(tiny_dataset, tmp_path):
    if "sliced" not in available_methods():
        pytest.skip("method 'sliced' is not registered in this checkout")
    spec = tiny_spec(tiny_dataset, tmp_path / "r", pairs="layer-target", targets=["score"],
                     estimator={"method": "sliced", "params": {}}, n_slices=32, n_bootstrap=0)
    t = run_job(spec).table
    assert t.unit.tolist() == [-1, -1] and t.method.eq("sliced").all()
    # layer a holds unit 1 = N(0,1) + 0.9 * score: clearly above the permutation null
    row = t.set_index("layer").loc["a"]
    assert row.estimate - row.null_mean > 2 * row["std"]
