"""``distmi audit --submit URL``: run an audit on a Ray cluster through the Jobs API and wait
for its verdict, so a scheduler outside the cluster (a Kubernetes CronJob, cron) can gate on
the exit code.

The submission is the one ``distmi submit`` builds (working directory, excludes, env vars, id
and metadata; relative output, dataset and baseline paths refused on a cluster of other
machines) with the entry point replaced by
``python -m distmi.cli audit JOB --address auto [--output O] [--dataset D] --baseline B ...``,
run as the driver on the head node. :func:`wait_for_verdict` polls the job until it ends and
maps the driver's exit code (Ray's ``JobInfo.driver_exit_code``): 0 no drift, 1 drift;
anything else (a failed or stopped job, a lost driver, a timeout) is an error, 2.
"""

from __future__ import annotations

import dataclasses
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distmi.jobs.spec import JobSpec
from distmi.jobs.submit import (
    TERMINAL,
    Submission,
    build_submission,
    check_address,
    resolve_location,
)

EXIT_ERROR = 2


def build_audit_submission(
    job_file: str | Path,
    spec: JobSpec,
    *,
    baseline: str,
    output: str | None = None,
    dataset: str | None = None,
    extra_args: list[str] | None = None,
    working_dir: str | Path = ".",
    pip: list[str] | None = None,
    single_machine: bool = False,
) -> Submission:
    """The Jobs API submission of ``distmi audit`` for ``job_file`` (see module docstring).

    Args:
        job_file: the audit's job file, inside ``working_dir``.
        spec: the job as its file says (overrides go in ``output`` and ``dataset``).
        baseline: the baseline results, where the cluster reads them (a URI or a shared path).
        output, dataset: overrides of the job's ``output`` and ``dataset.path`` (expanded: no
            ``{date}`` left).
        extra_args: further ``distmi audit`` arguments (``--report``, ``--workers``, ...).
        single_machine: every node of the cluster is this machine (relative paths are made
            absolute instead of refused).

    Raises:
        SpecError: as :func:`~distmi.jobs.submit.build_submission`, and for a relative baseline
            on a cluster of other machines.
    """
    sub = build_submission(job_file, spec, working_dir=working_dir, pip=pip,
                           single_machine=single_machine, output=output, dataset=dataset)
    base = resolve_location(baseline, "audit.baseline", "--baseline", Path(working_dir).resolve(),
                            single_machine=single_machine)
    argv = shlex.split(sub.entrypoint)  # python -m distmi.cli run REL --address auto [...]
    argv[3] = "audit"
    argv += ["--baseline", base, *(extra_args or [])]
    metadata = {**sub.metadata, "distmi_audit": "1", "baseline": base}
    return dataclasses.replace(sub, entrypoint=shlex.join(argv),
                               submission_id=sub.submission_id.replace("distmi-", "distmi-audit-", 1),
                               metadata=metadata)


def _status(info: Any) -> str:
    status = getattr(info, "status", "UNKNOWN")
    return str(getattr(status, "value", status))


def wait_for_verdict(
    job_id: str,
    address: str,
    *,
    client: Any = None,
    poll_s: float = 10.0,
    timeout_s: float = 86400.0,
    sleep: Callable[[float], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[int, str]:
    """Wait for a submitted audit to end; return (exit code, one-line explanation)."""
    if client is None:
        from distmi.engine.ray_executor import submission_client

        client = submission_client(check_address(address))
    sleep = sleep or time.sleep
    waited = 0.0
    last = None
    while True:
        info = client.get_job_info(job_id)
        status = _status(info)
        if status != last and log is not None:
            log(f"{job_id}: {status}")
        last = status
        if status in TERMINAL:
            break
        if waited >= timeout_s:
            return EXIT_ERROR, (f"{job_id} did not finish within {timeout_s:.0f} s (still "
                                f"{status}); the audit is still running on the cluster")
        sleep(poll_s)
        waited += poll_s
    code = getattr(info, "driver_exit_code", None)
    message = getattr(info, "message", None) or ""
    if status == "SUCCEEDED":
        return 0, f"{job_id} succeeded: no drift"
    if status == "FAILED" and code == 1:
        return 1, f"{job_id} ended with exit code 1: drift (see audit.json in its output)"
    detail = f"exit code {code}" if code is not None else "no exit code"
    return EXIT_ERROR, f"{job_id} {status.lower()} ({detail}): {message}".rstrip(": ")
