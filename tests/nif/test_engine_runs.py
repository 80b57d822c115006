"""Link estimation on the engine: same numbers in-process and on Ray actors, resume, no stale reuse."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

import distmi
from distmi.core.errors import SpecError

SETTINGS = dict(n_bootstrap=4, n_permutations=199, random_state=3, batch_size=48)


def _same(a, b):
    pd.testing.assert_frame_equal(a.links, b.links)
    pd.testing.assert_frame_equal(a.neurons, b.neurons)
    pd.testing.assert_frame_equal(a.attribution, b.attribution)
    np.testing.assert_array_equal(a.attribution_replicates, b.attribution_replicates)


@pytest.fixture(scope="module")
def local_flow(iris_bundle, tmp_path_factory):
    x, y = iris_bundle.train
    work = tmp_path_factory.mktemp("nif-local")
    return distmi.nif.information_flow(iris_bundle.model, x, y, work_dir=str(work), **SETTINGS)


def test_ray_actors_give_the_same_flow(iris_bundle, local_flow, ray_local):
    x, y = iris_bundle.train
    flow = distmi.nif.information_flow(iris_bundle.model, x, y, executor="ray", workers=2,
                                       **SETTINGS)
    assert flow.info["engine"]["executor"] == "ray"
    _same(flow, local_flow)


def test_same_seed_same_numbers_other_seed_other_numbers(iris_bundle, local_flow):
    x, y = iris_bundle.train
    again = distmi.nif.information_flow(iris_bundle.model, x, y, **{**SETTINGS,
                                                                     "batch_size": 7})
    _same(again, local_flow)  # work-unit size never changes the numbers
    other = distmi.nif.information_flow(iris_bundle.model, x, y, **{**SETTINGS,
                                                                     "random_state": 4})
    assert not np.allclose(other.links["ci_low"], local_flow.links["ci_low"])


def test_resume_after_an_interruption(iris_bundle, local_flow, tmp_path):
    x, y = iris_bundle.train
    work = tmp_path / "work"
    first = distmi.nif.information_flow(iris_bundle.model, x, y, work_dir=str(work), **SETTINGS)
    # simulate a run stopped half way: drop the manifests and some committed parts
    for job in ("links", "redundancy"):
        (work / job / "manifest.json").unlink()
        parts = sorted((work / job / "parts").iterdir())
        for f in parts[: len(parts) // 2]:
            f.unlink()
    resumed = distmi.nif.information_flow(iris_bundle.model, x, y, work_dir=str(work),
                                          **SETTINGS)
    jobs = resumed.info["engine"]["jobs"]
    assert jobs["links"]["batches_resumed"] > 0 and jobs["links"]["batches_run"] > 0
    assert jobs["classes"]["batches_run"] == 0  # committed job: nothing recomputed
    _same(resumed, first)
    _same(resumed, local_flow)


def test_results_of_other_data_are_never_reused(iris_bundle, tmp_path):
    x, y = iris_bundle.train
    work = tmp_path / "work"
    distmi.nif.information_flow(iris_bundle.model, x, y, work_dir=str(work), **SETTINGS)
    with pytest.raises(SpecError, match="holds a NIF run of other data or settings"):
        distmi.nif.information_flow(iris_bundle.model, x[:100], y[:100], work_dir=str(work),
                                    **SETTINGS)
    fresh = distmi.nif.information_flow(iris_bundle.model, x[:100], y[:100],
                                        work_dir=str(work), overwrite=True, **SETTINGS)
    assert fresh.settings["n_samples"] == 100
    shutil.rmtree(work)
