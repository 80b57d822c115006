"""Capture activations of named layers of a PyTorch model into an activation dataset.

Forward hooks on ``named_modules()`` paths record each layer's output batch by batch; outputs
are pooled (:mod:`distmi.store.modules`), moved to the CPU and streamed to Parquet, so memory is
bounded by a batch plus one row group per layer. Every ``rows_per_part`` rows the files of a
*part* are committed (renamed into place and listed in ``_capture_state.json``). If a capture
is interrupted, rerunning the same call resumes after the last committed part; a call whose
settings, model weights or data differ is refused (or starts over with ``overwrite=True``).
The manifest is written only when the dataset is complete. Same inputs give a byte-identical
dataset, resumed or not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from distmi.core.errors import (
    InvalidInputError,
    InvalidParameterError,
    LengthMismatchError,
    StoreError,
)
from distmi.core.storage import StorePath
from distmi.core.validation import check_choice, check_int
from distmi.store import _format as fmt
from distmi.store.batches import Batch, call_model, fingerprint_batch, make_source, to_device
from distmi.store.files import atomic_write_json
from distmi.store.manifest import MANIFEST, STATE_FILE, load_manifest
from distmi.store.modules import first_tensor, pool, resolve_layers, resolve_pooling
from distmi.store.reader import ActivationDataset, open_dataset
from distmi.store.targets import normalize_targets, to_frame
from distmi.store.writer import (
    DatasetWriter,
    LayerSpec,
    check_block_units,
    check_part_rows,
    prepare_folder,
    write_parquet,
)

MASK_NAME = "attention_mask"
_PARTS_DIR = "layers"  # per-part batch targets live beside the layer folders until finalize


@dataclass(frozen=True)
class CaptureSource:
    """What a ``module:function`` data factory may return: data plus targets and ids."""

    data: Any
    targets: Any = None
    sample_ids: Any = None
    target_kinds: Mapping[str, str] | None = None


def weights_sha256(model: Any) -> str:
    """sha256 over the model's state_dict (names, dtypes, shapes and bytes, in order)."""
    import torch

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _fingerprint(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _targets_digest(targets: Any, sample_ids: Any) -> str | None:
    if targets is None and sample_ids is None:
        return None
    h = hashlib.sha256()
    if targets is not None:
        frame = targets if isinstance(targets, pd.DataFrame) else pd.DataFrame(
            {k: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v) for k, v in
             (targets.items() if isinstance(targets, Mapping) else targets.to_pandas().items())}
        )
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        h.update(",".join(map(str, frame.columns)).encode())
    if sample_ids is not None:
        h.update(np.asarray(sample_ids).astype(str).tobytes())
    return h.hexdigest()


class _Recorder:
    """Forward hooks that record one pooled output per layer per batch."""

    def __init__(self, model: Any, layers: list[str], pooling: dict[str, str], out_dtype: Any):
        self.pooling = pooling
        self.out_dtype = out_dtype
        self.mask = None
        self.outputs: dict[str, Any] = {}
        self.applied: dict[str, str] = {}
        self.calls = dict.fromkeys(layers, 0)
        mods = dict(model.named_modules())
        self.handles = [mods[n].register_forward_hook(self._hook(n)) for n in layers]

    def _hook(self, name: str) -> Callable:
        def hook(_module: Any, _args: Any, output: Any) -> None:
            self.calls[name] += 1
            x = first_tensor(output, name).detach()
            pooled, applied = pool(x, self.pooling[name], self.mask, name)
            self.applied[name] = applied
            # copy: later in-place ops (e.g. ReLU(inplace=True)) must not change what we record
            self.outputs[name] = pooled.to("cpu", self.out_dtype, copy=True).numpy()

        return hook

    def run(self, model: Any, batch: Batch, device: Any, forward: Callable | None) -> dict:
        self.outputs, self.calls = {}, dict.fromkeys(self.calls, 0)
        self.mask = batch.mask.to(device) if batch.mask is not None else None
        call_model(model, to_device(batch.inputs, device), forward)
        for name, count in self.calls.items():
            if count != 1:
                what = "did not run" if count == 0 else f"ran {count} times"
                raise InvalidInputError(
                    f"layer {name!r} {what} in one forward pass; capture modules that run "
                    "exactly once per batch (a reused module records ambiguous activations)."
                )
            if len(self.outputs[name]) != batch.n_rows:
                raise InvalidInputError(
                    f"layer {name!r} returned {len(self.outputs[name])} rows for a batch of "
                    f"{batch.n_rows} samples; its output must have the batch as first axis."
                )
        return self.outputs

    def close(self) -> None:
        for h in self.handles:
            h.remove()


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
        layers: ``named_modules()`` paths (``distmi.store.list_layers(model)``).
        output: dataset folder.
        pooling: ``"none" | "mean" | "first" | "last" | "spatial_mean"`` or a per-layer dict
            (see :mod:`distmi.store.modules`).
        targets: dict of arrays / DataFrame aligned with ``data`` (may hold ``sample_id``).
        target_kinds: ``{target: "categorical" | "continuous"}`` overriding inference.
        sample_ids: ids in data order (default ``0..n-1``).
        batch_size: rows per forward pass (for tensors and dicts).
        model_id: name recorded in the manifest (default: the model class).
        model_info: extra JSON-able facts about the model for the manifest (e.g. accuracy).
        dtype: stored dtype, ``"float32"`` (default), ``"float16"`` or ``"float64"``.
        device: where to run (default: the model's parameter device).
        forward: ``forward(model, inputs)`` when the model needs a custom call.
        target_keys: keys of dict batches that are targets, not model inputs.
        target_names: names of the extra items of tuple batches ``(inputs, *targets)``.
        block_units, rows_per_part, row_group_rows, compression: storage layout (defaults
            are the measured ones, see docs/store.md).
        on_nonfinite: ``"raise"`` (default) or ``"keep"`` (counts go to the manifest).
        overwrite: replace an existing dataset or unfinished capture at ``output``.
        progress: called as ``progress(rows_done, n_total_or_None)`` after each batch.

    Returns:
        The opened :class:`~distmi.store.reader.ActivationDataset`.
    """
    import torch

    if isinstance(data, CaptureSource):
        targets = data.targets if targets is None else targets
        sample_ids = data.sample_ids if sample_ids is None else sample_ids
        target_kinds = data.target_kinds if target_kinds is None else target_kinds
        data = data.data
    layer_names = resolve_layers(model, layers)
    pool_map = resolve_pooling(pooling, layer_names)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    dtype = check_choice(dtype, "dtype", ("float16", "float32", "float64"))
    part_rows = check_part_rows(rows_per_part)
    block = check_block_units(block_units)
    check_choice(compression, "compression", fmt.COMPRESSIONS)
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    root = StorePath.of(output)
    source = make_source(data, batch_size, target_keys, target_names)
    first = next(iter(source.iter_from(0)), None)
    if first is None:
        raise InvalidInputError("data yielded no batches; pass at least one sample.")
    settings = {
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "weights_sha256": weights_sha256(model),
        "layers": layer_names,
        "pooling": pool_map,
        "dtype": dtype,
        "batch_size": batch_size,
        "rows_per_part": part_rows,
        "row_group_rows": row_group_rows,
        "block_units": block,
        "compression": compression,
        "on_nonfinite": on_nonfinite,
        "n_samples_hint": source.n,
        "first_batch_sha256": fingerprint_batch(first),
        "targets_sha256": _targets_digest(targets, sample_ids),
        "target_keys": list(target_keys),
        "target_names": list(target_names) if target_names is not None else None,
    }
    fp = _fingerprint(settings)
    state = _check_existing(root, fp, overwrite)
    if isinstance(state, ActivationDataset):
        return state
    out_dtype = torch.float64 if dtype == "float64" else torch.float32
    was_training = model.training
    model.eval()
    recorder = _Recorder(model, layer_names, pool_map, out_dtype)
    writer: DatasetWriter | None = None
    try:
        with torch.inference_mode():
            pending = None
            if state is None:
                outs = recorder.run(model, first, device, forward)
                pending = (first, outs)
                specs = _specs(outs, recorder.applied, dtype, block, first)
                state = {"fingerprint": fp, "specs": [asdict(s) for s in specs], "parts": []}
                atomic_write_json(root / STATE_FILE, _jsonable(state))
            specs = [
                LayerSpec(**{**s, "unit_shape": tuple(s["unit_shape"])}) for s in state["specs"]
            ]
            writer = DatasetWriter(root, specs, dataset_id=fp, compression=compression,
                                   row_group_rows=row_group_rows, on_nonfinite=on_nonfinite)
            _run(model, source, recorder, writer, state, root, part_rows, device, forward,
                 progress, pending)
    finally:
        recorder.close()
        model.train(was_training)
    frame, kinds = _targets_table(root, state, targets, sample_ids, target_kinds)
    writer.finalize(
        state["parts"], frame, kinds,
        model={"id": model_id or type(model).__name__, "class": settings["model_class"],
               "n_parameters": int(sum(p.numel() for p in model.parameters())),
               "weights_sha256": settings["weights_sha256"], **dict(model_info or {})},
        capture={"source": "capture", "fingerprint": fp, "pooling": pool_map,
                 "batch_size": batch_size, "rows_per_part": part_rows, "dtype": dtype},
    )
    _cleanup_parts(root, state)
    return open_dataset(root)


def _check_existing(root: Path, fp: str, overwrite: bool) -> Any:
    """Return an existing identical dataset, the resumable state, or None (fresh start)."""
    if (root / MANIFEST).is_file() and not overwrite:
        doc, _ = load_manifest(root)
        if doc["capture"].get("fingerprint") == fp:
            return open_dataset(root)
        raise StoreError(
            f"{root} already holds a dataset captured with other settings, weights or data; pass "
            "overwrite=True (--overwrite) to replace it, or choose another folder."
        )
    state_path = root / STATE_FILE
    if state_path.is_file() and not overwrite:
        state = json.loads(state_path.read_text())
        if state.get("fingerprint") != fp:
            raise StoreError(
                f"{root} holds an unfinished capture with other settings, weights or data, so it "
                "cannot be resumed by this call; rerun the original capture to resume it, or pass "
                "overwrite=True (--overwrite) to start over."
            )
        return state
    prepare_folder(root, overwrite)
    return None


def _specs(outs: dict, applied: dict, dtype: str, block: int, first: Batch) -> list[LayerSpec]:
    specs = [
        LayerSpec(name, tuple(int(s) for s in arr.shape[1:]), dtype, applied[name], block)
        for name, arr in outs.items()
    ]
    per_token = [s.name for s in specs if s.pooling == "none" and len(s.unit_shape) == 2]
    if per_token and first.mask is not None:
        t = int(first.mask.shape[1])
        specs.append(LayerSpec(MASK_NAME, (t,), "uint8", "none", block, role="mask"))
    return specs


def _batches(source, row: int, pending):
    """(batch, outputs or None) from ``row`` on; the first batch of a fresh capture already ran."""
    if pending is not None:
        yield pending
        row += pending[0].n_rows
    for batch in source.iter_from(row):
        yield batch, None


def _run(model, source, recorder, writer, state, root, part_rows, device, forward, progress,
         pending):
    parts = state["parts"]
    row = parts[-1]["row_stop"] if parts else 0
    part_start, part_open = row, False
    batch_targets: list[dict[str, np.ndarray]] = []
    try:
        for batch, done in _batches(source, row, pending):
            if not part_open:
                writer.start_part(len(parts), row)
                part_start, part_open, batch_targets = row, True, []
            outs = done if done is not None else recorder.run(model, batch, device, forward)
            for name, values in outs.items():
                writer.write(name, values, row)
            if MASK_NAME in writer.specs:
                writer.write(MASK_NAME, batch.mask.cpu().numpy().astype(np.uint8), row)
            batch_targets.append(batch.targets)
            row += batch.n_rows
            if progress is not None:
                progress(row, source.n)
            if row - part_start >= part_rows:
                _commit(root, writer, state, batch_targets)
                part_open = False
        if part_open:
            _commit(root, writer, state, batch_targets)
    except BaseException:
        writer.abort()
        raise


def _commit(root: Path, writer: DatasetWriter, state: dict, batch_targets: list[dict]) -> None:
    record = writer.finish_part()
    if batch_targets and batch_targets[0]:
        cols = {k: np.concatenate([b[k] for b in batch_targets]) for k in batch_targets[0]}
        path = root / _PARTS_DIR / f"_targets-{record['index']:05d}.parquet"
        write_parquet(path, pa.table(cols))
        record["targets_file"] = path.name
    state["parts"].append(record)
    atomic_write_json(root / STATE_FILE, _jsonable(state))


def _targets_table(root, state, targets, sample_ids, target_kinds):
    """Targets given to capture() joined with targets carried by the batches."""
    n = state["parts"][-1]["row_stop"]
    frame = to_frame(targets)
    files = [p.get("targets_file") for p in state["parts"]]
    if any(files):
        if not all(files):
            raise StoreError(
                f"batch targets are missing for some parts in {root}; the capture state is "
                "inconsistent: rerun with overwrite=True."
            )
        carried = pd.concat(
            [pq.read_table((root / _PARTS_DIR / f).parquet_source()).to_pandas() for f in files], ignore_index=True
        )
        clash = sorted(set(carried.columns) & set(frame.columns))
        if clash:
            raise InvalidParameterError(
                f"targets {clash} come both from the batches and from targets=; name them once."
            )
        if len(frame.columns) and len(frame) != n:
            raise LengthMismatchError(
                f"targets= has {len(frame)} rows but the data held {n} samples; pass one "
                "target row per sample."
            )
        frame = pd.concat([frame.reset_index(drop=True), carried], axis=1) if len(
            frame.columns) else carried
    return normalize_targets(frame, n, sample_ids, target_kinds)


def _cleanup_parts(root: Path, state: dict) -> None:
    for p in state["parts"]:
        if p.get("targets_file"):
            (root / _PARTS_DIR / p["targets_file"]).unlink(missing_ok=True)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
