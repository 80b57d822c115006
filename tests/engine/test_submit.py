"""`distmi submit` and `distmi status`: where results land, exit codes, waiting.

Offline: the submission built for a local and a remote cluster, with the client mocked.
Online: a real local Ray head with its dashboard (``ray start --head`` on 127.0.0.1, free
ports, its own temp dir), a tiny job submitted from another working directory whose results
must come back to that directory, a failing job and a stopped one.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from engine_data import make_activations
from typer.testing import CliRunner

from distmi.core.errors import InvalidParameterError, SpecError
from distmi.jobs.spec import load_spec, spec_hash
from distmi.jobs.submit import (
    build_submission,
    check_address,
    cluster_is_single_machine,
    is_single_machine,
    job_status,
    resolve_location,
    submit,
    wait_for_job,
)

JOB = "jobs/quickstart.yaml"
ROOT = Path(__file__).parents[2]


class FakeClient:
    def __init__(self, states=("RUNNING",)):
        self.calls = []
        self.states = list(states)

    def submit_job(self, **kwargs):
        self.calls.append(kwargs)
        return kwargs["submission_id"]

    def get_job_info(self, job_id):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return SimpleNamespace(status=SimpleNamespace(value=state), message=state.lower(),
                               entrypoint="python -m distmi.cli run x", metadata={})

    def get_job_logs(self, job_id):
        return "\n".join(f"line {i}" for i in range(100))


# ---- offline ------------------------------------------------------------------------------
def test_on_a_local_cluster_relative_paths_become_absolute(monkeypatch):
    spec = load_spec(JOB)
    now = dt.datetime(2026, 11, 23, 1, 2, 3, tzinfo=dt.UTC)
    sub = build_submission(JOB, spec, working_dir=ROOT, env_vars={"X": "1"}, now=now,
                           single_machine=True)
    argv = shlex.split(sub.entrypoint)
    assert argv[:7] == ["python", "-m", "distmi.cli", "run", JOB, "--address", "auto"]
    assert argv[7:] == ["--output", str(ROOT / "out/iris-quickstart"),
                        "--dataset", str(ROOT / "out/iris")]
    assert sub.metadata["output"] == str(ROOT / "out/iris-quickstart")
    env = sub.runtime_env
    assert env["working_dir"] == str(ROOT)
    assert ".venv" in env["excludes"] and "out" in env["excludes"] and "pip" not in env
    assert env["env_vars"]["RAY_USAGE_STATS_ENABLED"] == "0" and env["env_vars"]["X"] == "1"
    assert sub.submission_id == f"distmi-iris-quickstart-{spec_hash(spec)[:8]}-20261123-010203"
    client = FakeClient()
    assert submit(sub, "http://head:8265", client=client) == sub.submission_id
    assert client.calls == [sub.as_kwargs()]


def test_on_a_remote_cluster_relative_paths_are_refused_with_the_fix():
    spec = load_spec(JOB)
    with pytest.raises(SpecError, match=r"output 'out/iris-quickstart' is a relative path: .*"
                                        r"temporary copy of the working directory.*"
                                        r"s3://BUCKET/distmi/out/iris-quickstart.*--output"):
        build_submission(JOB, spec, working_dir=ROOT)
    sub = build_submission(JOB, spec, working_dir=ROOT, output="s3://team/distmi/iris",
                           dataset="/mnt/shared/iris")
    argv = shlex.split(sub.entrypoint)
    assert argv[-4:] == ["--output", "s3://team/distmi/iris", "--dataset", "/mnt/shared/iris"]


@pytest.mark.parametrize(
    ("value", "single", "expected"),
    [("s3://b/x", False, "s3://b/x"), ("gs://b/x", True, "gs://b/x"),
     ("/mnt/shared/x", False, "/mnt/shared/x"), ("out/x", True, "{wd}/out/x")],
)
def test_resolve_location(tmp_path, value, single, expected):
    got = resolve_location(value, "output", "--output", tmp_path, single_machine=single)
    assert got == expected.format(wd=tmp_path.resolve())


def test_credentials_in_a_submitted_uri_are_refused():
    with pytest.raises(InvalidParameterError, match="carries credentials"):
        resolve_location("s3://AKIA:secret@b/x", "output", "--output", ".", single_machine=False)


def test_single_machine_means_every_node_is_this_machine():
    assert is_single_machine(["127.0.0.1"], {"127.0.0.1"})
    assert not is_single_machine(["127.0.0.1", "10.0.0.7"], {"127.0.0.1"})
    assert not is_single_machine([], {"127.0.0.1"})  # unknown: treated as remote
    calls = []

    def nodes(address):
        calls.append(address)
        return [] if len(calls) < 3 else ["127.0.0.1"]

    assert cluster_is_single_machine("http://h:8265", node_ips=nodes, pause_s=0)
    assert len(calls) == 3  # retried while the new cluster listed no node


def test_a_local_executor_job_is_refused_before_submitting():
    from distmi.jobs.spec import parse_spec, spec_to_dict

    doc = spec_to_dict(load_spec(JOB))
    doc["scaling"]["executor"] = "local"
    with pytest.raises(SpecError, match=r"scaling.executor: local.*set scaling.executor: ray"):
        build_submission(JOB, parse_spec(doc), working_dir=ROOT, single_machine=True)


def test_job_outside_working_dir_is_refused(tmp_path):
    spec = load_spec(JOB)
    with pytest.raises(SpecError, match=r"outside the working directory .* --working-dir"):
        build_submission(JOB, spec, working_dir=tmp_path, single_machine=True)


def test_address_must_be_the_dashboard_url():
    assert check_address("http://10.0.0.1:8265/") == "http://10.0.0.1:8265"
    with pytest.raises(InvalidParameterError, match=r"dashboard URL such as http://HEAD:8265"):
        check_address("10.0.0.1:6379")


def test_status_reads_the_job_info_and_waits():
    info = job_status("distmi-x", "http://head:8265", client=FakeClient(), logs=True)
    assert info["status"] == "RUNNING" and info["logs"].endswith("line 99")
    seen = []
    done = wait_for_job("distmi-x", "http://head:8265", poll_s=0, on_change=seen.append,
                        client=FakeClient(["PENDING", "RUNNING", "RUNNING", "FAILED"]))
    assert [s["status"] for s in seen] == ["PENDING", "RUNNING", "FAILED"]
    assert done["status"] == "FAILED" and not done["timed_out"]
    late = wait_for_job("distmi-x", "http://head:8265", poll_s=0, timeout_s=0,
                        client=FakeClient(["RUNNING"]))
    assert late["timed_out"]


# ---- against a real Ray head ------------------------------------------------------------------
@pytest.fixture(scope="module")
def head():
    pytest.importorskip("ray")
    from ray_head import ray_head

    with ray_head(num_cpus=2) as (url, _temp):
        yield url


@pytest.fixture
def cli():
    from distmi.cli import _load_commands, app

    _load_commands()
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def _job_id(stdout: str) -> str:
    """The submission id `distmi submit` printed (stray log lines of Ray may surround it)."""
    import re

    return re.search(r"^(distmi-[\w-]+)$", stdout, re.M).group(1)


def _project(tmp_path: Path, dataset: str, output: str) -> Path:
    """A working directory with a tiny dataset and a job file using relative paths."""
    from distmi.store import write_dataset

    wd = tmp_path / "project"
    layers, targets = make_activations()
    write_dataset(wd / "data" / "tiny", layers, targets,
                  {"label": "categorical", "score": "continuous"}, block_units=4)
    job = {"name": "tiny-submit", "dataset": {"path": dataset}, "layers": ["a"],
           "targets": ["label"], "estimator": {"method": "gmm",
                                               "params": {"n_components": 1, "n_inits": 1}},
           "n_bootstrap": 2, "null_permutations": 0, "seed": 3, "output": output,
           "scaling": {"executor": "ray", "workers": 1, "cpus_per_worker": 0.5, "batch_size": 6}}
    (wd / "jobs").mkdir()
    (wd / "jobs" / "tiny.yaml").write_text(yaml.safe_dump(job))
    return wd


@pytest.mark.ray
def test_submitted_job_commits_its_results_to_the_submitters_folder(head, cli, tmp_path,
                                                                    monkeypatch):
    from distmi.jobs import load_results

    wd = _project(tmp_path, "data/tiny", "out/tiny")
    monkeypatch.chdir(wd)
    res = cli("submit", "jobs/tiny.yaml", "--address", head)
    assert res.exit_code == 0, res.output
    job_id = _job_id(res.stdout)
    assert f"results will be committed to {wd / 'out/tiny'}" in res.output
    res = cli("status", job_id, "--address", head, "--wait", "--timeout", "300", "--tail", "5")
    assert res.exit_code == 0, res.output
    assert f"{job_id}: SUCCEEDED" in res.output and "--- last 5 log lines ---" in res.output
    assert "committed 6 rows" in res.output
    table, manifest = load_results(wd / "out" / "tiny", verify=True)  # on our disk
    assert len(table) == 6 and manifest["dataset"]["path"] == str(wd / "data" / "tiny")
    res = cli("status", job_id, "--address", head)
    assert res.exit_code == 0 and "SUCCEEDED" in res.output


@pytest.mark.ray
def test_a_remote_looking_cluster_refuses_relative_output(head, cli, tmp_path, monkeypatch):
    import distmi.jobs.submit as submit_mod

    wd = _project(tmp_path, "data/tiny", "out/tiny")
    monkeypatch.chdir(wd)
    monkeypatch.setattr(submit_mod, "local_addresses", lambda: {"203.0.113.9"})
    res = cli("submit", "jobs/tiny.yaml", "--address", head, "--dry-run")
    assert res.exit_code == 2
    assert "output 'out/tiny' is a relative path" in res.output and "s3://BUCKET" in res.output
    res = cli("submit", "jobs/tiny.yaml", "--address", head, "--dry-run",
              "--output", "s3://team/runs/tiny", "--dataset", "/mnt/shared/tiny")
    assert res.exit_code == 0, res.output
    sub = json.loads(res.output)
    assert sub["metadata"]["output"] == "s3://team/runs/tiny"
    assert shlex.split(sub["entrypoint"])[-4:] == ["--output", "s3://team/runs/tiny",
                                                   "--dataset", "/mnt/shared/tiny"]


@pytest.mark.ray
def test_status_exits_non_zero_for_a_failed_job(head, cli, tmp_path, monkeypatch):
    wd = _project(tmp_path, str(tmp_path / "no-such-dataset"), "out/tiny")
    monkeypatch.chdir(wd)
    res = cli("submit", "jobs/tiny.yaml", "--address", head)
    assert res.exit_code == 0, res.output
    job_id = _job_id(res.stdout)
    res = cli("status", job_id, "--address", head, "--wait", "--timeout", "300")
    assert res.exit_code == 1, res.output
    assert f"{job_id}: FAILED" in res.output
    assert "no-such-dataset does not exist" in res.output  # the tail of the driver's log
    assert "Traceback" not in res.output  # the driver printed an error line, not a traceback
    res = cli("status", job_id, "--address", head)
    assert res.exit_code == 1 and "FAILED" in res.output


@pytest.mark.ray
def test_status_exits_non_zero_for_a_stopped_job_and_times_out(head, cli):
    from distmi.engine.ray_executor import submission_client

    client = submission_client(head)
    job_id = client.submit_job(entrypoint="python -c 'import time; time.sleep(300)'")
    res = cli("status", job_id, "--address", head, "--wait", "--timeout", "0.1")
    assert res.exit_code == 124 and "after 0.1 s" in res.output
    client.stop_job(job_id)
    for _ in range(120):
        if str(client.get_job_status(job_id).value) == "STOPPED":
            break
        time.sleep(0.5)
    res = cli("status", job_id, "--address", head)
    assert res.exit_code == 1 and "STOPPED" in res.output
    res = cli("status", "no-such-job", "--address", head)
    assert res.exit_code == 2 and "has no job 'no-such-job'" in res.output


@pytest.mark.ray
def test_a_head_with_token_auth_needs_the_token(tmp_path):
    """Ray token auth (RAY_AUTH_MODE=token): with the token the cluster answers; without it,
    or with a wrong one, the command says how to give it (exit 2, no traceback)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("ray")
    from ray_head import ray_head

    token = "distmi-test-token-" + os.urandom(8).hex()
    with ray_head(num_cpus=1, env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}) as (url, _):
        def distmi(*args, **env):
            base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
            full = {**base, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), **env}
            return subprocess.run([sys.executable, "-m", "distmi.cli", *args], env=full,
                                  capture_output=True, text=True, timeout=300, cwd=ROOT)

        submit = ["submit", JOB, "--address", url, "--dry-run",
                  "--output", "s3://bucket/out", "--dataset", "s3://bucket/iris"]
        ok = distmi(*submit, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["metadata"]["output"] == "s3://bucket/out"
        refused = distmi(*submit, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="not-the-token")
        status = distmi("status", "nojob", "--address", url, RAY_AUTH_MODE="disabled")
        for res in (refused, status):  # the state API, then the Jobs API
            assert res.returncode == 2, res.stderr
            assert "requires token authentication; set RAY_AUTH_MODE=token" in res.stderr
            assert "Traceback" not in res.stderr
