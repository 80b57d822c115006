"""One capture worker: a model and its inputs loaded once, probed, then shards run on demand.

A :class:`CaptureRequest` says what to capture (model, inputs, layers, pooling, dtype, batch
size, layout). A :class:`CaptureSession` is its worker side, the same in the driver process
and in a Ray actor: it loads the model (:mod:`distmi.store.capture_models`) and opens the inputs
(:mod:`distmi.store.capture_inputs`), then

- :meth:`CaptureSession.probe` runs the first batch and reports what the capture will store
  (layers, pooling, per-layer unit shapes, the fingerprint ingredients);
- :meth:`CaptureSession.run_shard` captures input rows ``[input_start, input_stop)`` as part
  ``index`` of the dataset, writing the part's files straight into the dataset folder (a path
  or URI), and returns the part's record.

A shard runs the same batches, through the same hooks and writer, as a single-process
:func:`~distmi.store.capture.capture`, so its part is the same file. Every session checks its
model's weights hash against the probe's, so a factory that builds different weights in
different processes fails instead of mixing two models in one dataset.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from distmi.core.errors import DistmiError, InvalidInputError, InvalidParameterError, StoreError
from distmi.core.storage import StorePath
from distmi.store.batches import fingerprint_batch
from distmi.store.capture import CAPTURE_DTYPES, model_record, recorded_dtype
from distmi.store.capture_fingerprint import weights_sha256
from distmi.store.capture_inputs import Inputs, InputsRef, open_inputs
from distmi.store.capture_models import ModelSource, load_model, load_tokenizer
from distmi.store.capture_parts import Cursor, layer_specs, write_carried, write_parts
from distmi.store.capture_recorder import Recorder
from distmi.store.modules import (
    POOLING_ALIASES,
    expand_layers,
    glob_regex,
    is_pattern,
    resolve_pooling,
)
from distmi.store.writer import DatasetWriter, LayerSpec, check_block_units

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class CaptureRequest:
    """What to capture (everything that changes the stored bytes, plus where to run).

    Attributes:
        model: the model (:func:`~distmi.store.capture_models.resolve_model`).
        inputs: the inputs (:class:`~distmi.store.capture_inputs.InputsRef`).
        layers: names, globs (``encoder.layer.*``) or ``"all"``.
        pooling: one pooling for every layer, or ``((name_or_glob, pooling), ...)`` pairs
            (the first match wins; the name ``"default"`` matches every layer). With text
            inputs ``"none"`` means one row per token (``"tokens"``).
        batch_size: inputs per forward pass.
        dtype: stored dtype (float32, float16, bfloat16, float64).
        device: ``"auto"`` (a GPU when the process has one), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        rows_per_part: input rows per part (and per shard).
        threads: torch intra-op threads of each worker (None: leave torch's setting).
    """

    model: ModelSource
    inputs: InputsRef
    layers: tuple[str, ...]
    pooling: str | tuple[tuple[str, str], ...] = "mean"
    batch_size: int = 64
    dtype: str = "float32"
    device: str = "auto"
    rows_per_part: int = 2048
    block_units: int | None = None
    row_group_rows: int | None = None
    compression: str = "none"
    on_nonfinite: str = "raise"
    target_kinds: Mapping[str, str] | None = None
    threads: int | None = None
    record: Mapping[str, Any] = field(default_factory=dict)  # extra manifest capture facts


@dataclass(frozen=True)
class Probe:
    """What a capture stores, learnt from its first batch."""

    layers: tuple[str, ...]
    pooling: dict[str, str]
    specs: tuple[LayerSpec, ...]
    first_batch_sha256: str
    weights_sha256: str
    model: dict[str, Any]
    n_inputs: int
    token_rows: bool


@dataclass(frozen=True)
class ShardTask:
    """Input rows ``[input_start, input_stop)`` captured as part ``index`` (stored rows from
    ``row_start``; ``n_rows`` of them when known in advance)."""

    root: str
    dataset_id: str
    specs: tuple[LayerSpec, ...]
    index: int
    input_start: int
    input_stop: int
    row_start: int
    n_rows: int
    weights_sha256: str


def pick_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when this process sees a GPU, else ``"cpu"``; checks others."""
    import torch

    text = str(device)
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return text
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InvalidParameterError(
                f"device {text!r} was asked for, but this process sees no CUDA GPU; use device "
                "'auto' (a GPU when there is one) or 'cpu'.")
        return text
    raise InvalidParameterError(
        f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}.")


def resolve_pooling_patterns(pooling: Any, layers: list[str], text: bool) -> dict[str, str]:
    """A pooling per layer from one name or ordered ``(name or glob, pooling)`` pairs."""
    if isinstance(pooling, str):
        chosen = dict.fromkeys(layers, pooling)
    else:
        pairs = list(pooling.items()) if isinstance(pooling, Mapping) else list(pooling)
        chosen = {}
        for name in layers:
            for key, value in pairs:
                if key == name or key == "default" or (is_pattern(key) and glob_regex(key).match(name)):
                    chosen[name] = value
                    break
            else:
                raise InvalidParameterError(
                    f"pooling gives no pooling for layer {name!r}; add it, a glob matching it, "
                    "or a 'default' entry.")
        unused = [k for k, _ in pairs if k != "default" and not any(
            k == n or (is_pattern(k) and glob_regex(k).match(n)) for n in layers)]
        if unused:
            raise InvalidParameterError(
                f"pooling names {unused}, which match no captured layer; captured: {layers}.")
    out = {}
    for name, value in chosen.items():
        value = POOLING_ALIASES.get(value, value)
        out[name] = "tokens" if text and value == "none" else value
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class CaptureSession:
    """The worker side of a capture (see module docstring)."""

    def __init__(self, request: CaptureRequest) -> None:
        import torch

        if request.dtype not in CAPTURE_DTYPES:
            raise InvalidParameterError(
                f"dtype must be one of {list(CAPTURE_DTYPES)}, got {request.dtype!r}.")
        self._threads_before = torch.get_num_threads()
        if request.threads is not None:
            torch.set_num_threads(int(request.threads))
        self.request = request
        self.device = pick_device(request.device)
        self.model = load_model(request.model, self.device)
        tokenizer = load_tokenizer(request.model.tokenizer) if request.model.tokenizer else None
        self.inputs: Inputs = open_inputs(request.inputs, tokenizer)
        self.layers = expand_layers(self.model, request.layers)
        self.pooling = resolve_pooling(  # checks the names and that rows are of one kind
            resolve_pooling_patterns(request.pooling, self.layers, self.inputs.is_text),
            self.layers)
        self.weights = weights_sha256(self.model)
        self.token_rows = "tokens" in self.pooling.values()
        if request.inputs.token_targets and not self.token_rows:
            raise InvalidParameterError(
                "token_targets label tokens, but these layers are pooled to one row per input; "
                "use pooling 'none' (one row per token) or remove token_targets.")
        if hasattr(self.inputs, "emit_token_targets"):
            self.inputs.emit_token_targets = self.token_rows

    def close(self) -> None:
        """Give torch back the thread count it had before this session."""
        import torch

        torch.set_num_threads(self._threads_before)

    def _recorder(self) -> Recorder:
        return Recorder(self.model, self.layers, self.pooling, recorded_dtype(self.request.dtype))

    def probe(self) -> Probe:
        """Run the first batch; what the capture will store."""
        import torch

        first = next(self.inputs.batches(0, min(self.request.batch_size, self.inputs.n),
                                         self.request.batch_size))
        recorder = self._recorder()
        try:
            with torch.inference_mode():
                outs = _run_first(recorder, self.model, first, self.device)
        finally:
            recorder.close()
        specs = layer_specs(outs, recorder.applied, self.request.dtype,
                            check_block_units(self.request.block_units), first)
        return Probe(
            layers=tuple(self.layers), pooling=dict(self.pooling), specs=tuple(specs),
            first_batch_sha256=fingerprint_batch(first), weights_sha256=self.weights,
            model=model_record(self.model, self.request.model.model_id, self.weights, None),
            n_inputs=self.inputs.n, token_rows=self.token_rows)

    def run_shard(self, task: ShardTask, progress: Callable[[int], None] | None = None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Capture one shard into ``task.root``; return (part record, stats)."""
        import torch

        if task.weights_sha256 != self.weights:
            raise InvalidInputError(
                f"the model built in this worker has weights sha256 {self.weights[:12]}..., but "
                f"the capture was planned with {task.weights_sha256[:12]}...: the model factory "
                "does not build the same weights in every process (seed its random "
                "initialisation, or load trained weights from a file).")
        t0, cpu0 = time.perf_counter(), time.process_time()
        req = self.request
        root = StorePath.of(task.root)
        writer = DatasetWriter(root, list(task.specs), dataset_id=task.dataset_id,
                               compression=req.compression, row_group_rows=req.row_group_rows,
                               on_nonfinite=req.on_nonfinite)
        records: list[dict[str, Any]] = []

        def on_part(record: dict[str, Any], carried: list[dict]) -> None:
            write_carried(root, record, carried)
            records.append(record)

        recorder = self._recorder()
        was_training = self.model.training
        self.model.eval()
        timings: dict[str, float] = {}
        try:
            with torch.inference_mode():
                batches = ((b, None) for b in self.inputs.batches(
                    task.input_start, task.input_stop, req.batch_size))
                write_parts(self.model, batches, recorder, writer,
                            Cursor(task.index, task.input_start, task.row_start),
                            part_rows=task.input_stop - task.input_start, device=self.device,
                            forward=None, on_part=on_part, progress=progress, timings=timings)
        finally:
            recorder.close()
            self.model.train(was_training)
        if len(records) != 1:
            raise StoreError(f"shard {task.index} wrote {len(records)} parts instead of one.")
        record = records[0]
        if record["row_stop"] - record["row_start"] != task.n_rows:
            raise InvalidInputError(
                f"shard {task.index} (inputs {task.input_start}..{task.input_stop}) gave "
                f"{record['row_stop'] - record['row_start']} rows, {task.n_rows} were planned: "
                "the inputs tokenize differently in this worker (another tokenizer version?).")
        stats = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0,
                 "process_cpu_seconds": time.process_time(), **timings,
                 "inputs": task.input_stop - task.input_start, "rows": task.n_rows,
                 "peak_rss_mb": peak_rss_mb(), "pid": os.getpid()}
        return record, stats


def _run_first(recorder: Recorder, model: Any, batch: Any, device: str) -> dict:
    """The first batch, with a model that cannot take these inputs explained."""
    try:
        return recorder.run(model, batch, device, None)
    except DistmiError:
        raise
    except (TypeError, RuntimeError, ValueError, IndexError, KeyError) as exc:
        what = "texts tokenized to input_ids/attention_mask" if isinstance(
            batch.inputs, Mapping) else f"a {type(batch.inputs).__name__} batch"
        raise InvalidInputError(
            f"the model could not run on the first batch of inputs ({what}): "
            f"{type(exc).__name__}: {str(exc)[:300]}. Check that the inputs are of the type the "
            "model takes (texts for a text model with a tokenizer, numeric columns for others).",
        ) from exc


__all__ = ["CaptureRequest", "CaptureSession", "Probe", "ShardTask", "pick_device"]
