"""Results know their data: a re-captured dataset in the same folder runs again, and a resumed
run never mixes parts computed on two datasets."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from engine_data import make_activations, tiny_spec

from distmi.engine.executors import InProcessExecutor
from distmi.jobs import run_job
from distmi.reduce.commit import ResultStore
from distmi.store import open_dataset, write_dataset

KINDS = {"label": "categorical", "score": "continuous"}


def _capture(path, seed):
    layers, targets = make_activations(seed)
    return write_dataset(path, layers, targets, KINDS, model_id="tiny", block_units=4,
                         overwrite=True)


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


@pytest.fixture(scope="module")
def fresh_b(tmp_path_factory):
    """The job run from scratch on dataset B (seed 1) in its own folders."""
    root = tmp_path_factory.mktemp("fresh")
    _capture(root / "data", seed=1)
    return run_job(tiny_spec(root / "data", root / "out"))


def test_a_recaptured_dataset_runs_again(tmp_path, fresh_b):
    data, out = tmp_path / "data", tmp_path / "out"
    ds_a = _capture(data, seed=0)
    spec = tiny_spec(data, out)
    first = run_job(spec)
    assert first.manifest["dataset_hash"] == ds_a.manifest_hash
    assert run_job(spec).batches_run == 0  # same dataset: committed results are returned

    ds_b = _capture(data, seed=1)  # same folder, same job file, new content
    assert ds_b.manifest_hash != ds_a.manifest_hash
    messages = []
    second = run_job(spec, log=messages.append)
    assert (second.batches_run, second.batches_resumed) == (10, 0)
    assert second.manifest["dataset_hash"] == ds_b.manifest_hash
    assert any("another dataset" in m and "computing again" in m for m in messages)
    assert not first.table["estimate"].equals(second.table["estimate"])
    pd.testing.assert_frame_equal(second.table, fresh_b.table, check_exact=True)
    job = json.loads((out / "job.json").read_text())
    assert job["dataset_manifest_sha256"] == ds_b.manifest_hash


def test_resume_never_mixes_parts_of_two_datasets(tmp_path, fresh_b):
    data, out = tmp_path / "data", tmp_path / "out"
    _capture(data, seed=0)
    spec = tiny_spec(data, out)
    with pytest.raises(KeyboardInterrupt):
        run_job(spec, executor=_Crash(after=4))
    parts = sorted((out / "parts").glob("*.parquet"))
    assert len(parts) == 4
    ds_a_hash = open_dataset(data).manifest_hash
    for p in parts:
        meta = pq.read_schema(p).metadata
        assert meta[b"distmi.dataset_hash"].decode() == ds_a_hash

    _capture(data, seed=1)  # re-captured while the run was down
    resumed = run_job(spec)
    assert (resumed.batches_resumed, resumed.batches_run) == (0, 10)
    pd.testing.assert_frame_equal(resumed.table, fresh_b.table, check_exact=True)

    # and the other way: interrupted on B, resumed on B, keeps B's parts
    with pytest.raises(KeyboardInterrupt):
        run_job(spec, executor=_Crash(after=3), overwrite=True)
    resumed = run_job(spec)
    assert (resumed.batches_resumed, resumed.batches_run) == (3, 7)
    pd.testing.assert_frame_equal(resumed.table, fresh_b.table, check_exact=True)


def test_parts_without_a_dataset_hash_are_recomputed(tmp_path):
    store = ResultStore(tmp_path, "s" * 64, dataset_hash="d" * 64)
    legacy = ResultStore(tmp_path, "s" * 64)  # a part written before results knew their data
    store.begin({})
    legacy.write_part("k1", "b1", {"layer": ["a"], "estimate": [0.1]}, {})
    store.write_part("k2", "b2", {"layer": ["a"], "estimate": [0.2]}, {})
    other = ResultStore(tmp_path, "s" * 64, dataset_hash="e" * 64)
    other.write_part("k3", "b3", {"layer": ["a"], "estimate": [0.3]}, {})
    assert store.done_batches({"k1": "b1", "k2": "b2", "k3": "b3"}) == {"k2"}
    assert sorted(p.stem for p in (tmp_path / "parts").glob("*.parquet")) == ["k2"]
    assert store.holds({"spec_hash": "s" * 64, "dataset_hash": "d" * 64})
    assert not store.holds({"spec_hash": "s" * 64, "dataset_hash": "e" * 64})
    assert not store.holds({"spec_hash": "s" * 64})  # unknown dataset: not trusted
    assert store.holds({"spec_hash": "s" * 64, "dataset": {"manifest_sha256": "d" * 64}})


def test_workers_refuse_a_dataset_recaptured_after_planning(tmp_path):
    """A re-capture between planning and a work unit fails the unit with the reason, instead of
    mixing two datasets' activations in one table."""
    from distmi.core.errors import StoreError
    from distmi.jobs.runner import plan_job, task_config

    data = tmp_path / "acts"
    _capture(data, seed=0)
    spec = tiny_spec(data, tmp_path / "r")
    ds, plan = plan_job(spec)
    task = task_config(spec, ds.uri, ds.manifest_hash)
    _capture(data, seed=1)  # re-captured while the job is queued
    with pytest.raises(StoreError, match="changed: its manifest sha256"):
        list(InProcessExecutor().run(plan.batches[:1], task))
    _capture(data, seed=0)  # the planned dataset back: the unit runs
    assert len(list(InProcessExecutor().run(plan.batches[:1], task))) == 1
