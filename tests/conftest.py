"""Shared test configuration.

Tests run with one intra-op torch thread: the CI machine has two cores, Ray workers and
pytest share them, and OpenMP thread pools under contention turn microsecond kernels into
milliseconds. Ray tests set the environment Ray 2.60 needs on these machines.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("OMP_NUM_THREADS", "1")

try:  # torch is a dependency, but keep collection working if a test environment lacks it
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass
