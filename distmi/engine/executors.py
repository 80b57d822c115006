"""Executors run batches and yield their outputs as they finish; the in-process one lives here.

An executor is anything with ``run(batches, task) -> Iterator[BatchOutput]``. Outputs may come
back in any order; the reducer sorts rows by key, so the order never changes the committed
table. :class:`InProcessExecutor` runs batches one after another in this process (no Ray); the
Ray executor (:mod:`distmi.engine.ray_executor`, the only module that imports ray) spreads them
over actors. :func:`make_executor` picks one from :class:`~distmi.engine.requests.ExecutorSettings`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from distmi.core.errors import DistmiError, InvalidParameterError
from distmi.engine.plan import WorkBatch
from distmi.engine.requests import ExecutorSettings
from distmi.engine.worker import BatchOutput, BatchWorker, TaskConfig


class EngineError(DistmiError, RuntimeError):
    """A batch kept failing after its retries (the message names the batch and the last error)."""


class Executor(Protocol):
    """Runs work batches; yields one :class:`BatchOutput` per batch, in completion order."""

    name: str

    def run(self, batches: Sequence[WorkBatch], task: TaskConfig) -> Iterator[BatchOutput]: ...

    def close(self) -> None: ...


def make_worker(task: TaskConfig):
    """The worker that runs ``task``'s batches: a :class:`BatchWorker` for MI pair jobs, or the
    task's own ``make_worker()`` when it has one. Analyses whose work units are not MI pairs
    (e.g. one decomposition per layer, :mod:`distmi.analyses.decompose.job`) bring a task with
    ``make_worker`` and units with ``batch_id``, ``layer`` and ``shard``, and run on these same
    executors (retries, Ray actors, fault tolerance)."""
    factory = getattr(task, "make_worker", None)
    return factory() if callable(factory) else BatchWorker(task)


class InProcessExecutor:
    """Runs every batch in the calling process with one :class:`BatchWorker`.

    Args:
        retries: re-runs of a batch that raised an unexpected (non-distmi) error. distmi errors
            (bad parameters, bad data) are deterministic and fail at once.
    """

    name = "local"

    def __init__(self, retries: int = 0) -> None:
        self.retries = retries
        self.n_retried = 0

    def run(self, batches: Sequence[WorkBatch], task: TaskConfig) -> Iterator[BatchOutput]:
        worker = make_worker(task)
        for batch in batches:
            for attempt in range(self.retries + 1):
                try:
                    out = worker.run(batch)
                    break
                except DistmiError:
                    raise
                except Exception as exc:
                    if attempt == self.retries:
                        raise EngineError(
                            f"batch {batch.batch_id} failed {attempt + 1} time(s); last error: "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
                    self.n_retried += 1
                    worker = make_worker(task)  # a fresh worker, like a restarted actor
            yield out

    def close(self) -> None:
        return None


def make_executor(settings: ExecutorSettings, address: str | None = None) -> Executor:
    """The executor ``settings`` ask for (``address`` overrides ``settings.address``)."""
    if settings.executor not in ("local", "ray"):
        raise InvalidParameterError(
            f"executor must be 'local' or 'ray', got {settings.executor!r}."
        )
    if settings.executor == "local":
        if address is not None:
            raise InvalidParameterError(
                f"--address {address!r} needs the Ray executor, but the job sets scaling.executor "
                "'local'; remove --address or set scaling.executor: ray."
            )
        return InProcessExecutor(retries=settings.retries)
    from distmi.engine.ray_executor import RayExecutor

    return RayExecutor(
        address=address if address is not None else settings.address,
        workers=settings.workers,
        cpus_per_worker=settings.cpus_per_worker,
        gpus_per_worker=settings.gpus_per_worker,
        max_in_flight=settings.max_in_flight,
        retries=settings.retries,
        spread=settings.spread,
    )
