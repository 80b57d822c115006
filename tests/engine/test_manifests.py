"""Cluster manifests, checked offline: the launcher YAML against the schema shipped in the ray
wheel; the KubeRay RayCluster/RayJob structurally (field names of the ray.io/v1 CRDs, required
fields, images, token auth, storage, NetworkPolicies); the image's Dockerfile and .dockerignore;
and that all of them agree with each other, with requirements/constraints.txt and with
cluster/README.md."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from distmi.core.version import __version__

ROOT = Path(__file__).parents[2]
CLUSTER = ROOT / "cluster"

# Field names of the ray.io/v1 CRDs (KubeRay 1.6 API reference) that these manifests may use.
RAYCLUSTER_SPEC = {"authOptions", "autoscalerOptions", "enableInTreeAutoscaling",
                   "gcsFaultToleranceOptions", "headGroupSpec", "headServiceAnnotations",
                   "managedBy", "rayVersion", "suspend", "workerGroupSpecs", "upgradeStrategy"}
HEAD_GROUP = {"enableIngress", "headService", "rayStartParams", "serviceType", "template"}
WORKER_GROUP = {"groupName", "idleTimeoutSeconds", "maxReplicas", "minReplicas", "numOfHosts",
                "rayStartParams", "replicas", "scaleStrategy", "suspend", "template"}
RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "clusterSelector", "deletionStrategy",
               "entrypoint", "entrypointNumCpus", "entrypointNumGpus", "entrypointResources",
               "jobId", "managedBy", "metadata", "rayClusterSpec", "runtimeEnvYAML",
               "shutdownAfterJobFinishes", "submissionMode", "submitterConfig",
               "submitterPodTemplate", "suspend", "ttlSecondsAfterFinished"}
AUTH_OPTIONS = {"mode", "secretName", "enableK8sTokenAuth"}
CLIENT_PORT = 10001  # Ray client: never reachable from outside the cluster


def _pin(name: str) -> str:
    text = (ROOT / "requirements" / "constraints.txt").read_text()
    return re.search(rf"^{name}==(\S+)$", text, re.M).group(1)


RAY = _pin("ray")
IMAGE_CPU = f"distmi:{__version__}-ray{RAY}-py311-cpu"
IMAGE_GPU = f"distmi:{__version__}-ray{RAY}-py311-gpu"


def _docs(name):
    return [d for d in yaml.safe_load_all((CLUSTER / name).read_text()) if d]


def _by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


# ---- the Ray cluster launcher ---------------------------------------------------------------
def _launcher():
    return yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())


def test_launcher_config_passes_rays_schema():
    pytest.importorskip("ray")
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _launcher()
    validate_config(prepare_config(config))  # what `ray up` does; raises on schema violations
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"]["CPU"] == 0
    assert any(t["resources"].get("GPU", 0) > 0 for t in types.values())
    assert any(t["resources"].get("GPU", 0) == 0 and t["resources"]["CPU"] > 0
               for t in types.values())


def test_launcher_nodes_run_python_311_and_token_auth():
    config = _launcher()
    images = [config["docker"]["image"]] + [
        t["docker"]["worker_image"] for t in config["available_node_types"].values()
        if "docker" in t]
    for image in images:
        m = re.fullmatch(r"rayproject/ray:(\d+\.\d+\.\d+)-py3(\d+)-(cpu|gpu)", image)
        assert m, image
        assert m.group(1) == RAY and int(m.group(2)) >= 11
    gpu = config["available_node_types"]["gpu_worker"]
    assert gpu["docker"]["worker_image"].endswith("-gpu")
    assert "--gpus all" in gpu["docker"]["worker_run_options"]
    for commands in (config["setup_commands"], gpu["worker_setup_commands"]):
        assert any("sys.version_info >= (3, 11)" in c for c in commands)
        assert any("constraints.txt" in c for c in commands)
    assert any("whl/cpu" in c for c in config["setup_commands"])
    assert any("whl/cu" in c for c in gpu["worker_setup_commands"])
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    for cmds in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        start = next(c for c in cmds if "ray start" in c)
        assert "RAY_AUTH_MODE=token" in start
    assert any(k.endswith(".ray/auth_token") for k in config["file_mounts"])
    for t in config["available_node_types"].values():  # S3 through an instance role
        assert "IamInstanceProfile" in t["node_config"]


def test_launcher_validation_catches_a_broken_config():
    pytest.importorskip("ray")
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _launcher()
    config["available_node_types"]["gpu_worker"]["resources"]["GPU"] = "one"
    with pytest.raises(Exception, match=r"one"):
        validate_config(prepare_config(config))


# ---- the image -------------------------------------------------------------------------------
def test_dockerfile_builds_on_the_official_ray_image_with_python_311():
    text = (CLUSTER / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    assert args["RAY_VERSION"] == RAY and args["PYTHON"] == "py311" and args["FLAVOR"] == "cpu"
    assert re.search(r"^FROM rayproject/ray:\$\{RAY_VERSION\}-\$\{PYTHON\}-\$\{FLAVOR\}$", text,
                     re.M)
    assert "-c /app/requirements/constraints.txt" in text and "sys.version_info >= (3, 11)" in text
    assert f"-t {IMAGE_CPU} ." in text and f"-t {IMAGE_GPU} ." in text
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert {".git", ".venv", "out", "tests"} <= set(ignored)
    for src in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.M):
        for path in src.split():
            assert (ROOT / path).exists(), path
            assert path.split("/")[0] not in ignored, path  # the build context has it


# ---- KubeRay -----------------------------------------------------------------------------------
def _containers(template):
    return template["spec"]["containers"]


def _check_cluster_spec(spec, pod_labels):
    assert set(spec) <= RAYCLUSTER_SPEC, set(spec) - RAYCLUSTER_SPEC
    assert spec["rayVersion"] == RAY
    auth = spec["authOptions"]
    assert set(auth) <= AUTH_OPTIONS and auth["mode"] == "token" and auth["secretName"]
    head = spec["headGroupSpec"]
    assert set(head) <= HEAD_GROUP, set(head) - HEAD_GROUP
    assert head["serviceType"] == "ClusterIP"  # never a LoadBalancer for the dashboard
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert {"cpu", "gpu"} <= set(groups)
    templates = [head["template"]] + [g["template"] for g in groups.values()]
    for g in groups.values():
        assert set(g) <= WORKER_GROUP, set(g) - WORKER_GROUP
        assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        assert "rayStartParams" in g
    for t in templates:
        assert pod_labels.items() <= t.get("metadata", {}).get("labels", {}).items()
        for c in _containers(t):
            assert c["name"] and c["resources"]["limits"]["cpu"]
            assert c["image"] in (IMAGE_CPU, IMAGE_GPU), c["image"]
            refs = {(k, v["name"]) for e in c["envFrom"] for k, v in e.items()}
            assert {("configMapRef", "distmi-storage"),
                    ("secretRef", "distmi-object-store")} <= refs
            for env in c.get("env", []):  # secrets only by reference
                assert not re.search(r"SECRET|TOKEN|PASSWORD|ACCESS_KEY", env["name"]) \
                    or "valueFrom" in env, env
    gpu = groups["gpu"]
    gpu_c = _containers(gpu["template"])[0]
    assert gpu_c["image"] == IMAGE_GPU
    assert gpu_c["resources"]["limits"]["nvidia.com/gpu"] == gpu["rayStartParams"]["num-gpus"] == "1"
    cpu_c = _containers(groups["cpu"]["template"])[0]
    assert cpu_c["image"] == IMAGE_CPU and "nvidia.com/gpu" not in cpu_c["resources"]["limits"]


def _selects(selector, labels):
    return selector.get("matchLabels", {}).items() <= labels.items()


def _check_policies(policies, pod_labels, head_labels):
    """One policy admits every port between the cluster's pods; outside peers never reach the
    client port, and only the operator reaches the dashboard."""
    internal = [p for p in policies if _selects(p["spec"]["podSelector"], pod_labels)
                and any(not r.get("ports") and any(_selects(f.get("podSelector", {}), pod_labels)
                                                   for f in r["from"])
                        for r in p["spec"]["ingress"])]
    assert internal, "no NetworkPolicy admits all ports between the cluster's pods"
    for p in policies:
        assert p["spec"]["policyTypes"] == ["Ingress"]
        for rule in p["spec"]["ingress"]:
            assert rule.get("from"), "an ingress rule without `from` admits everyone"
            for peer in rule["from"]:
                assert "ipBlock" not in peer
                inside = "namespaceSelector" not in peer and _selects(peer["podSelector"],
                                                                      pod_labels)
                if inside:
                    continue
                ports = {q["port"] for q in rule.get("ports", [])}
                assert ports, "an outside peer admitted on every port"
                assert CLIENT_PORT not in ports
                assert peer["podSelector"]["matchLabels"] == {
                    "app.kubernetes.io/name": "kuberay-operator"}
                assert _selects(p["spec"]["podSelector"], head_labels)


def test_raycluster_manifest():
    docs = _docs("kuberay-raycluster.yaml")
    (cluster,) = _by_kind(docs, "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["metadata"]["name"] == "distmi"
    _check_cluster_spec(cluster["spec"], {"app.kubernetes.io/name": "distmi"})
    # KubeRay labels every pod with ray.io/cluster=<name> and ray.io/node-type=head|worker
    pods = {"ray.io/cluster": "distmi"}
    _check_policies(_by_kind(docs, "NetworkPolicy"), pods, {**pods, "ray.io/node-type": "head"})
    assert not _by_kind(docs, "Secret")  # tokens and credentials are created with kubectl


def test_rayjob_manifest_runs_a_bundled_job_on_shared_storage():
    docs = _docs("kuberay-rayjob.yaml")
    (job,) = _by_kind(docs, "RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert set(spec) <= RAYJOB_SPEC, set(spec) - RAYJOB_SPEC
    assert spec["shutdownAfterJobFinishes"] is True
    labels = {"app.kubernetes.io/part-of": job["metadata"]["name"]}
    _check_cluster_spec(spec["rayClusterSpec"], labels)
    submitter = spec["submitterPodTemplate"]
    assert labels.items() <= submitter["metadata"]["labels"].items()
    assert submitter["spec"]["restartPolicy"] == "Never"
    assert _containers(submitter)[0]["image"] == IMAGE_CPU
    argv = shlex.split(spec["entrypoint"])  # shell words, as the driver's shell will see them
    assert argv[:5] == ["python", "-m", "distmi.cli", "run", argv[4]]
    assert (ROOT / argv[4]).is_file() and argv[5:7] == ["--address", "auto"]
    opts = dict(zip(argv[7::2], argv[8::2], strict=True))
    for key in ("--output", "--dataset"):  # never the pods' own disks
        assert opts[key].startswith("$DISTMI_STORE/"), opts
    env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert env["working_dir"] == "/app"
    assert "WORKDIR /app" in (CLUSTER / "Dockerfile").read_text()
    _check_policies(_by_kind(docs, "NetworkPolicy"), labels,
                    {**labels, "ray.io/node-type": "head"})


def test_readme_documents_the_images_secrets_and_a_two_node_walkthrough():
    text = (CLUSTER / "README.md").read_text()
    for needle in (IMAGE_CPU, "docker build -f cluster/Dockerfile", "distmi-ray-token",
                   "distmi-object-store", "distmi-storage", "RAY_AUTH_MODE=token",
                   "2-node cluster with S3-compatible storage"):
        assert needle in text, needle
