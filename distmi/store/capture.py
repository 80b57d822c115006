"""Capture activations of named layers of a PyTorch model into an activation dataset.

Forward hooks on ``named_modules()`` paths record each layer's output batch by batch
(:mod:`distmi.store.capture_recorder`); outputs are pooled (:mod:`distmi.store.modules`), moved
to the CPU and streamed to Parquet part by part (:mod:`distmi.store.capture_parts`), so memory
is bounded by a batch plus one row group per layer. Every ``rows_per_part`` input rows the files
of a *part* are committed (renamed into place and listed in ``_capture_state.json``,
:mod:`distmi.store.capture_state`). If a capture is interrupted, rerunning the same call resumes
after the last committed part; a call whose settings, model weights or data differ
(:mod:`distmi.store.capture_fingerprint`) is refused, or starts over with ``overwrite=True``.
The manifest is written only when the dataset is complete. Same inputs give a byte-identical
dataset, resumed or not, and the same dataset as a sharded capture on the engine
(:mod:`distmi.engine.capture_run`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distmi.core.errors import InvalidInputError
from distmi.core.storage import StorePath
from distmi.core.validation import check_choice, check_int
from distmi.store import _format as fmt
from distmi.store.batches import fingerprint_batch, make_source
from distmi.store.capture_fingerprint import (
    capture_settings,
    fingerprint,
    model_class_name,
    targets_digest,
    weights_sha256,
)
from distmi.store.capture_parts import (
    Cursor,
    batches_from,
    cleanup_carried,
    layer_specs,
    targets_table,
    write_carried,
    write_parts,
)
from distmi.store.capture_recorder import Recorder
from distmi.store.capture_state import (
    check_existing,
    contiguous_parts,
    new_state,
    save_state,
    state_specs,
)
from distmi.store.modules import expand_layers, resolve_pooling
from distmi.store.reader import ActivationDataset, open_dataset
from distmi.store.writer import DatasetWriter, check_block_units, check_part_rows

#: Stored dtypes a capture may write (bfloat16 is read back as float32, see docs/store.md).
CAPTURE_DTYPES = ("float32", "float16", "bfloat16", "float64")


@dataclass(frozen=True)
class CaptureSource:
    """What a ``module:function`` data factory may return: data plus targets and ids."""

    data: Any
    targets: Any = None
    sample_ids: Any = None
    target_kinds: Mapping[str, str] | None = None


def model_record(model: Any, model_id: str | None, weights: str,
                 model_info: Mapping[str, Any] | None) -> dict[str, Any]:
    """The manifest's ``model`` section."""
    return {"id": model_id or type(model).__name__, "class": model_class_name(model),
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
            "weights_sha256": weights, **dict(model_info or {})}


def recorded_dtype(dtype: str) -> Any:
    """The torch dtype hooks copy outputs to (float64 for float64 storage, else float32)."""
    import torch

    return torch.float64 if dtype == "float64" else torch.float32


def default_device(model: Any) -> Any:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    import torch

    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def capture(
    model: Any,
    data: Any,
    layers: str | Sequence[str],
    output: str | Path,
    *,
    pooling: str | Mapping[str, str] = "none",
    targets: Any = None,
    target_kinds: Mapping[str, str] | None = None,
    sample_ids: Any = None,
    batch_size: int = 64,
    model_id: str | None = None,
    model_info: Mapping[str, Any] | None = None,
    dtype: str = "float32",
    device: Any = None,
    forward: Callable[[Any, Any], Any] | None = None,
    target_keys: Sequence[str] = (),
    target_names: Sequence[str] | None = None,
    block_units: int | None = None,
    rows_per_part: int | None = None,
    row_group_rows: int | None = None,
    compression: str = "none",
    on_nonfinite: str = "raise",
    overwrite: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> ActivationDataset:
    """Run ``model`` over ``data`` and store the outputs of ``layers`` as a dataset at ``output``.

    Args:
        model: any ``torch.nn.Module``; it runs in eval mode under ``torch.inference_mode``.
        data: tensor/array, dict of tensors, DataLoader/Dataset or iterable of batches
            (see :mod:`distmi.store.batches`); order must be fixed.
        layers: ``named_modules()`` paths, globs (``"encoder.layer.*"``) or ``"all"``
            (:func:`distmi.store.modules.expand_layers`; ``distmi.store.list_layers(model)``).
        output: dataset folder (a path or a URI such as ``s3://bucket/acts``).
        pooling: ``"none" | "mean" | "first" (or "cls") | "last" | "max" | "tokens" |
            "spatial_mean"`` or a per-layer dict (see :mod:`distmi.store.modules`); ``"tokens"``
            stores one row per unmasked token (see docs/store.md, "Token rows").
        targets: dict of arrays / DataFrame aligned with ``data`` (may hold ``sample_id``);
            with token rows, one row per input (each token gets its input's targets).
        target_kinds: ``{target: "categorical" | "continuous"}`` overriding inference.
        sample_ids: ids in data order (default ``0..n-1``); with token rows, ids of the inputs
            (stored as the target ``input_id``).
        batch_size: rows per forward pass (for tensors and dicts).
        model_id: name recorded in the manifest (default: the model class).
        model_info: extra JSON-able facts about the model for the manifest (e.g. accuracy).
        dtype: stored dtype, ``"float32"`` (default), ``"float16"``, ``"bfloat16"`` (read back
            as float32) or ``"float64"``.
        device: where to run (default: the model's parameter device).
        forward: ``forward(model, inputs)`` when the model needs a custom call.
        target_keys: keys of dict batches that are targets, not model inputs.
        target_names: names of the extra items of tuple batches ``(inputs, *targets)``.
        block_units, rows_per_part, row_group_rows, compression: storage layout (defaults
            are the measured ones, see docs/store.md).
        on_nonfinite: ``"raise"`` (default) or ``"keep"`` (counts go to the manifest).
        overwrite: replace an existing dataset or unfinished capture at ``output``.
        progress: called as ``progress(rows_done, n_total_or_None)`` after each batch (input
            rows).

    Returns:
        The opened :class:`~distmi.store.reader.ActivationDataset`.
    """
    import torch

    if isinstance(data, CaptureSource):
        targets = data.targets if targets is None else targets
        sample_ids = data.sample_ids if sample_ids is None else sample_ids
        target_kinds = data.target_kinds if target_kinds is None else target_kinds
        data = data.data
    layer_names = expand_layers(model, layers)
    pool_map = resolve_pooling(pooling, layer_names)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    dtype = check_choice(dtype, "dtype", CAPTURE_DTYPES)
    part_rows = check_part_rows(rows_per_part)
    block = check_block_units(block_units)
    check_choice(compression, "compression", fmt.COMPRESSIONS)
    device = default_device(model) if device is None else device
    root = StorePath.of(output)
    source = make_source(data, batch_size, target_keys, target_names)
    first = next(iter(source.iter_from(0)), None)
    if first is None:
        raise InvalidInputError("data yielded no batches; pass at least one sample.")
    weights = weights_sha256(model)
    fp = fingerprint(capture_settings(
        model_class=model_class_name(model), weights=weights, layers=layer_names,
        pooling=pool_map, dtype=dtype, batch_size=batch_size, rows_per_part=part_rows,
        row_group_rows=row_group_rows, block_units=block, compression=compression,
        on_nonfinite=on_nonfinite, n_inputs=source.n, first_batch_sha256=fingerprint_batch(first),
        targets_sha256=targets_digest(targets, sample_ids), target_keys=target_keys,
        target_names=target_names))
    state = check_existing(root, fp, overwrite)
    if isinstance(state, ActivationDataset):
        return state
    was_training = model.training
    model.eval()
    recorder = Recorder(model, layer_names, pool_map, recorded_dtype(dtype))
    done_rows = [0]
    try:
        with torch.inference_mode():
            pending = None
            if state is None:
                outs = recorder.run(model, first, device, forward)
                pending = (first, outs)
                state = new_state(fp, layer_specs(outs, recorder.applied, dtype, block, first))
                save_state(root, state)
            cursor = Cursor.after(contiguous_parts(root, state))
            writer = DatasetWriter(root, state_specs(state), dataset_id=fp,
                                   compression=compression, row_group_rows=row_group_rows,
                                   on_nonfinite=on_nonfinite)

            def on_part(record: dict, carried: list[dict]) -> None:
                write_carried(root, record, carried)
                state["parts"].append(record)
                save_state(root, state)

            start_row = cursor.input_row

            def tick(n: int) -> None:
                done_rows[0] += n
                if progress is not None:
                    progress(start_row + done_rows[0], source.n)

            write_parts(model, batches_from(source, cursor.input_row, pending), recorder,
                        writer, cursor, part_rows=part_rows, device=device, forward=forward,
                        on_part=on_part, progress=tick)
    finally:
        recorder.close()
        model.train(was_training)
    token_rows = "tokens" in pool_map.values()
    frame, kinds = targets_table(root, state["parts"], targets, sample_ids, target_kinds,
                                 token_rows)
    writer.finalize(
        state["parts"], frame, kinds,
        model=model_record(model, model_id, weights, model_info),
        capture=capture_record(fp, pool_map, batch_size, part_rows, dtype),
    )
    cleanup_carried(root, state["parts"])
    return open_dataset(root)


def capture_record(fp: str, pool_map: Mapping[str, str], batch_size: int, part_rows: int,
                   dtype: str, **extra: Any) -> dict[str, Any]:
    """The manifest's ``capture`` section (``extra``: e.g. the job's capture spec hash)."""
    return {"source": "capture", "fingerprint": fp, "pooling": dict(pool_map),
            "batch_size": batch_size, "rows_per_part": part_rows, "dtype": dtype, **extra}


__all__ = ["CAPTURE_DTYPES", "CaptureSource", "capture", "weights_sha256"]
