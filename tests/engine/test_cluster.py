"""A simulated two-node cluster (``ray.cluster_utils.Cluster``): a node removed mid-job does
not change the results, which equal the in-process executor's."""

from __future__ import annotations

import pandas as pd
import pytest
from engine_data import tiny_spec

from distmi.jobs import run_job

pytestmark = pytest.mark.ray


def test_node_removed_mid_job(tiny_dataset, tmp_path):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from distmi.engine.ray_executor import RayExecutor

    small = {"batch_size": 2}  # 20 batches: plenty still queued when the node goes
    expected = run_job(tiny_spec(tiny_dataset, tmp_path / "local", scaling=small)).table
    if ray.is_initialized():  # the session's local Ray; `ray_local` restarts it when needed
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        ex = RayExecutor(workers=2, cpus_per_worker=0.5, retries=5, spread=True)
        removed, used = [], set()

        def remove_node(out):
            used.add(out.node_id)
            if not removed:
                victim = next(n for n in nodes if n.node_id == out.node_id)
                cluster.remove_node(victim)
                removed.append(victim.node_id)

        ex.on_output = remove_node
        res = run_job(tiny_spec(tiny_dataset, tmp_path / "r", scaling=small),
                      executor=ex)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert removed
    assert len(used - set(removed)) >= 1  # the rest ran on the surviving node
    pd.testing.assert_frame_equal(res.table, expected, check_exact=True)
