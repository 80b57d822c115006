"""``distmi submit`` / ``distmi status``: ship a job to a Ray cluster (Ray Jobs API) and follow it.

The submission runs ``python -m distmi.cli run JOB.yaml --address auto`` as the job's driver on
the head node; ``--address auto`` makes the engine attach to that cluster instead of starting
an embedded Ray. The working directory (default: the current one) is zipped and uploaded by
Ray (``runtime_env.working_dir``) with virtual environments, outputs and VCS folders excluded;
the job file must lie inside it. distmi itself must be installed in the cluster's image (a
``pip`` runtime_env would rebuild a whole environment per job: pass ``--pip`` only for small
additions). The dashboard address is ``http://HEAD:8265``; reach a remote one through an SSH
tunnel or ``kubectl port-forward`` rather than exposing it (see ``cluster/README.md``).

**Where results land** is decided here, before anything is sent (:func:`resolve_location`).
On the cluster the driver runs inside Ray's temporary copy of the working directory, which
Ray deletes later, and the workers of other nodes read the dataset themselves. So:

- a URI (``s3://``, ``gs://``, ...) or an absolute path (a shared volume every node mounts at
  that path) is used as it is;
- a relative path is made absolute against the working directory when every node of the
  cluster is this machine (a local single-machine cluster), so the results land where
  ``distmi run`` would put them;
- otherwise a relative path is refused with the fix (a shared URI or path, in the job file or
  with ``--output`` / ``--dataset``).

The resolved paths are passed to the driver as ``--output`` / ``--dataset`` and recorded in the
submission's metadata.
"""

from __future__ import annotations

import datetime as _dt
import re
import shlex
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distmi.core.errors import InvalidParameterError, SpecError
from distmi.core.storage import check_uri, is_uri
from distmi.jobs.spec import JobSpec, spec_hash

DEFAULT_EXCLUDES = [".venv", "venv", "refvenv", ".git", "out", "results", "__pycache__",
                    ".pytest_cache", ".ruff_cache", "*.egg-info", ".hypothesis"]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
FAILED_STATES = ("FAILED", "STOPPED")


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


# ---- where results land ------------------------------------------------------------------
def local_addresses() -> set[str]:
    """IP addresses of this machine: loopback, the host name's, and the default route's."""
    found = {"127.0.0.1", "::1", "localhost"}
    try:
        found.update(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        pass
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:  # the address the default route would use (connect on UDP sends nothing)
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                found.add(s.getsockname()[0])
        except OSError:
            pass
    return found


def is_single_machine(node_ips: Iterable[str], local: set[str] | None = None) -> bool:
    """Whether every node of a cluster (its IPs) is this machine."""
    ips = list(node_ips)
    local = local_addresses() if local is None else local
    return bool(ips) and all(ip in local for ip in ips)


def resolve_location(value: str, key: str, option: str, working_dir: str | Path, *,
                     single_machine: bool) -> str:
    """Where ``value`` (a job's ``output`` or ``dataset.path``) points on the cluster.

    Args:
        value: the path or URI from the job file (or its command-line override).
        key: the job-file key, for the message (``output``, ``dataset.path``).
        option: the command-line option that overrides it (``--output``).
        working_dir: the folder shipped to the cluster (relative paths are relative to it).
        single_machine: every node of the cluster is this machine.

    Raises:
        SpecError: a relative path on a cluster that is not this machine, with the fix.
        InvalidParameterError: a URI that carries credentials.
    """
    if is_uri(value):
        return check_uri(value)
    path = Path(value)
    if path.is_absolute():
        return value
    if single_machine:
        return str(Path(working_dir).resolve() / path)
    raise SpecError(
        f"{key} {value!r} is a relative path: on the cluster it would resolve inside the job's "
        "temporary copy of the working directory on the head node, which Ray deletes later "
        "(and which workers on other nodes cannot read), so nothing would come back. Give a "
        "location every node reaches: a URI such as s3://BUCKET/distmi/"
        f"{path.as_posix()} (credentials from the environment) or an absolute path on a "
        f"volume every node mounts, e.g. /mnt/shared/{path.as_posix()}; set `{key}:` in the "
        f"job file or pass {option}."
    )


def build_submission(
    job_file: str | Path,
    spec: JobSpec,
    *,
    working_dir: str | Path = ".",
    pip: list[str] | None = None,
    env_vars: dict[str, str] | None = None,
    now: _dt.datetime | None = None,
    single_machine: bool = False,
    output: str | None = None,
    dataset: str | None = None,
) -> Submission:
    """Entry point, runtime_env, id and metadata for submitting ``job_file``.

    Args:
        job_file: the YAML job, inside ``working_dir``.
        spec: the parsed job.
        working_dir: the folder shipped to the cluster.
        pip: extra pip requirements (a ``pip`` runtime_env).
        env_vars: extra environment variables of the driver (not for secrets: they are
            visible in the job's runtime_env; give the cluster's nodes their credentials).
        now: the time used in the submission id (default: now, UTC).
        single_machine: every node of the cluster is this machine (relative paths are then
            made absolute instead of refused; see :func:`resolve_location`).
        output, dataset: overrides of the job's ``output`` and ``dataset.path``.

    Raises:
        SpecError: the job file is outside ``working_dir``, the job does not use the Ray
            executor, or a relative output or dataset path on a cluster that is not this
            machine.
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
    if spec.scaling.executor != "ray":
        raise SpecError(
            f"job {spec.name!r} sets scaling.executor: {spec.scaling.executor}, but a submitted "
            "job runs on the cluster through Ray: set scaling.executor: ray in the job file "
            "(or run it on this machine with `distmi run`)."
        )
    out = resolve_location(output or spec.output, "output", "--output", wd,
                           single_machine=single_machine)
    data = resolve_location(dataset or spec.dataset.path, "dataset.path", "--dataset", wd,
                            single_machine=single_machine)
    argv = ["python", "-m", "distmi.cli", "run", rel.as_posix(), "--address", "auto"]
    if out != spec.output:
        argv += ["--output", out]
    if data != spec.dataset.path:
        argv += ["--dataset", data]
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
        entrypoint=shlex.join(argv),
        runtime_env=runtime_env,
        submission_id=f"distmi-{safe}-{shash[:8]}-{stamp}",
        metadata={"distmi_job": spec.name, "spec_hash": shash, "output": out, "dataset": data},
    )


# ---- talking to the cluster ----------------------------------------------------------------
def _client(address: str, client: Any) -> Any:
    if client is not None:
        return client
    from distmi.engine.ray_executor import submission_client

    return submission_client(check_address(address))


def cluster_is_single_machine(address: str, *, node_ips: Callable[[str], list[str]] | None = None,
                              attempts: int = 15, pause_s: float = 1.0) -> bool:
    """Whether every alive node of the cluster at ``address`` is this machine.

    A freshly started head lists its nodes after a few seconds (measured: ~5 s with Ray 2.60),
    so an empty list is retried; a cluster that lists none is treated as remote.
    """
    if node_ips is None:
        from distmi.engine.ray_executor import cluster_node_ips as node_ips
    ips: list[str] = []
    for i in range(attempts):  # a cluster that has just started may list no node yet
        ips = node_ips(check_address(address))
        if ips:
            break
        if i + 1 < attempts:
            time.sleep(pause_s)
    return is_single_machine(ips)


def submit(submission: Submission, address: str, client: Any = None) -> str:
    """Submit through the Ray Jobs API; return the submission id."""
    return _client(address, client).submit_job(**submission.as_kwargs())


def job_status(job_id: str, address: str, client: Any = None, logs: bool = False) -> dict[str, Any]:
    """Status (and optionally logs) of a submitted job: ``{"job_id", "status", "message", ...}``.

    Raises:
        InvalidParameterError: the cluster has no job with this id.
    """
    c = _client(address, client)
    try:
        info = c.get_job_info(job_id)
    except RuntimeError as exc:
        if "does not exist" in str(exc) or "404" in str(exc):
            raise InvalidParameterError(
                f"the cluster at {address} has no job {job_id!r}; use the id printed by "
                f"`distmi submit` (list jobs with `ray job list --address {address}`)."
            ) from None
        raise
    status = getattr(info, "status", "UNKNOWN")
    out = {
        "job_id": job_id,
        "status": str(getattr(status, "value", status)),
        "message": getattr(info, "message", None),
        "entrypoint": getattr(info, "entrypoint", None),
        "metadata": getattr(info, "metadata", None),
    }
    if logs:
        out["logs"] = c.get_job_logs(job_id)
    return out


def wait_for_job(job_id: str, address: str, *, client: Any = None, timeout_s: float | None = None,
                 poll_s: float = 2.0, on_change: Callable[[dict[str, Any]], None] | None = None
                 ) -> dict[str, Any]:
    """Poll until the job reaches SUCCEEDED, FAILED or STOPPED (or ``timeout_s`` passes).

    Returns the last status (with ``"timed_out": True`` when the timeout passed first);
    ``on_change`` is called whenever the status changes.
    """
    c = _client(address, client)
    start, last = time.monotonic(), None
    while True:
        info = job_status(job_id, address, client=c)
        if info["status"] != last and on_change is not None:
            on_change(info)
        last = info["status"]
        if last in TERMINAL:
            return {**info, "timed_out": False}
        if timeout_s is not None and time.monotonic() - start >= timeout_s:
            return {**info, "timed_out": True}
        time.sleep(poll_s)


def log_tail(text: str, lines: int) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:]) if lines > 0 else ""
