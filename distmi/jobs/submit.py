"""``distmi submit``: ship a job and its working directory to a Ray cluster (Ray Jobs API).

The submission runs ``python -m distmi.cli run JOB.yaml --address auto`` as the job's driver on
the head node; ``--address auto`` makes the engine attach to that cluster instead of starting
an embedded Ray. The working directory (default: the current one) is zipped and uploaded by
Ray (``runtime_env.working_dir``) with virtual environments, outputs and VCS folders excluded;
the job file must lie inside it. distmi itself must be installed in the cluster's image (a
``pip`` runtime_env would rebuild a whole environment per job: pass ``--pip`` only for small
additions). The dashboard address is ``http://HEAD:8265``; reach a remote one through an SSH
tunnel or ``kubectl port-forward`` rather than exposing it (see ``cluster/README.md``).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distmi.core.errors import InvalidParameterError, SpecError
from distmi.jobs.spec import JobSpec, spec_hash

DEFAULT_EXCLUDES = [".venv", "venv", "refvenv", ".git", "out", "results", "__pycache__",
                    ".pytest_cache", ".ruff_cache", "*.egg-info", ".hypothesis"]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass(frozen=True)
class Submission:
    """What ``JobSubmissionClient.submit_job`` receives."""

    entrypoint: str
    runtime_env: dict[str, Any]
    submission_id: str
    metadata: dict[str, str]

    def as_kwargs(self) -> dict[str, Any]:
        return {"entrypoint": self.entrypoint, "runtime_env": self.runtime_env,
                "submission_id": self.submission_id, "metadata": self.metadata}


def check_address(address: str) -> str:
    """The dashboard address must be an http(s) URL (``http://HEAD:8265``)."""
    if not re.match(r"^https?://[^\s/]+", address or ""):
        raise InvalidParameterError(
            f"--address must be the Ray dashboard URL such as http://HEAD:8265, got {address!r}; "
            "the Jobs API talks to the dashboard (port 8265), not the GCS port 6379."
        )
    return address.rstrip("/")


def build_submission(
    job_file: str | Path,
    spec: JobSpec,
    *,
    working_dir: str | Path = ".",
    pip: list[str] | None = None,
    env_vars: dict[str, str] | None = None,
    now: _dt.datetime | None = None,
) -> Submission:
    """Entry point, runtime_env, id and metadata for submitting ``job_file``.

    Raises:
        SpecError: the job file is not inside ``working_dir`` (the cluster would not see it).
    """
    wd = Path(working_dir).resolve()
    job = Path(job_file).resolve()
    try:
        rel = job.relative_to(wd)
    except ValueError:
        raise SpecError(
            f"job file {job} is outside the working directory {wd} that is shipped to the "
            "cluster; run `distmi submit` from the project folder or pass --working-dir."
        ) from None
    shash = spec_hash(spec)
    stamp = (now or _dt.datetime.now(_dt.UTC)).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", spec.name).strip("-")[:40] or "job"
    env = {"RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1", **(env_vars or {})}
    runtime_env: dict[str, Any] = {
        "working_dir": str(wd),
        "excludes": list(DEFAULT_EXCLUDES),
        "env_vars": env,
    }
    if pip:
        runtime_env["pip"] = list(pip)
    return Submission(
        entrypoint=f"python -m distmi.cli run {rel.as_posix()} --address auto",
        runtime_env=runtime_env,
        submission_id=f"distmi-{safe}-{shash[:8]}-{stamp}",
        metadata={"distmi_job": spec.name, "spec_hash": shash, "output": spec.output},
    )


def submit(submission: Submission, address: str, client: Any = None) -> str:
    """Submit through the Ray Jobs API; return the submission id."""
    if client is None:
        from distmi.engine.ray_executor import submission_client

        client = submission_client(check_address(address))
    return client.submit_job(**submission.as_kwargs())


def job_status(job_id: str, address: str, client: Any = None, logs: bool = False) -> dict[str, Any]:
    """Status (and optionally logs) of a submitted job: ``{"job_id", "status", "message", ...}``."""
    if client is None:
        from distmi.engine.ray_executor import submission_client

        client = submission_client(check_address(address))
    info = client.get_job_info(job_id)
    status = getattr(info, "status", "UNKNOWN")
    out = {
        "job_id": job_id,
        "status": str(getattr(status, "value", status)),
        "message": getattr(info, "message", None),
        "entrypoint": getattr(info, "entrypoint", None),
        "metadata": getattr(info, "metadata", None),
    }
    if logs:
        out["logs"] = client.get_job_logs(job_id)
    return out
