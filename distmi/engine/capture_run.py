"""Sharded capture: input rows split into shards, each captured by a worker, manifest last.

:func:`run_capture` is the driver of a capture on the engine:

1. It opens the inputs (row count, targets) and starts the workers: one in-process
   :class:`~distmi.store.capture_session.CaptureSession` (``executor="local"``) or Ray actors
   (:mod:`distmi.engine.ray_capture`, GPU actors when the cluster has GPUs).
2. One worker *probes* the first batch: layers, pooling, unit shapes, weights hash. The capture's
   fingerprint (its dataset id, :mod:`distmi.store.capture_fingerprint`) follows, computed
   exactly as the single-process :func:`~distmi.store.capture.capture` computes it.
3. A complete dataset with that fingerprint is returned as it is; an unfinished one is resumed
   (its committed shards are kept); anything else at the output is refused, or replaced when
   asked.
4. The input rows are cut into shards of ``ceil(rows_per_part / batch_size) * batch_size`` rows
   -- the parts a single-process capture writes -- and every missing shard is sent to a worker,
   which writes its part files straight into the dataset (a path on a shared volume or a URI)
   and returns the part's record. The driver lists each record in ``_capture_state.json`` as it
   arrives, so a shard that was being written when its worker died is redone and finished
   shards are never redone.
5. When every part is listed, the driver writes ``targets.parquet`` and ``manifest.json``.

The files are those of a single-process capture of the same inputs (byte for byte for float32
on CPU: same batches, same hooks, same writer, same part boundaries). Memory is bounded on
every process: a worker holds its model, one batch and one row group per layer; the driver
holds the targets and the part records, never activations.

With one row per token (pooling ``"tokens"``) the driver first counts each input's tokens (the
tokenizer without the model) to know where each shard's rows start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from distmi.core.errors import InvalidParameterError, StoreError
from distmi.core.storage import StorePath
from distmi.engine.requests import ExecutorSettings
from distmi.store.capture import capture_record
from distmi.store.capture_fingerprint import capture_settings, fingerprint, targets_digest
from distmi.store.capture_inputs import Inputs, open_inputs
from distmi.store.capture_models import load_tokenizer
from distmi.store.capture_parts import cleanup_carried, targets_table
from distmi.store.capture_session import (
    CaptureRequest,
    CaptureSession,
    Probe,
    ShardTask,
    peak_rss_mb,
)
from distmi.store.capture_state import check_existing, new_state, save_state, state_specs
from distmi.store.reader import ActivationDataset, open_dataset
from distmi.store.writer import DatasetWriter, check_block_units, check_part_rows

Log = Callable[[str], None]
Progress = Callable[[int, int], None]


class CapturePool(Protocol):
    """Workers of a capture: probe once, then run shards (results in completion order)."""

    name: str

    def probe(self) -> Probe: ...

    def run(self, tasks: Sequence[ShardTask], progress: Callable[[int], None]
            ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]: ...

    def close(self) -> None: ...


class LocalCapturePool:
    """Every shard in this process, one after another (one session, loaded on first use)."""

    name = "local"

    def __init__(self, request: CaptureRequest) -> None:
        self.request = request
        self._session: CaptureSession | None = None
        self.n_retried = 0

    @property
    def session(self) -> CaptureSession:
        if self._session is None:
            self._session = CaptureSession(self.request)
        return self._session

    def probe(self) -> Probe:
        return self.session.probe()

    def run(self, tasks: Sequence[ShardTask], progress: Callable[[int], None]
            ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for task in tasks:
            yield self.session.run_shard(task, progress)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = None


def make_capture_pool(request: CaptureRequest, settings: ExecutorSettings | None = None,
                      address: str | None = None) -> CapturePool:
    """The workers ``settings`` ask for: in-process (``local``) or Ray actors (``ray``)."""
    settings = settings or ExecutorSettings(executor="local")
    if settings.executor == "local":
        if address is not None:
            raise InvalidParameterError(
                f"--address {address!r} needs the Ray executor, but the capture runs with "
                "executor 'local'; remove --address or use the Ray executor.")
        return LocalCapturePool(request)
    if settings.executor != "ray":
        raise InvalidParameterError(f"executor must be 'local' or 'ray', got {settings.executor!r}.")
    from distmi.engine.ray_capture import RayCapturePool

    return RayCapturePool(
        request, address=address if address is not None else settings.address,
        workers=settings.workers, cpus_per_worker=settings.cpus_per_worker,
        gpus_per_worker=settings.gpus_per_worker, retries=settings.retries,
        spread=settings.spread)


@dataclass(frozen=True)
class Shard:
    """Input rows ``[input_start, input_stop)`` stored as part ``index`` at rows
    ``[row_start, row_start + n_rows)``."""

    index: int
    input_start: int
    input_stop: int
    row_start: int
    n_rows: int


def plan_capture_shards(n_inputs: int, batch_size: int, rows_per_part: int,
                        token_counts: np.ndarray | None = None) -> list[Shard]:
    """The parts of a capture: ``ceil(rows_per_part / batch_size)`` full batches each.

    Args:
        n_inputs: input rows.
        batch_size: inputs per forward pass.
        rows_per_part: input rows per part (rounded up to whole batches).
        token_counts: unmasked tokens per input, when every token is a stored row.
    """
    span = -(-rows_per_part // batch_size) * batch_size
    shards, row = [], 0
    for k, start in enumerate(range(0, n_inputs, span)):
        stop = min(start + span, n_inputs)
        n = int(token_counts[start:stop].sum()) if token_counts is not None else stop - start
        shards.append(Shard(k, start, stop, row, n))
        row += n
    return shards


@dataclass
class CaptureOutcome:
    """A finished capture: the dataset and what this run did."""

    dataset: ActivationDataset
    shards_total: int
    shards_run: int
    shards_resumed: int
    executor: str
    seconds: float
    driver_peak_rss_mb: float
    shard_stats: list[dict[str, Any]] = field(default_factory=list)

    def worker_peak_rss_mb(self) -> dict[int, float]:
        """Peak resident memory of each worker process (by pid), MB."""
        out: dict[int, float] = {}
        for s in self.shard_stats:
            out[s["pid"]] = max(out.get(s["pid"], 0.0), s["peak_rss_mb"])
        return out


def _open_driver_inputs(request: CaptureRequest) -> Inputs:
    tokenizer = load_tokenizer(request.model.tokenizer) if request.model.tokenizer else None
    return open_inputs(request.inputs, tokenizer)


def _existing(root: StorePath, fp: str, overwrite: bool, replace: bool, log: Log | None) -> Any:
    try:
        return check_existing(root, fp, overwrite)
    except StoreError:
        if not replace or overwrite:
            raise
        if log is not None:
            log(f"{root} holds a dataset or unfinished capture of other settings; capturing "
                "it again")
        return check_existing(root, fp, True)


def run_capture(
    request: CaptureRequest,
    output: str | StorePath,
    *,
    settings: ExecutorSettings | None = None,
    address: str | None = None,
    overwrite: bool = False,
    replace: bool = False,
    log: Log | None = None,
    progress: Progress | None = None,
    pool: CapturePool | None = None,
) -> CaptureOutcome:
    """Capture ``request`` into ``output`` with sharded workers (see module docstring).

    Args:
        request: what to capture.
        output: dataset folder or URI (shared by every worker).
        settings: executor, workers and resources (default: in this process).
        address: Ray address to attach to (overrides ``settings.address``).
        overwrite: replace whatever is at ``output``.
        replace: replace a dataset or unfinished capture of other settings (a same-settings one
            is still reused or resumed); used by jobs, whose capture stage owns the folder.
        log: one-line messages (resume counts, replacements).
        progress: ``progress(inputs_done, n_inputs)`` after each batch (in-process) or shard.
        pool: workers to use (default: :func:`make_capture_pool`; closed at the end).

    Raises:
        StoreError: another dataset or unfinished capture is at ``output`` (without
            ``overwrite``/``replace``).
    """
    t0 = time.perf_counter()
    root = StorePath.of(output)
    part_rows = check_part_rows(request.rows_per_part)
    block = check_block_units(request.block_units)
    inputs = _open_driver_inputs(request)
    own = pool is None
    pool = pool or make_capture_pool(request, settings, address)
    try:
        probe = pool.probe()
        if probe.n_inputs != inputs.n:
            raise StoreError(
                f"the workers see {probe.n_inputs} input rows, the driver {inputs.n}; the inputs "
                "differ between processes (a factory that is not deterministic?).")
        fp = fingerprint(capture_settings(
            model_class=probe.model["class"], weights=probe.weights_sha256, layers=probe.layers,
            pooling=probe.pooling, dtype=request.dtype, batch_size=request.batch_size,
            rows_per_part=part_rows, row_group_rows=request.row_group_rows, block_units=block,
            compression=request.compression, on_nonfinite=request.on_nonfinite,
            n_inputs=inputs.n, first_batch_sha256=probe.first_batch_sha256,
            targets_sha256=targets_digest(inputs.targets, inputs.sample_ids)))
        state = _existing(root, fp, overwrite, replace, log)
        if isinstance(state, ActivationDataset):
            if log is not None:
                log(f"{root} already holds this capture")
            return CaptureOutcome(state, 0, 0, 0, pool.name, time.perf_counter() - t0,
                                  peak_rss_mb())
        if state is None:
            state = new_state(fp, list(probe.specs))
            save_state(root, state)
        specs = state_specs(state)
        counts = inputs.token_counts(0, inputs.n) if probe.token_rows else None
        shards = plan_capture_shards(inputs.n, request.batch_size, part_rows, counts)
        done = {p["index"] for p in state["parts"]}
        todo = [ShardTask(root.uri, fp, tuple(specs), s.index, s.input_start, s.input_stop,
                          s.row_start, s.n_rows, probe.weights_sha256)
                for s in shards if s.index not in done]
        if done and log is not None:
            log(f"resuming the capture in {root}: {len(done)} of {len(shards)} shards are "
                "already committed")
        n_done = [sum(s.input_stop - s.input_start for s in shards if s.index in done)]

        def tick(n: int) -> None:
            n_done[0] += n
            if progress is not None:
                progress(n_done[0], inputs.n)

        tick(0)
        stats = []
        for record, shard_stats in pool.run(todo, tick):
            state["parts"].append(record)
            save_state(root, state)
            stats.append(shard_stats)
    finally:
        if own:
            pool.close()
    parts = sorted(state["parts"], key=lambda p: p["index"])
    if [p["index"] for p in parts] != list(range(len(shards))):  # pragma: no cover - guard
        raise StoreError(f"the capture in {root} is missing parts after every shard ran.")
    frame, kinds = targets_table(root, parts, inputs.targets, inputs.sample_ids,
                                 request.target_kinds or inputs.target_kinds, probe.token_rows)
    writer = DatasetWriter(root, specs, dataset_id=fp, compression=request.compression,
                           row_group_rows=request.row_group_rows,
                           on_nonfinite=request.on_nonfinite)
    writer.finalize(parts, frame, kinds, model=probe.model,
                    capture=capture_record(fp, probe.pooling, request.batch_size, part_rows,
                                           request.dtype, **dict(request.record)))
    cleanup_carried(root, parts)
    return CaptureOutcome(open_dataset(root), len(shards), len(todo), len(done), pool.name,
                          time.perf_counter() - t0, peak_rss_mb(), stats)


__all__ = ["CaptureOutcome", "LocalCapturePool", "make_capture_pool", "plan_capture_shards",
           "run_capture"]
