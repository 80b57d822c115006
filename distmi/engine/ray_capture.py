"""Capture shards on Ray actors (an engine edge module: it imports ray).

Each actor holds one :class:`~distmi.store.capture_session.CaptureSession` (the model loaded
once) and captures one shard at a time, writing the shard's part files straight into the
dataset folder or URI; the driver (:func:`distmi.engine.capture_run.run_capture`) lists each
finished part. Placement:

- ``device: auto`` gives every actor a GPU (``gpus_per_worker``, default 1) when
  ``ray.cluster_resources()`` reports GPUs, and CPU actors otherwise: a CPU-only cluster is
  never asked for GPUs (Ray would wait forever for them). ``device: cuda`` on a cluster without
  GPUs is refused with a message; ``device: cpu`` never asks for GPUs.
- At most as many actors as shards, and as the cluster can place now.

Fault tolerance: an actor, worker process or node that dies while capturing a shard loses that
shard only; the shard goes back to the queue and runs on a fresh actor, up to ``retries`` times.
distmi errors (bad inputs, bad layers) are deterministic and stop the capture at once.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import ray

from distmi.core.errors import DistmiError, InvalidParameterError
from distmi.engine.executors import EngineError
from distmi.engine.ray_executor import _SYSTEM_ERRORS, _unwrap, ensure_ray
from distmi.store.capture_session import CaptureRequest, CaptureSession, Probe, ShardTask


class _CaptureActor:
    """Actor body: a capture session that reports its node."""

    def __init__(self, request: CaptureRequest) -> None:
        if request.threads is not None:
            os.environ.setdefault("OMP_NUM_THREADS", str(request.threads))
        self.session = CaptureSession(request)
        self.node_id = ray.get_runtime_context().get_node_id()

    def probe(self) -> Probe:
        return self.session.probe()

    def run(self, task: ShardTask) -> tuple[dict[str, Any], dict[str, Any]]:
        record, stats = self.session.run_shard(task)
        stats["node_id"] = self.node_id
        return record, stats


def _gpus_for(device: str, gpus_per_worker: float, cluster_gpus: float) -> float:
    """GPUs each capture actor asks for (never more than the cluster has)."""
    if device == "cpu":
        return 0.0
    if device.startswith("cuda") and cluster_gpus <= 0:
        raise InvalidParameterError(
            f"the capture asks for device {device!r} but the Ray cluster reports no GPUs; use "
            "device 'auto' (GPU actors when the cluster has GPUs, CPU otherwise) or 'cpu'.")
    if cluster_gpus <= 0:
        return 0.0
    return gpus_per_worker if gpus_per_worker > 0 else 1.0


class RayCapturePool:
    """Capture actors on a local or remote Ray cluster (see module docstring).

    Args:
        request: the capture.
        address: Ray address to attach to; None starts (or reuses) a local instance.
        workers: actors to start (at most one per shard and what the cluster fits).
        cpus_per_worker: CPUs each actor reserves.
        gpus_per_worker: GPUs each actor reserves when the cluster has GPUs (0: one each).
        retries: re-runs of a shard whose actor died.
        spread: place actors on different nodes.
    """

    name = "ray"

    def __init__(self, request: CaptureRequest, *, address: str | None = None, workers: int = 2,
                 cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, retries: int = 3,
                 spread: bool = False) -> None:
        self.request = request
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.retries = retries
        self.spread = spread
        self.n_retried = 0
        self._started = False
        self._actors: list[Any] = []
        self._actor_cls: Any = None

    def _ensure_actors(self, wanted: int) -> None:
        if self._actor_cls is None:
            self._started = ensure_ray(self.address) or self._started
            resources = ray.cluster_resources()
            gpus = _gpus_for(str(self.request.device), self.gpus_per_worker,
                             resources.get("GPU", 0.0))
            capacity = int(resources.get("CPU", 0) / self.cpus_per_worker + 1e-9)
            if gpus > 0:
                capacity = min(capacity, int(resources["GPU"] / gpus + 1e-9))
            if capacity < 1:
                raise EngineError(
                    f"the Ray cluster has {resources.get('CPU', 0)} CPUs and "
                    f"{resources.get('GPU', 0)} GPUs, not enough for one capture worker with "
                    f"{self.cpus_per_worker} CPU(s) and {gpus} GPU(s); lower them or add nodes.")
            if self.workers > capacity:
                warnings.warn(
                    f"{self.workers} capture workers asked for, the cluster fits {capacity} now; "
                    f"using {capacity}.", RuntimeWarning, stacklevel=3)
            self.capacity = capacity
            options: dict[str, Any] = dict(num_cpus=self.cpus_per_worker, num_gpus=gpus,
                                           max_restarts=0)
            if self.spread:
                options["scheduling_strategy"] = "SPREAD"
            device = "cpu" if gpus == 0 else ("cuda" if self.request.device == "auto"
                                              else self.request.device)
            self._request = replace(self.request, device=device)
            self._actor_cls = ray.remote(_CaptureActor).options(**options)
        n = max(1, min(self.workers, self.capacity, wanted))
        while len(self._actors) < n:
            self._actors.append(self._actor_cls.remote(self._request))

    def probe(self) -> Probe:
        self._ensure_actors(self.workers)
        try:
            return ray.get(self._actors[0].probe.remote())
        except DistmiError as exc:
            raise _unwrap(exc) from None

    def run(self, tasks: Sequence[ShardTask], progress: Callable[[int], None]
            ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        if not tasks:
            return
        self._ensure_actors(len(tasks))
        pending = deque(tasks)
        idle = list(range(len(self._actors)))
        inflight: dict[Any, tuple[int, ShardTask]] = {}
        attempts: dict[int, int] = {}
        while pending or inflight:
            while pending and idle:
                i = idle.pop(0)
                task = pending.popleft()
                inflight[self._actors[i].run.remote(task)] = (i, task)
            ref = ray.wait(list(inflight), num_returns=1)[0][0]
            i, task = inflight.pop(ref)
            try:
                record, stats = ray.get(ref)
            except DistmiError as exc:
                raise _unwrap(exc) from None
            except (*_SYSTEM_ERRORS, ray.exceptions.RayTaskError) as exc:
                n = attempts[task.index] = attempts.get(task.index, 0) + 1
                if n > self.retries:
                    cause = getattr(exc, "cause", None) or exc
                    raise EngineError(
                        f"capture shard {task.index} (inputs {task.input_start}.."
                        f"{task.input_stop}) failed {n} time(s) on Ray; last error: "
                        f"{type(cause).__name__}: {str(cause)[:500]}. Raise retries or check "
                        "the cluster (`ray status`).") from exc
                self.n_retried += 1
                pending.appendleft(task)
                if isinstance(exc, _SYSTEM_ERRORS):  # the actor is gone: start a fresh one
                    ray.kill(self._actors[i], no_restart=True)
                    self._actors[i] = self._actor_cls.remote(self._request)
                idle.append(i)
                continue
            idle.append(i)
            progress(task.input_stop - task.input_start)
            yield record, stats

    def close(self) -> None:
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False


__all__ = ["RayCapturePool"]
