"""Cluster manifests, checked offline: the launcher YAML against ray's schema, the KubeRay
RayCluster/RayJob against the fields the operator requires."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
CLUSTER = ROOT / "cluster"


def _docs(name):
    return list(yaml.safe_load_all((CLUSTER / name).read_text()))


def test_launcher_config_passes_rays_schema():
    pytest.importorskip("ray")
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(config))  # what `ray up` does; raises on schema violations
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"]["CPU"] == 0
    assert any(t["resources"].get("GPU", 0) > 0 for t in types.values())
    assert any(t["resources"].get("GPU", 0) == 0 and t["resources"]["CPU"] > 0
               for t in types.values())
    head_cmd = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_cmd


def _check_cluster_spec(spec):
    head = spec["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP"  # never a LoadBalancer for the dashboard
    assert head["template"]["spec"]["containers"][0]["image"]
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert {"cpu", "gpu"} <= set(groups)
    for g in groups.values():
        assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        assert "rayStartParams" in g
        c = g["template"]["spec"]["containers"][0]
        assert c["name"] and c["image"] and c["resources"]["limits"]["cpu"]
    gpu = groups["gpu"]
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == gpu["rayStartParams"]["num-gpus"] == "1"
    assert "nvidia.com/gpu" not in groups["cpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_raycluster_manifest():
    cluster, policy = _docs("kuberay-raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert cluster["metadata"]["name"] and cluster["spec"]["rayVersion"]
    _check_cluster_spec(cluster["spec"])
    assert policy["kind"] == "NetworkPolicy"
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert 8265 in ports


def test_rayjob_manifest_runs_a_bundled_job():
    (job,) = _docs("kuberay-rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    _check_cluster_spec(spec["rayClusterSpec"])
    argv = shlex.split(spec["entrypoint"])
    assert argv[:5] == ["python", "-m", "distmi.cli", "run", argv[4]]
    assert (ROOT / argv[4]).is_file() and argv[-2:] == ["--address", "auto"]
    env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert env["working_dir"] == "/app"


def test_launcher_validation_catches_a_broken_config():
    pytest.importorskip("ray")
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["resources"]["GPU"] = "one"
    with pytest.raises(Exception, match=r"one"):
        validate_config(prepare_config(config))
