"""A real local Ray head with its dashboard, for the `distmi submit` / `distmi status` tests.

``ray start --head --block`` bound to 127.0.0.1 with free ports for every service (other Ray
instances may run on the machine, so no default port is used) and its own temp dir; stopped by
terminating the ``ray start`` process we started (never ``ray stop``, which would stop every
Ray on the machine), then its process group if anything is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).parents[2]
_PORT_OPTIONS = ("port", "dashboard-port", "ray-client-server-port", "node-manager-port",
                 "object-manager-port", "metrics-export-port", "dashboard-agent-listen-port",
                 "dashboard-agent-grpc-port", "runtime-env-agent-port")


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _launch(num_cpus: int, env: dict[str, str] | None):
    """``ray start --head --block`` on fresh free ports: (process, url, temp dir, log, env)."""
    ray_bin = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="dmh", dir="/tmp")  # short: Ray's socket paths are limited
    ports = _free_ports(len(_PORT_OPTIONS) + 1)
    worker_lo = ports[-1]
    head_env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                # job entry points run `python`: this interpreter, as a cluster image's would
                "PATH": os.pathsep.join([str(ray_bin.parent), os.environ.get("PATH", "")]),
                **(env or {})}
    cmd = [str(ray_bin), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
           "--dashboard-host=127.0.0.1", "--include-dashboard=true", f"--num-cpus={num_cpus}",
           f"--temp-dir={temp}", "--disable-usage-stats",
           f"--min-worker-port={worker_lo}", f"--max-worker-port={worker_lo + 50}",
           *(f"--{name}={port}" for name, port in zip(_PORT_OPTIONS, ports, strict=False))]
    log = open(Path(temp) / "ray-start.log", "w")  # closed by _stop
    proc = subprocess.Popen(cmd, env=head_env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=temp)
    return proc, f"http://127.0.0.1:{ports[1]}", temp, log, head_env


def _stop(proc, temp: str, log) -> None:
    proc.terminate()  # `ray start --block` drains the node and stops what it started
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    try:  # anything left in the session we created
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    log.close()
    shutil.rmtree(temp, ignore_errors=True)


class _PortTaken(RuntimeError):
    """The head exited because a port picked as free was taken before Ray bound it."""


@contextmanager
def ray_head(num_cpus: int = 2, env: dict[str, str] | None = None, timeout_s: float = 120,
             attempts: int = 3):
    """Start a head; yield ``(dashboard_url, temp_dir)``; stop it at the end.

    ``env`` adds to the head's environment, e.g. ``RAY_AUTH_MODE=token`` with ``RAY_AUTH_TOKEN``
    for a head with token auth. Free ports are picked, released and then bound by Ray, so
    another process (another Ray on the machine) can take one in between; a start that exits
    or does not come up within ``timeout_s`` is retried on fresh ports, up to ``attempts``
    times (the last error is raised).
    """
    for attempt in range(attempts):
        proc, url, temp, log, head_env = _launch(num_cpus, env)
        try:
            _wait_until_up(proc, url, temp, head_env, timeout_s)
        except RuntimeError:  # a port taken in between, or a start that hung on a busy machine
            _stop(proc, temp, log)
            if attempt + 1 == attempts:
                raise
            continue
        except BaseException:
            _stop(proc, temp, log)
            raise
        break
    try:
        yield url, temp
    finally:
        _stop(proc, temp, log)


def _wait_until_up(proc, url: str, temp: str, head_env: dict, timeout_s: float) -> None:
    token = head_env.get("RAY_AUTH_TOKEN") if head_env["RAY_AUTH_MODE"] == "token" else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            text = (Path(temp) / "ray-start.log").read_text()[-2000:]
            busy = ("Address already in use" in text or "Failed to start the grpc server" in text
                    or "Failed to start GCS" in text)
            kind = _PortTaken if busy else RuntimeError
            raise kind(f"ray start exited ({proc.returncode}): {text}")
        try:  # up, and listing its node (the state API lags the start by a few seconds)
            request = urllib.request.Request(url + "/api/v0/nodes?limit=10", headers=headers)
            nodes = urllib.request.urlopen(request, timeout=5).read()
            if b'"node_ip"' in nodes:
                return
            time.sleep(0.5)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray dashboard at {url} did not come up") from None
            time.sleep(0.5)
