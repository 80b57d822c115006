"""Scheduled audits, checked offline: the Kubernetes CronJob, the KubeRay RayCronJob and the
crontab parse, carry the fields their controllers require, use the image and paths of
cluster/README.md, and run a `distmi audit` command line that the real CLI accepts.
Also `distmi audit --submit` against a mocked Jobs API client."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
import yaml

from distmi.cli import _load_commands, app
from distmi.core.errors import SpecError
from distmi.jobs import load_spec
from distmi.jobs.audit_submit import build_audit_submission, wait_for_verdict

ROOT = Path(__file__).parents[2]
CLUSTER = ROOT / "cluster"
_load_commands()
_CLICK = typer.main.get_command(app)
_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def _engine_manifest_checks():
    """The KubeRay field names and NetworkPolicy checks of tests/engine/test_manifests.py (one
    list of the ray.io/v1 CRD fields for every manifest of cluster/)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "engine_manifest_checks", ROOT / "tests" / "engine" / "test_manifests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _docs(name):
    return list(yaml.safe_load_all((CLUSTER / name).read_text()))


def _readme_images() -> set[str]:
    text = (CLUSTER / "README.md").read_text()
    return set(re.findall(r"-t (\S+)", text))


def _valid_cron(expr: str) -> bool:
    fields = expr.split()
    if len(fields) != 5:
        return False
    for field, (lo, hi) in zip(fields, _RANGES, strict=True):
        if not _FIELD.match(field):
            return False
        for num in re.findall(r"\d+", re.sub(r"/\d+", "", field)):
            if not lo <= int(num) <= hi:
                return False
    return True


def _parse_audit_argv(argv: list[str]) -> dict:
    """Parse `distmi audit ...` with the real CLI (no execution); return its parameters."""
    assert argv[0] == "audit", argv
    ctx = _CLICK.make_context("distmi", list(argv))
    sub = _CLICK.get_command(ctx, argv[0])
    return sub.make_context("audit", list(argv[1:]), parent=ctx).params


def test_cron_validator_can_fail():
    assert _valid_cron("30 2 * * *") and _valid_cron("*/15 0-6 1,15 * 1-5")
    assert not _valid_cron("30 25 * * *") and not _valid_cron("30 2 * *")
    assert not _valid_cron("every night")


def test_kubernetes_cronjob_submits_the_audit_to_the_ray_cluster():
    cron, policy = _docs("audit-cronjob.yaml")
    assert (cron["apiVersion"], cron["kind"]) == ("batch/v1", "CronJob")
    spec = cron["spec"]
    assert _valid_cron(spec["schedule"]) and spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it
    (container,) = pod["containers"]
    assert container["image"] in _readme_images()
    rules = {r["action"]: r["onExitCodes"] for r in job["podFailurePolicy"]["rules"]}
    assert rules["FailJob"]["values"] == [1] and rules["Count"]["values"] == [2]
    assert rules["FailJob"]["containerName"] == container["name"]
    argv = container["command"][1:] + container["args"]
    assert container["command"][0] == "distmi"
    params = _parse_audit_argv(argv)
    assert (ROOT / params["job"]).is_file() and container["workingDir"] == "/app"
    assert load_spec(ROOT / params["job"]).scaling.executor == "ray"  # submitted jobs need Ray
    # the submit address is the head service of the RayCluster manifest
    raycluster = _docs("kuberay-raycluster.yaml")[0]
    assert params["submit"] == f"http://{raycluster['metadata']['name']}-head-svc:8265"
    for key in ("baseline", "dataset", "output"):  # on the storage every Ray pod reaches
        assert params[key].startswith("$(DISTMI_STORE)/minilm-audit/")
    assert "{date}" in params["output"] and "{date}" in params["dataset"]
    env = {e["name"]: e for e in container["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": raycluster["spec"]["authOptions"]["secretName"], "key": "auth_token"}
    assert {"configMapRef": {"name": "distmi-storage"}} in container["envFrom"]
    # the audit pods may reach the dashboard port of that cluster's head, nothing more
    assert policy["kind"] == "NetworkPolicy"
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "ray.io/cluster": raycluster["metadata"]["name"], "ray.io/node-type": "head"}
    (rule,) = policy["spec"]["ingress"]
    pod_labels = job["template"]["metadata"]["labels"]
    (source,) = rule["from"]
    assert source["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert [p["port"] for p in rule["ports"]] == [8265]


def test_kuberay_raycronjob_runs_the_audit_as_a_rayjob():
    doc, *policies = _docs("kuberay-raycronjob.yaml")
    assert [p["kind"] for p in policies] == ["NetworkPolicy", "NetworkPolicy"]
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayCronJob")
    spec = doc["spec"]
    # the operator's schema (KubeRay 1.6/1.7): schedule and jobTemplate required
    assert set(spec) <= {"schedule", "jobTemplate", "suspend", "timeZone"}
    assert _valid_cron(spec["schedule"])
    rayjob = spec["jobTemplate"]  # a RayJob spec
    crd = _engine_manifest_checks()
    assert set(rayjob) <= crd.RAYJOB_SPEC, set(rayjob) - crd.RAYJOB_SPEC
    assert set(rayjob["rayClusterSpec"]) <= crd.RAYCLUSTER_SPEC
    assert set(rayjob["rayClusterSpec"]["headGroupSpec"]) <= crd.HEAD_GROUP
    for group in rayjob["rayClusterSpec"]["workerGroupSpecs"]:
        assert set(group) <= crd.WORKER_GROUP
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert rayjob["rayClusterSpec"]["rayVersion"] == crd.RAY
    assert rayjob["shutdownAfterJobFinishes"] is True and rayjob["backoffLimit"] == 0
    argv = shlex.split(rayjob["entrypoint"])
    assert argv[:3] == ["python", "-m", "distmi.cli"]
    params = _parse_audit_argv(argv[3:])
    assert params["address"] == "auto" and params["submit"] is None
    assert (ROOT / params["job"]).is_file()
    assert yaml.safe_load(rayjob["runtimeEnvYAML"])["working_dir"] == "/app"
    for key in ("baseline", "dataset", "output"):  # the driver's shell expands $DISTMI_STORE
        assert params[key].startswith("$DISTMI_STORE/minilm-audit/")
    cluster = rayjob["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token", "secretName": "distmi-ray-token"}
    head = cluster["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP"
    templates = [head["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    templates.append(rayjob["submitterPodTemplate"])
    part_of = {t["metadata"]["labels"]["app.kubernetes.io/part-of"] for t in templates}
    assert len(part_of) == 1
    for t in templates:
        (c,) = t["spec"]["containers"]
        assert c["image"] in _readme_images()
    for t in templates[:-1]:  # every Ray pod opens the storage itself
        refs = [next(iter(r.values()))["name"] for r in t["spec"]["containers"][0]["envFrom"]]
        assert refs == ["distmi-storage", "distmi-object-store"]
    internal, operator = policies
    label = next(iter(part_of))
    assert internal["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": label}
    assert operator["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/part-of": label, "ray.io/node-type": "head"}
    assert {p["port"] for p in operator["spec"]["ingress"][0]["ports"]} == {8265, 6379}
    labels = {"app.kubernetes.io/part-of": label}
    crd._check_policies(policies, labels, {**labels, "ray.io/node-type": "head"})


def test_crontab_line_for_one_machine():
    lines = [ln for ln in (CLUSTER / "audit.crontab").read_text().splitlines()
             if ln.strip() and not ln.startswith("#") and "=" not in ln.split()[0]]
    assert len(lines) == 2
    for line in lines:
        fields = line.split(None, 5)
        assert _valid_cron(" ".join(fields[:5])), line
        assert "%" not in fields[5].replace("\\%", "")  # cron turns a bare % into a newline
    audit_cmd = lines[1].split(None, 5)[5]
    argv = shlex.split(audit_cmd.split("&&", 1)[1].split(">>")[0])
    assert argv[0].endswith("distmi")
    params = _parse_audit_argv(argv[1:])
    assert (ROOT / params["job"]).is_file() and params["submit"] is None
    spec = load_spec(ROOT / params["job"])
    assert spec.audit is not None and spec.audit.baseline  # the job names its baseline
    capture = lines[0].split(None, 5)[5]
    assert "distmi.examples.audit_minilm capture" in capture
    assert params["dataset"].replace("{date}", "") in capture.replace("$(date -u +\\%F)", "")


def test_cli_parser_rejects_a_bad_command_line():
    with pytest.raises(Exception, match=r"No such option: --baseilne"):
        _parse_audit_argv(["audit", "jobs/audits/minilm_audit.yaml", "--baseilne", "x"])


class FakeJobs:
    """A Ray Jobs API client that replays a list of job infos."""

    def __init__(self, infos):
        self.infos = list(infos)
        self.submitted = []

    def submit_job(self, **kwargs):
        self.submitted.append(kwargs)
        return kwargs["submission_id"]

    def get_job_info(self, job_id):
        return self.infos.pop(0) if len(self.infos) > 1 else self.infos[0]


def _info(status, code=None, message=""):
    return SimpleNamespace(status=SimpleNamespace(value=status), driver_exit_code=code,
                           message=message)


@pytest.mark.parametrize("infos, code, text", [
    ([_info("PENDING"), _info("RUNNING"), _info("SUCCEEDED", 0)], 0, "no drift"),
    ([_info("RUNNING"), _info("FAILED", 1, "exit 1")], 1, "drift"),
    ([_info("FAILED", 2, "error: dataset missing")], 2, "dataset missing"),
    ([_info("STOPPED")], 2, "stopped"),
    ([_info("RUNNING")], 2, "did not finish"),
])
def test_waiting_for_a_submitted_verdict(infos, code, text):
    got, message = wait_for_verdict("j1", "http://h:8265", client=FakeJobs(infos), poll_s=1,
                                    timeout_s=5, sleep=lambda s: None)
    assert got == code and text in message


def test_audit_submission_runs_the_audit_on_the_head():
    spec = load_spec(ROOT / "jobs/audits/minilm_audit.yaml")
    sub = build_audit_submission(ROOT / "jobs/audits/minilm_audit.yaml", spec,
                                 baseline="s3://b/base", output="s3://b/a/2026-11-23",
                                 dataset="/mnt/shared/today", extra_args=["--no-report"],
                                 working_dir=ROOT)
    argv = shlex.split(sub.entrypoint)
    assert argv[:5] == ["python", "-m", "distmi.cli", "audit", "jobs/audits/minilm_audit.yaml"]
    params = _parse_audit_argv(argv[3:])
    assert (params["baseline"], params["address"], params["output"], params["dataset"]) == (
        "s3://b/base", "auto", "s3://b/a/2026-11-23", "/mnt/shared/today")
    assert params["no_report"] is True
    assert sub.submission_id.startswith("distmi-audit-minilm-audit-")
    assert sub.metadata["distmi_audit"] == "1" and ".venv" in sub.runtime_env["excludes"]
    # a relative baseline would resolve inside Ray's temporary copy of the working directory
    with pytest.raises(SpecError, match=r"audit\.baseline 'out/base' is a relative path"):
        build_audit_submission(ROOT / "jobs/audits/minilm_audit.yaml", spec, baseline="out/base",
                               output="s3://b/a", dataset="s3://b/d", working_dir=ROOT)
    local = build_audit_submission(ROOT / "jobs/audits/minilm_audit.yaml", spec,
                                   baseline="out/base", output="s3://b/a", dataset="s3://b/d",
                                   working_dir=ROOT, single_machine=True)
    assert f"--baseline {ROOT / 'out/base'}" in local.entrypoint


def test_cli_submit_maps_the_driver_exit_code(monkeypatch):
    from typer.testing import CliRunner

    import distmi.engine.ray_executor as rx

    client = FakeJobs([_info("RUNNING"), _info("FAILED", 1)])
    monkeypatch.setattr(rx, "submission_client", lambda address: client)
    monkeypatch.setattr(rx, "cluster_node_ips", lambda address: ["203.0.113.7"])  # remote
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("distmi.jobs.audit_submit.time.sleep", lambda s: None)
    args = ["audit", "jobs/audits/minilm_audit.yaml", "--dataset", "/data/today/{date}",
            "--output", "s3://bucket/audits/{date}", "--submit", "http://head:8265"]
    res = CliRunner().invoke(app, [*args, "--baseline", "s3://bucket/base"])
    assert res.exit_code == 1, res.output
    (sent,) = client.submitted
    argv = shlex.split(sent["entrypoint"])
    assert "{date}" not in sent["entrypoint"] and "--dataset" in argv
    assert argv[argv.index("--baseline") + 1] == "s3://bucket/base"
    assert "drift (see audit.json" in res.output
    # the job file's own baseline (audit.baseline) is relative: refused for a remote cluster
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "is a relative path" in res.output
    res = CliRunner().invoke(app, ["audit", "jobs/audits/minilm_audit.yaml", "--submit",
                                   "10.0.0.1:6379"])
    assert res.exit_code == 2 and "dashboard URL" in res.output
