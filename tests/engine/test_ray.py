"""Ray executor on the session's local Ray: same table as in-process, crashes, errors, GPUs."""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest
from engine_data import REAL_ESTIMATORS, tiny_spec

from distmi.core.errors import TooFewSamplesError
from distmi.jobs import run_job

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def local_table(tiny_dataset, tmp_path_factory):
    return run_job(tiny_spec(tiny_dataset, tmp_path_factory.mktemp("loc") / "r")).table


def _ray_executor(**kw):
    from distmi.engine.ray_executor import RayExecutor

    return RayExecutor(**{"workers": 2, "cpus_per_worker": 0.5, "retries": 3, **kw})


def test_two_actors_give_the_in_process_table(ray_local, local_table, tiny_dataset, tmp_path):
    ex = _ray_executor(gpus_per_worker=1.0)  # a CPU-only cluster: must not wait for GPUs
    with pytest.warns(RuntimeWarning, match=r"reports no GPUs; running on CPU"):
        res = run_job(tiny_spec(tiny_dataset, tmp_path / "r"), executor=ex)
    assert res.manifest["executor"] == "ray"
    pd.testing.assert_frame_equal(res.table, local_table, check_exact=True)


def test_worker_killed_mid_job_does_not_change_results(ray_local, local_table, tiny_dataset,
                                                       tmp_path):
    ex = _ray_executor()
    killed = []

    def kill_once(out):
        if not killed:
            killed.append(out.worker)
            os.kill(int(out.worker.removeprefix("pid")), signal.SIGKILL)

    ex.on_output = kill_once
    res = run_job(tiny_spec(tiny_dataset, tmp_path / "r"), executor=ex)
    assert killed
    pd.testing.assert_frame_equal(res.table, local_table, check_exact=True)


def test_distmi_errors_keep_their_type_through_ray(ray_local, tiny_dataset, tmp_path):
    """An error raised inside an actor (20 folds need more samples per class than the label
    has) reaches the caller with its class and message. Bad parameter names and values fail
    earlier, before any work is planned (``check_estimator``)."""
    spec = tiny_spec(tiny_dataset, tmp_path / "r", estimator={"params": {"n_folds": 20}})
    with pytest.raises(TooFewSamplesError, match=r"GMM-MI with 20 folds"):
        run_job(spec, executor=_ray_executor())


@pytest.mark.parametrize("name", sorted(REAL_ESTIMATORS))
def test_real_settings_on_two_actors_equal_in_process(ray_local, tiny_dataset, tmp_path, name):
    """GMM with K selection over 3 inits, KSG and SMILE: 2 Ray actors commit the in-process
    table bit for bit."""
    estimator = REAL_ESTIMATORS[name]
    local = run_job(tiny_spec(tiny_dataset, tmp_path / "local", estimator=estimator)).table
    res = run_job(tiny_spec(tiny_dataset, tmp_path / "ray", estimator=estimator),
                  executor=_ray_executor())
    pd.testing.assert_frame_equal(res.table, local, check_exact=True)
