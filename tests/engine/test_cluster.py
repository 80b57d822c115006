"""Simulated multi-node clusters (``ray.cluster_utils.Cluster``, one process tree per node).

- A node removed mid-job does not change the results, which equal the in-process executor's.
- Nodes whose processes run from other working directories (as on separate machines, where a
  relative path means something else on every node) read a dataset on S3-compatible storage
  (moto's server) and a local dataset given by a relative path: the driver resolves locations
  once, so every node opens the same bytes.

No default port is used (other Ray instances may run on the machine): the head has no dashboard
and every node's dashboard agent gets a free port.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager

import pandas as pd
import pytest
from engine_data import make_activations, tiny_spec
from s3_server import free_port, moto_server, new_bucket, s3_env

from distmi.jobs import load_results, run_job

pytestmark = pytest.mark.ray


def _node_args(num_cpus: float) -> dict:
    return {"num_cpus": num_cpus, "dashboard_agent_listen_port": free_port()}


@contextmanager
def _cluster(ray, node_dirs: list | None = None, n_nodes: int = 2):
    """A head (no CPUs, no dashboard) plus worker nodes started from ``node_dirs``."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # the session's local Ray; `ray_local` restarts it when needed
        ray.shutdown()
    here = os.getcwd()
    cluster = Cluster(initialize_head=True,
                      head_node_args={**_node_args(0), "include_dashboard": False})
    nodes = []
    try:
        for i in range(n_nodes):
            if node_dirs is not None:
                os.chdir(node_dirs[i])  # the node's processes inherit this working directory
            nodes.append(cluster.add_node(**_node_args(1)))
        os.chdir(here)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        yield cluster, nodes
    finally:
        os.chdir(here)
        ray.shutdown()
        cluster.shutdown()


def test_node_removed_mid_job(tiny_dataset, tmp_path):
    ray = pytest.importorskip("ray")
    from distmi.engine.ray_executor import RayExecutor

    small = {"batch_size": 2}  # 20 batches: plenty still queued when the node goes
    expected = run_job(tiny_spec(tiny_dataset, tmp_path / "local", scaling=small)).table
    with _cluster(ray) as (cluster, nodes):
        ex = RayExecutor(workers=2, cpus_per_worker=0.5, retries=5, spread=True)
        removed, used = [], set()

        def remove_node(out):
            used.add(out.node_id)
            if not removed:
                victim = next(n for n in nodes if n.node_id == out.node_id)
                cluster.remove_node(victim)
                removed.append(victim.node_id)

        ex.on_output = remove_node
        res = run_job(tiny_spec(tiny_dataset, tmp_path / "r", scaling=small), executor=ex)
    assert removed
    assert len(used - set(removed)) >= 1  # the rest ran on the surviving node
    pd.testing.assert_frame_equal(res.table, expected, check_exact=True)


def test_nodes_in_other_working_directories_share_s3_and_absolute_paths(
        tiny_dataset, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    pytest.importorskip("moto")
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from distmi.engine.ray_executor import RayExecutor
    from distmi.store import write_dataset

    expected = run_job(tiny_spec(tiny_dataset, tmp_path / "local")).table
    driver, node_dirs = tmp_path / "driver", [tmp_path / "node-a", tmp_path / "node-b"]
    for d in (driver, *node_dirs):
        d.mkdir()
    shutil.copytree(tiny_dataset, driver / "data" / "tiny")  # reachable as data/tiny from driver
    monkeypatch.chdir(driver)
    with moto_server() as endpoint:
        for key, value in s3_env(endpoint).items():  # before the nodes start: they inherit it
            monkeypatch.setenv(key, value)
        bucket = new_bucket(endpoint)
        layers, targets = make_activations()
        dataset_uri = f"s3://{bucket}/datasets/tiny"
        write_dataset(dataset_uri, layers, targets,
                      {"label": "categorical", "score": "continuous"}, model_id="tiny",
                      block_units=4)
        with _cluster(ray, node_dirs) as (_cluster_obj, nodes):

            @ray.remote(num_cpus=0.1)
            def probe():
                return os.getcwd(), os.path.exists("data/tiny/manifest.json")

            seen = [ray.get(probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                n.node_id, soft=False)).remote()) for n in nodes]
            assert sorted(cwd for cwd, _ in seen) == sorted(str(d) for d in node_dirs)
            assert not any(found for _, found in seen)  # the relative path is not there

            ex = RayExecutor(workers=2, cpus_per_worker=0.5, spread=True)
            nodes_used = set()
            ex.on_output = lambda out: nodes_used.add(out.node_id)
            s3_run = run_job(tiny_spec(dataset_uri, f"s3://{bucket}/results/tiny"), executor=ex)
            assert nodes_used == {n.node_id for n in nodes}  # both nodes read from S3
            pd.testing.assert_frame_equal(s3_run.table, expected, check_exact=True)

            ex = RayExecutor(workers=2, cpus_per_worker=0.5, spread=True)
            rel_run = run_job(tiny_spec("data/tiny", "out/tiny"), executor=ex)
            pd.testing.assert_frame_equal(rel_run.table, expected, check_exact=True)
            assert (driver / "out" / "tiny" / "manifest.json").is_file()
            assert rel_run.manifest["dataset"]["path"] == str(driver / "data" / "tiny")
        table, _ = load_results(f"s3://{bucket}/results/tiny", verify=True)
        pd.testing.assert_frame_equal(table, expected, check_exact=True)
