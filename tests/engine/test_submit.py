"""`distmi submit` and `distmi status` offline: the submission they build, a mocked client."""

from __future__ import annotations

import datetime as dt
import shlex
from types import SimpleNamespace

import pytest

from distmi.core.errors import InvalidParameterError, SpecError
from distmi.jobs.spec import load_spec, spec_hash
from distmi.jobs.submit import build_submission, check_address, job_status, submit

JOB = "jobs/quickstart.yaml"


class FakeClient:
    def __init__(self):
        self.calls = []

    def submit_job(self, **kwargs):
        self.calls.append(kwargs)
        return kwargs["submission_id"]

    def get_job_info(self, job_id):
        return SimpleNamespace(status=SimpleNamespace(value="RUNNING"), message="running",
                               entrypoint="python -m distmi.cli run x", metadata={})

    def get_job_logs(self, job_id):
        return "log line"


def test_submission_ships_the_working_dir_and_runs_the_job_on_the_cluster(monkeypatch):
    spec = load_spec(JOB)
    now = dt.datetime(2026, 11, 23, 1, 2, 3, tzinfo=dt.UTC)
    sub = build_submission(JOB, spec, working_dir=".", env_vars={"X": "1"}, now=now)
    assert shlex.split(sub.entrypoint) == ["python", "-m", "distmi.cli", "run", JOB,
                                           "--address", "auto"]
    env = sub.runtime_env
    assert env["working_dir"].endswith("main") or env["working_dir"]
    assert ".venv" in env["excludes"] and "out" in env["excludes"] and "pip" not in env
    assert env["env_vars"]["RAY_USAGE_STATS_ENABLED"] == "0" and env["env_vars"]["X"] == "1"
    assert sub.submission_id == f"distmi-iris-quickstart-{spec_hash(spec)[:8]}-20261123-010203"
    client = FakeClient()
    assert submit(sub, "http://head:8265", client=client) == sub.submission_id
    assert client.calls == [sub.as_kwargs()]


def test_job_outside_working_dir_is_refused(tmp_path):
    spec = load_spec(JOB)
    with pytest.raises(SpecError, match=r"outside the working directory .* --working-dir"):
        build_submission(JOB, spec, working_dir=tmp_path)


def test_address_must_be_the_dashboard_url():
    assert check_address("http://10.0.0.1:8265/") == "http://10.0.0.1:8265"
    with pytest.raises(InvalidParameterError, match=r"dashboard URL such as http://HEAD:8265"):
        check_address("10.0.0.1:6379")


def test_status_reads_the_job_info():
    info = job_status("distmi-x", "http://head:8265", client=FakeClient(), logs=True)
    assert info["status"] == "RUNNING" and info["logs"] == "log line"
