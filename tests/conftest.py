"""Shared test configuration.

Tests run with one intra-op torch thread: the CI machine has two cores, Ray workers and
pytest share them, and OpenMP thread pools under contention turn microsecond kernels into
milliseconds. Ray tests set the environment Ray 2.60 needs on these machines.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("OMP_NUM_THREADS", "1")

try:  # torch is a dependency, but keep collection working if a test environment lacks it
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(scope="session")
def _ray_session():
    """One local Ray for the whole test session (Ray tests share it; started on first use)."""
    ray = pytest.importorskip("ray")
    started = False
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = True
    yield ray
    if started and ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def ray_local(_ray_session):
    """The session's local Ray (restarted if a cluster test shut it down)."""
    ray = _ray_session
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    return ray
