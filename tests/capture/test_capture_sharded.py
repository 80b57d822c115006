"""Sharded capture: shards on Ray actors equal a one-process capture (every byte), resume after
a killed actor or an interrupted driver keeps committed shards, URIs, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from distmi.core.errors import InvalidInputError, StoreError  # noqa: E402
from distmi.engine.capture_run import plan_capture_shards, run_capture  # noqa: E402
from distmi.engine.requests import ExecutorSettings  # noqa: E402
from distmi.store import capture, open_dataset  # noqa: E402
from distmi.store.capture_inputs import InputsRef  # noqa: E402
from distmi.store.capture_models import resolve_model  # noqa: E402
from distmi.store.capture_session import CaptureRequest  # noqa: E402

RAY = ExecutorSettings(executor="ray", workers=2, cpus_per_worker=0.5, retries=2)

import capture_factories  # noqa: E402

try:  # Ray workers cannot import this test folder: its factories travel by value
    from ray import cloudpickle as _ray_pickle

    _ray_pickle.register_pickle_by_value(capture_factories)
except ImportError:  # pragma: no cover
    pass


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _source(name="mlp", **kw):
    """A factory model; its target is the function itself (pickled by value for Ray)."""
    source = resolve_model(f"capture_factories:{name}", **kw)
    return dataclasses.replace(source, target=getattr(capture_factories, name))


def _mlp_request(model="mlp", n=500, layers=("0", "2"), **kw):
    return CaptureRequest(
        model=_source(model, **kw.pop("model_kw", {})),
        inputs=InputsRef("factory", capture_factories.mlp_inputs, {"n": n}),
        layers=layers, pooling="none", batch_size=32, rows_per_part=100, **kw)


def test_shards_follow_the_parts_of_a_single_capture():
    shards = plan_capture_shards(500, 32, 100)
    assert [(s.input_start, s.input_stop) for s in shards] == [
        (0, 128), (128, 256), (256, 384), (384, 500)]  # 100 rows -> 4 full batches
    counts = np.arange(10)
    shards = plan_capture_shards(10, 2, 4, counts)
    assert [(s.row_start, s.n_rows) for s in shards] == [(0, 6), (6, 22), (28, 17)]


@pytest.mark.ray
def test_two_ray_actors_write_the_dataset_of_one_capture_call(ray_local, tmp_path):
    from capture_factories import mlp, mlp_inputs

    single = capture(mlp(), mlp_inputs(500), ["0", "2"], tmp_path / "single", batch_size=32,
                     rows_per_part=100, model_id="mlp")
    out = run_capture(_mlp_request(model_kw={"model_id": "mlp"}), tmp_path / "ray",
                      settings=RAY)
    assert out.executor == "ray" and out.shards_run == 4
    assert len(out.worker_peak_rss_mb()) == 2  # both actors captured shards
    assert _files(tmp_path / "ray") == _files(tmp_path / "single")  # manifest included
    ds = out.dataset
    assert ds.dataset_id == single.dataset_id and ds.manifest_hash == single.manifest_hash
    assert [p.values_sha256 for p in ds.layer_info("2").parts] == [
        p.values_sha256 for p in single.layer_info("2").parts]
    assert ds.verify() > 0
    local = run_capture(_mlp_request(model_kw={"model_id": "mlp"}), tmp_path / "local")
    assert local.executor == "local" and _files(tmp_path / "local") == _files(tmp_path / "single")
    again = run_capture(_mlp_request(model_kw={"model_id": "mlp"}), tmp_path / "ray",
                        settings=RAY)
    assert again.shards_run == 0 and again.dataset.manifest_hash == ds.manifest_hash


@pytest.mark.ray
def test_text_tokens_on_ray_equal_in_process(ray_local, tmp_path):
    req = CaptureRequest(resolve_model("bert-tiny-random"),
                         InputsRef("set", "concept_texts", {"n": 120}), ("encoder.layer.*",),
                         pooling="none", batch_size=16, rows_per_part=40, threads=1)
    local = run_capture(req, tmp_path / "local")
    run_capture(req, tmp_path / "ray", settings=RAY)
    assert local.dataset.layer_info("encoder.layer.1").pooling == "tokens"
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")


@pytest.mark.ray
def test_a_killed_actor_loses_only_its_shard(ray_local, tmp_path):
    reference = run_capture(_mlp_request("dying_mlp", layers=("body.0", "body.2"),
                                         model_kw={"params": {"marker": str(tmp_path / "no")}}),
                            tmp_path / "ref")
    marker = tmp_path / "kill-once"
    marker.write_text("")
    req = _mlp_request("dying_mlp", layers=("body.0", "body.2"),
                       model_kw={"params": {"marker": str(tmp_path / "no")}})
    # the same model and data, but this run's actors see the marker: one exits mid-shard
    req = dataclasses.replace(req, model=dataclasses.replace(req.model, params={"marker": str(marker)}))
    from distmi.engine.ray_capture import RayCapturePool

    pool = RayCapturePool(req, workers=2, cpus_per_worker=0.5, retries=2)
    out = run_capture(req, tmp_path / "run", pool=pool)
    pool.close()
    assert not marker.exists() and pool.n_retried == 1  # one actor died, its shard re-ran
    assert out.shards_run == 4
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")
    assert not list((tmp_path / "run").rglob(".*.inprogress"))
    assert reference.dataset.manifest_hash == out.dataset.manifest_hash


def test_an_interrupted_driver_resumes_with_the_committed_shards(tmp_path):
    req = _mlp_request()
    reference = run_capture(req, tmp_path / "ref")
    seen = []

    def stop_after_two_shards(done, total):
        seen.append(done)
        if done > 256:  # in the first batch of shard 2: shards 0 and 1 are committed
            raise KeyboardInterrupt("simulated Ctrl-C")

    with pytest.raises(KeyboardInterrupt):
        run_capture(req, tmp_path / "run", progress=stop_after_two_shards)
    assert not (tmp_path / "run" / "manifest.json").exists()
    with pytest.raises(StoreError, match="unfinished capture"):
        open_dataset(tmp_path / "run")
    logs = []
    out = run_capture(req, tmp_path / "run", log=logs.append)
    assert (out.shards_resumed, out.shards_run) == (2, 2)
    assert any("2 of 4 shards are already committed" in m for m in logs)
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")
    assert out.dataset.manifest_hash == reference.dataset.manifest_hash


def test_other_settings_on_an_unfinished_capture_are_refused_or_replaced(tmp_path):
    req = _mlp_request()

    def stop(done, total):
        if done >= 128:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_capture(req, tmp_path / "run", progress=stop)
    other = dataclasses.replace(req, layers=("2",))
    with pytest.raises(StoreError, match="unfinished capture with other settings"):
        run_capture(other, tmp_path / "run")
    logs = []
    out = run_capture(other, tmp_path / "run", replace=True, log=logs.append)
    assert out.dataset.layers == ["2"] and out.shards_resumed == 0
    assert any("capturing it again" in m for m in logs)


def test_capture_call_refuses_to_resume_a_sharded_capture_with_gaps(tmp_path):
    import json

    from capture_factories import mlp, mlp_inputs

    def stop(done, total):
        if done > 256:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_capture(_mlp_request(), tmp_path / "run", progress=stop)
    state_file = tmp_path / "run" / "_capture_state.json"
    state = json.loads(state_file.read_text())
    state["parts"] = state["parts"][1:]  # as if shard 1 finished before shard 0
    state_file.write_text(json.dumps(state))
    with pytest.raises(StoreError, match=r"committed parts \[1\] are not contiguous; resume it "
                       r"with the sharded capture"):
        capture(mlp(), mlp_inputs(500), ["0", "2"], tmp_path / "run", batch_size=32,
                rows_per_part=100)
    out = run_capture(_mlp_request(), tmp_path / "run")  # the sharded capture fills the gap
    assert (out.shards_resumed, out.shards_run) == (1, 3)
    single = capture(mlp(), mlp_inputs(500), ["0", "2"], tmp_path / "single", batch_size=32,
                     rows_per_part=100)
    assert out.dataset.dataset_id == single.dataset_id


def test_a_factory_with_different_weights_per_process_is_refused(tmp_path):
    from distmi.engine.capture_run import LocalCapturePool

    req = CaptureRequest(resolve_model("capture_factories:unseeded_mlp"),
                         InputsRef("factory", "capture_factories:mlp_inputs", {"n": 64}),
                         ("0",), pooling="none", batch_size=32, rows_per_part=32)
    pool = LocalCapturePool(req)
    probe = pool.probe()
    pool._session = None  # a second process builds the model again: other random weights
    from distmi.store.capture_session import CaptureSession, ShardTask

    session = CaptureSession(req)
    task = ShardTask(str(tmp_path / "x"), "id", probe.specs, 0, 0, 32, 0, 32,
                     probe.weights_sha256)
    with pytest.raises(InvalidInputError, match=r"does not build the same weights in every "
                       r"process \(seed its random initialisation"):
        session.run_shard(task)


def test_capture_to_s3(tmp_path, monkeypatch):
    pytest.importorskip("moto")
    from capture_factories import mlp, mlp_inputs
    from s3_server import moto_server, new_bucket, s3_env

    with moto_server() as endpoint:
        for key, value in s3_env(endpoint).items():
            monkeypatch.setenv(key, value)
        uri = f"s3://{new_bucket(endpoint)}/acts/mlp"
        out = run_capture(_mlp_request(model_kw={"model_id": "mlp"}), uri)
        single = capture(mlp(), mlp_inputs(500), ["0", "2"], tmp_path / "single",
                         batch_size=32, rows_per_part=100, model_id="mlp")
        ds = open_dataset(uri)
        assert ds.manifest_hash == single.manifest_hash and ds.verify() > 0
        np.testing.assert_array_equal(ds.read_layer("2"), single.read_layer("2"))
        assert out.dataset.uri == uri


def test_gpu_actors_only_on_clusters_with_gpus():
    pytest.importorskip("ray")
    from distmi.core.errors import InvalidParameterError
    from distmi.engine.ray_capture import _gpus_for

    assert _gpus_for("auto", 0.0, 0.0) == 0.0  # CPU-only cluster: never ask for GPUs
    assert _gpus_for("auto", 0.0, 4.0) == 1.0
    assert _gpus_for("auto", 0.5, 4.0) == 0.5
    assert _gpus_for("cpu", 1.0, 4.0) == 0.0
    with pytest.raises(InvalidParameterError, match=r"asks for device 'cuda' but the Ray cluster "
                       r"reports no GPUs"):
        _gpus_for("cuda", 0.0, 0.0)


@pytest.mark.ray
def test_cuda_on_a_cpu_only_ray_cluster_fails_at_once(ray_local, tmp_path):
    from distmi.core.errors import InvalidParameterError

    req = dataclasses.replace(_mlp_request(), device="cuda")
    with pytest.raises(InvalidParameterError, match="reports no GPUs"):
        run_capture(req, tmp_path / "x", settings=RAY)
