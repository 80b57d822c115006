"""The Ray executor: batches spread over long-lived actors. The only module of distmi that
imports ray.

Design (measured on 2-core machines, see ``docs/engine.md``):

- ``workers`` actors, each a :class:`~distmi.engine.worker.BatchWorker` holding an LRU cache of
  the Parquet shards it has read (pyarrow, no Ray Data), with ``cpus_per_worker`` (fractional
  allowed) and ``gpus_per_worker`` only when ``ray.cluster_resources()`` reports GPUs: asking a
  CPU-only cluster for GPUs would wait forever, so the executor falls back to CPU with a
  warning. Each actor runs torch with ``threads`` intra-op threads.
- At most ``max_in_flight`` batches are queued per actor, so memory stays bounded and a lost
  actor loses little work; a batch goes to the least-loaded live actor, preferring one that
  already ran a batch of the same shard (its cache holds the data).
- Fault tolerance: actors restart (``max_restarts``) and Ray retries their queued calls
  (``max_task_retries``); a call that still fails with a system error (actor or node died,
  worker crashed) is resubmitted to a fresh actor, up to ``retries`` times per batch. distmi
  errors (invalid parameters or data) are deterministic and fail the job at once.
- Embedded local Ray by default (``ray.init(address="local")``, no dashboard); ``address``
  attaches to a running cluster; an already initialised Ray is reused and left running.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import ray

from distmi.core.errors import DistmiError
from distmi.engine.executors import EngineError, make_worker
from distmi.engine.plan import WorkBatch
from distmi.engine.worker import BatchOutput, TaskConfig

_SYSTEM_ERRORS: tuple[type[BaseException], ...] = (
    ray.exceptions.RayActorError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OwnerDiedError,
)


class _RayWorker:
    """Actor body: a BatchWorker that reports which node it runs on."""

    def __init__(self, task: TaskConfig) -> None:
        os.environ.setdefault("OMP_NUM_THREADS", str(task.threads))
        self.worker = make_worker(task)
        self.node_id = ray.get_runtime_context().get_node_id()

    def run(self, batch: WorkBatch) -> BatchOutput:
        out = self.worker.run(batch)
        out.node_id = self.node_id
        return out

    def ping(self) -> str:
        return self.node_id


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Initialise Ray if needed; return True when this call started it (caller shuts it down).

    ``address=None`` starts an embedded local instance (``address="local"``), else it connects
    (``"auto"``, ``"ray://HEAD:10001"``, ``"HEAD:6379"``).
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING)
    if address is None:
        # an embedded instance serves this process only; Ray 2.60's token auth otherwise
        # writes ~/.ray/auth_token and later clients fail with a token mismatch
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        kwargs.update(address="local", include_dashboard=False,
                      num_cpus=num_cpus or os.cpu_count() or 1)
    else:
        kwargs.update(address=address)
    ray.init(**kwargs)
    return True


class RayExecutor:
    """Runs batches on Ray actors (see module docstring).

    Args:
        address: Ray address to attach to; None starts (or reuses) a local instance.
        workers: number of actors.
        cpus_per_worker / gpus_per_worker: resources per actor (fractions allowed).
        max_in_flight: batches queued per actor.
        retries: resubmissions of a batch after system failures (and actor restarts).
        on_output: optional callback run in the driver after each finished batch.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int = 2, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float = 0.0, max_in_flight: int = 2, retries: int = 3,
                 spread: bool = False) -> None:
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.max_in_flight = max_in_flight
        self.retries = retries
        self.spread = spread
        self.n_retried = 0
        self.n_actors_replaced = 0
        self.on_output = None
        self._started = False

    def _actor_class(self) -> tuple[Any, int]:
        """The actor class with its resource options, and how many actors the cluster can hold."""
        resources = ray.cluster_resources()
        gpus = self.gpus_per_worker
        if gpus > 0 and resources.get("GPU", 0) <= 0:
            warnings.warn(
                f"gpus_per_worker={gpus} but the Ray cluster reports no GPUs; running on CPU "
                "(set scaling.gpus_per_worker: 0 to silence this).", RuntimeWarning, stacklevel=3)
            gpus = 0.0
        capacity = int(resources.get("CPU", 0) / self.cpus_per_worker + 1e-9)
        if gpus > 0:
            capacity = min(capacity, int(resources["GPU"] / gpus + 1e-9))
        if capacity < 1:
            raise EngineError(
                f"the Ray cluster has {resources.get('CPU', 0)} CPUs and "
                f"{resources.get('GPU', 0)} GPUs, not enough for one worker with "
                f"cpus_per_worker={self.cpus_per_worker} and gpus_per_worker={gpus}; lower "
                "them in scaling or add nodes."
            )
        if self.workers > capacity:
            warnings.warn(
                f"scaling.workers={self.workers} but the cluster fits {capacity} workers of "
                f"{self.cpus_per_worker} CPU(s) now; using {capacity} (actors that cannot be "
                "placed would hold their queued batches forever).", RuntimeWarning, stacklevel=3)
        options: dict[str, Any] = dict(
            num_cpus=self.cpus_per_worker, num_gpus=gpus,
            max_restarts=self.retries, max_task_retries=self.retries,
        )
        if self.spread:
            options["scheduling_strategy"] = "SPREAD"
        return ray.remote(_RayWorker).options(**options), capacity

    def run(self, batches: Sequence[WorkBatch], task: TaskConfig) -> Iterator[BatchOutput]:
        self._started = ensure_ray(self.address) or self._started
        if not batches:
            return
        actor_cls, capacity = self._actor_class()
        n_actors = max(1, min(self.workers, capacity, len(batches)))
        actors: list[Any] = [actor_cls.remote(task) for _ in range(n_actors)]
        load = [0] * n_actors
        last_shard: list[tuple | None] = [None] * n_actors
        pending = deque(batches)
        attempts: dict[str, int] = {}
        inflight: dict[Any, tuple[int, WorkBatch, Any]] = {}

        def submit(batch: WorkBatch) -> None:
            candidates = [i for i in range(n_actors) if load[i] < self.max_in_flight]
            key = (batch.layer, batch.shard)
            same = [i for i in candidates if last_shard[i] == key]
            i = min(same or candidates, key=lambda k: load[k])
            ref = actors[i].run.remote(batch)
            inflight[ref] = (i, batch, actors[i])
            load[i] += 1
            last_shard[i] = key

        try:
            while pending or inflight:
                while pending and any(v < self.max_in_flight for v in load):
                    submit(pending.popleft())
                done, _ = ray.wait(list(inflight), num_returns=1)
                ref = done[0]
                i, batch, actor = inflight.pop(ref)
                load[i] -= 1
                try:
                    out = ray.get(ref)
                except DistmiError as exc:  # RayTaskError subclasses the cause's class
                    raise _unwrap(exc) from None
                except _SYSTEM_ERRORS as exc:  # the actor, its process or its node died
                    self._failed(batch, exc, attempts, pending)
                    if isinstance(exc, ray.exceptions.RayActorError) and actors[i] is actor:
                        actors[i] = self._replace(actor, actor_cls, task)
                        last_shard[i] = None
                    continue
                except ray.exceptions.RayTaskError as exc:  # e.g. a transient I/O error
                    self._failed(batch, exc, attempts, pending)
                    continue
                if self.on_output is not None:
                    self.on_output(out)
                yield out
        finally:
            for a in actors:
                ray.kill(a, no_restart=True)

    def _failed(self, batch: WorkBatch, exc: Exception, attempts: dict[str, int],
                pending: deque) -> None:
        """Re-queue a failed batch, or raise :class:`EngineError` once its retries are spent."""
        n = attempts[batch.batch_id] = attempts.get(batch.batch_id, 0) + 1
        if n > self.retries:
            cause = getattr(exc, "cause", None) or exc
            raise EngineError(
                f"batch {batch.batch_id} failed {n} time(s) on Ray; last error: "
                f"{type(cause).__name__}: {str(cause)[:500]}. Raise `retries` in the job or "
                "check the cluster (`ray status`)."
            ) from exc
        self.n_retried += 1
        pending.appendleft(batch)

    def _replace(self, actor: Any, actor_cls: Any, task: TaskConfig) -> Any:
        """Kill a dead actor for good and start a fresh one (its queued calls fail and re-queue)."""
        ray.kill(actor, no_restart=True)
        self.n_actors_replaced += 1
        return actor_cls.remote(task)

    def close(self) -> None:
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False


def _unwrap(exc: BaseException) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, DistmiError) else exc


def _auth_refused(address: str, exc: BaseException) -> DistmiError:
    from distmi.core.errors import InvalidParameterError

    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InvalidParameterError(
        f"the Ray cluster at {address} refused the request ({first}): it requires token "
        "authentication; set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or "
        "the file ~/.ray/auth_token, or RAY_AUTH_TOKEN_PATH) before running distmi; see "
        "cluster/README.md."
    )


class _JobsClient:
    """A ``JobSubmissionClient`` whose token-auth refusals become distmi errors."""

    def __init__(self, address: str) -> None:
        from ray.job_submission import JobSubmissionClient

        self._address = address
        self._client = self._guard(lambda: JobSubmissionClient(address))

    def _guard(self, call):
        from ray.exceptions import AuthenticationError

        try:
            return call()
        except AuthenticationError as exc:
            raise _auth_refused(self._address, exc) from None

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return lambda *args, **kwargs: self._guard(lambda: attr(*args, **kwargs))


def submission_client(address: str):
    """A ``ray.job_submission.JobSubmissionClient`` for the dashboard at ``address``.

    Calls that the cluster refuses for want of a valid Ray token raise
    :class:`~distmi.core.errors.InvalidParameterError` saying how to give the token.
    """
    return _JobsClient(address)


def cluster_node_ips(address: str) -> list[str]:
    """IP addresses of the alive nodes of the cluster whose dashboard is at ``address``.

    Uses Ray's state API through the dashboard (token auth applies as for job submission).
    A cluster that has just started may report no node yet; callers retry.

    Raises:
        ConnectionError: the dashboard cannot be reached.
        InvalidParameterError: the cluster refused this client's Ray token.
    """
    from ray.exceptions import AuthenticationError
    from ray.util.state import list_nodes
    from ray.util.state.exception import RayStateApiException

    try:
        nodes = list_nodes(address=address, filters=[("state", "=", "ALIVE")],
                           raise_on_missing_output=False)
    except AuthenticationError as exc:
        raise _auth_refused(address, exc) from None
    except RayStateApiException as exc:  # unreachable dashboard, ...
        if "401" in str(exc) or "403" in str(exc):
            raise _auth_refused(address, exc) from None
        raise ConnectionError(str(exc)) from exc
    return [str(n.node_ip) for n in nodes]
