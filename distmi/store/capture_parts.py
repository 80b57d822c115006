"""Writing a capture part by part: run batches, stream their outputs, commit each part.

Rows are grouped into *parts* of ``rows_per_part`` input rows, each ending at a batch
boundary (with full batches of ``b`` rows a part holds ``ceil(rows_per_part / b) * b`` inputs).
A part of every layer is one Parquet file (:class:`~distmi.store.writer.DatasetWriter`); when
a part is complete its files are renamed into place and its record (row range, file hashes,
values hashes) is returned to the caller, which lists it in the capture state. Targets that
arrive with the batches (tuple items, ``target_keys``, per-token columns) are written beside
the layer folders as ``layers/_targets-00000.parquet`` per part and joined at the end.

Token rows (pooling ``"tokens"``): a batch of ``B`` inputs gives one row per unmasked token
(``sum_bt m_bt`` rows, in row-major (input, position) order), so stored rows and input rows
differ; every part record keeps both ranges (``row_*`` stored, ``input_*`` inputs). Each token
row carries ``input_row`` (the input's row, 0-based), ``position`` (its token position) and,
when the inputs hold ``input_ids``, ``token_id``; batch targets of shape (B,) are repeated for
the tokens of each input and targets of shape (B, T) are taken at the token's position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
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
from distmi.store.batches import Batch
from distmi.store.capture_recorder import Recorder
from distmi.store.targets import normalize_targets, to_frame
from distmi.store.writer import DatasetWriter, LayerSpec, write_parquet

MASK_NAME = "attention_mask"
PARTS_DIR = "layers"  # per-part batch targets live beside the layer folders until finalize
#: Columns every token row carries (see module docstring).
TOKEN_COLUMNS = ("input_row", "position", "token_id")


@dataclass
class Cursor:
    """Where the next part starts: its index, its first input row and first stored row."""

    part: int = 0
    input_row: int = 0
    row: int = 0

    @classmethod
    def after(cls, parts: list[dict[str, Any]]) -> Cursor:
        """The cursor after the committed ``parts`` (contiguous, in order)."""
        if not parts:
            return cls()
        last = parts[-1]
        return cls(len(parts), int(last.get("input_stop", last["row_stop"])), int(last["row_stop"]))


def layer_specs(outs: dict, applied: dict, dtype: str, block: int, first: Batch) -> list[LayerSpec]:
    """Layer specs from the outputs of the first batch (plus the mask of per-token layers)."""
    specs = [
        LayerSpec(name, tuple(int(s) for s in arr.shape[1:]), dtype, applied[name], block)
        for name, arr in outs.items()
    ]
    per_token = [s.name for s in specs if s.pooling == "none" and len(s.unit_shape) == 2]
    if per_token and first.mask is not None:
        t = int(first.mask.shape[1])
        specs.append(LayerSpec(MASK_NAME, (t,), "uint8", "none", block, role="mask"))
    return specs


def _np(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def token_targets(batch: Batch, input_row: int) -> dict[str, np.ndarray]:
    """Carried targets of one batch with one row per unmasked token (module docstring)."""
    present = _np(batch.mask) != 0
    b_idx, pos = np.nonzero(present)
    out = {"input_row": (input_row + b_idx).astype(np.int64), "position": pos.astype(np.int64)}
    if isinstance(batch.inputs, Mapping) and "input_ids" in batch.inputs:
        out["token_id"] = _np(batch.inputs["input_ids"])[present].astype(np.int64)
    for key, value in batch.targets.items():
        arr = np.asarray(value)
        if arr.ndim == 1 and len(arr) == batch.n_rows:
            out[key] = arr[b_idx]
        elif arr.ndim == 2 and arr.shape == present.shape:
            out[key] = arr[present]
        else:
            raise InvalidInputError(
                f"batch target {key!r} has shape {arr.shape}; with one row per token a target "
                f"is one value per input ({batch.n_rows},) or per token {present.shape}."
            )
    return out


def batches_from(source: Any, input_row: int, pending: tuple | None) -> Iterator[tuple]:
    """(batch, outputs or None) from ``input_row`` on; a first batch already run comes first."""
    if pending is not None:
        yield pending
        input_row += pending[0].n_rows
    for batch in source.iter_from(input_row):
        yield batch, None


def write_parts(
    model: Any,
    batches: Iterator[tuple[Batch, dict | None]],
    recorder: Recorder,
    writer: DatasetWriter,
    cursor: Cursor,
    *,
    part_rows: int,
    device: Any,
    forward: Callable | None,
    on_part: Callable[[dict[str, Any], list[dict]], None],
    progress: Callable[[int], None] | None = None,
    timings: dict[str, float] | None = None,
) -> Cursor:
    """Run ``batches`` and write them as parts from ``cursor`` on; return the final cursor.

    ``on_part(record, carried)`` is called after each part is complete (its files renamed into
    place), with the part's record and the targets the batches carried. ``progress(n)`` is
    called with the input rows of each batch. ``timings`` (optional) accumulates the seconds
    spent in the model (``model_s``: forward pass, pooling, copy to the CPU) and in the store
    (``store_s``: conversion, hashing, encoding and writing). On any error the open part is
    dropped; committed parts stay.
    """
    import time

    clock = time.perf_counter
    spent = timings if timings is not None else {}
    spent.setdefault("model_s", 0.0)
    spent.setdefault("store_s", 0.0)
    token_rows = "tokens" in recorder.pooling.values()
    part_input_start, part_open = cursor.input_row, False
    carried: list[dict[str, np.ndarray]] = []
    try:
        for batch, done in batches:
            if not part_open:
                writer.start_part(cursor.part, cursor.row)
                part_input_start, part_open, carried = cursor.input_row, True, []
            t0 = clock()
            outs = done if done is not None else recorder.run(model, batch, device, forward)
            t1 = clock()
            for name, values in outs.items():
                writer.write(name, values, cursor.row)
            if MASK_NAME in writer.specs:
                writer.write(MASK_NAME, _np(batch.mask).astype(np.uint8), cursor.row)
            if token_rows:
                carried.append(token_targets(batch, cursor.input_row))
                cursor.row += len(next(iter(outs.values())))
            else:
                carried.append(batch.targets)
                cursor.row += batch.n_rows
            cursor.input_row += batch.n_rows
            if cursor.input_row - part_input_start >= part_rows:
                on_part(finish_part(writer, part_input_start, cursor.input_row), carried)
                cursor.part += 1
                part_open = False
            spent["model_s"] += t1 - t0
            spent["store_s"] += clock() - t1
            if progress is not None:
                progress(batch.n_rows)
        if part_open:
            t1 = clock()
            on_part(finish_part(writer, part_input_start, cursor.input_row), carried)
            cursor.part += 1
            spent["store_s"] += clock() - t1
    except BaseException:
        writer.abort()
        raise
    return cursor


def finish_part(writer: DatasetWriter, input_start: int, input_stop: int) -> dict[str, Any]:
    """Close the writer's open part; its record with the input row range added."""
    record = writer.finish_part()
    record["input_start"], record["input_stop"] = input_start, input_stop
    return record


def write_carried(root: StorePath, record: dict[str, Any], carried: list[dict]) -> None:
    """Store the targets carried by a part's batches beside the layers (``targets_file``)."""
    if carried and carried[0]:
        cols = {k: np.concatenate([b[k] for b in carried]) for k in carried[0]}
        path = root / PARTS_DIR / f"_targets-{record['index']:05d}.parquet"
        write_parquet(path, pa.table(cols))
        record["targets_file"] = path.name


def targets_table(root: StorePath, parts: list[dict[str, Any]], targets: Any, sample_ids: Any,
                  target_kinds: Mapping[str, str] | None, token_rows: bool = False
                  ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Targets given to the capture joined with the targets carried by the batches.

    With token rows, ``targets`` and ``sample_ids`` are per input: each token row gets the
    targets of its input (``input_row``), and the ids become the column ``input_id``; the
    dataset's sample ids are then the token rows ``0..n-1``.
    """
    n = parts[-1]["row_stop"]
    frame = to_frame(targets)
    files = [p.get("targets_file") for p in parts]
    if not any(files):
        if token_rows:
            raise StoreError(f"the token rows of {root} carry no input rows; rerun with overwrite=True.")
        return normalize_targets(frame, n, sample_ids, target_kinds)
    if not all(files):
        raise StoreError(
            f"batch targets are missing for some parts in {root}; the capture state is "
            "inconsistent: rerun with overwrite=True."
        )
    carried = pd.concat(
        [pq.read_table((root / PARTS_DIR / f).parquet_source()).to_pandas() for f in files],
        ignore_index=True,
    )
    clash = sorted(set(carried.columns) & set(frame.columns))
    if clash:
        raise InvalidParameterError(
            f"targets {clash} come both from the batches and from targets=; name them once."
        )
    if token_rows:
        n_inputs = parts[-1]["input_stop"]
        if len(frame.columns) and len(frame) != n_inputs:
            raise LengthMismatchError(
                f"targets= has {len(frame)} rows but the data held {n_inputs} inputs; pass one "
                "target row per input (each token row gets its input's targets)."
            )
        rows = carried["input_row"].to_numpy()
        for col in frame.columns:
            carried[col] = frame[col].to_numpy()[rows]
        if sample_ids is not None:
            ids = np.asarray(_np(sample_ids))
            if ids.ndim != 1 or len(ids) != n_inputs:
                raise LengthMismatchError(
                    f"sample_ids must have one id per input ({n_inputs}), got shape {ids.shape}.")
            carried["input_id"] = ids[rows]
        return normalize_targets(carried, n, None, target_kinds)
    if len(frame.columns) and len(frame) != n:
        raise LengthMismatchError(
            f"targets= has {len(frame)} rows but the data held {n} samples; pass one "
            "target row per sample."
        )
    frame = pd.concat([frame.reset_index(drop=True), carried], axis=1) if len(
        frame.columns) else carried
    return normalize_targets(frame, n, sample_ids, target_kinds)


def cleanup_carried(root: StorePath, parts: list[dict[str, Any]]) -> None:
    """Delete the per-part targets files once ``targets.parquet`` is written."""
    for p in parts:
        if p.get("targets_file"):
            (root / PARTS_DIR / p["targets_file"]).unlink(missing_ok=True)
