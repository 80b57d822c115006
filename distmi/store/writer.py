"""Streaming writer of activation datasets (used by capture and by import).

Rows arrive in batches; each layer buffers at most one row group before writing it, so memory
stays bounded by ``layers x row_group_rows x n_units``. Rows are grouped into *parts*: part ``k``
of every layer is one file ``layers/L###_name/part-0000k.parquet``. A part file is written under
a temporary name and renamed when complete; completed parts are what a resumed capture skips.
The manifest is written last (:meth:`DatasetWriter.finalize`).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distmi.core.errors import (
    InvalidInputError,
    InvalidParameterError,
    NonFiniteInputError,
    StoreError,
)
from distmi.core.validation import check_choice, check_int
from distmi.store import _format as fmt
from distmi.store.files import FileRecord, atomic_write_json, record_file, tmp_name
from distmi.store.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    STATE_FILE,
    TARGETS_FILE,
    manifest_bytes_hash,
)
from distmi.store.targets import SAMPLE_ID, describe_targets

NONFINITE_POLICIES = ("raise", "keep")
_OWNED = (MANIFEST, STATE_FILE, TARGETS_FILE, "layers", "masks")


@dataclass(frozen=True)
class LayerSpec:
    """What is stored for one layer: per-sample ``unit_shape`` flattened C-order to units."""

    name: str
    unit_shape: tuple[int, ...]
    dtype: str = "float32"
    pooling: str = "none"
    block_units: int = fmt.DEFAULT_BLOCK_UNITS
    role: str = "layer"  # "layer" or "mask"
    unit_names: tuple[str, ...] | None = None  # e.g. DataFrame column names of imported layers

    @property
    def n_units(self) -> int:
        return int(np.prod(self.unit_shape, dtype=np.int64))


@dataclass
class _LayerPart:
    """The open file of one layer in the current part, with its row-group buffer."""

    path: Path
    layout: fmt.BlockLayout
    schema: pa.Schema
    rg_rows: int
    compression: str
    rows: int = 0
    buf: list[np.ndarray] = field(default_factory=list)
    n_buf: int = 0
    writer: pq.ParquetWriter | None = None

    def append(self, values: np.ndarray) -> None:
        self.buf.append(values)
        self.n_buf += len(values)
        self.rows += len(values)
        while self.n_buf >= self.rg_rows:
            self._write(self._take(self.rg_rows))

    def _take(self, k: int) -> np.ndarray:
        pieces, need = [], k
        while need:
            head = self.buf[0]
            if len(head) <= need:
                pieces.append(self.buf.pop(0))
                need -= len(head)
            else:
                pieces.append(head[:need])
                self.buf[0] = head[need:]
                need = 0
        self.n_buf -= k
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _write(self, values: np.ndarray) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(
                tmp_name(self.path), self.schema, **fmt.writer_options(self.compression)
            )
        self.writer.write_table(self.layout.encode(values, self.schema), row_group_size=len(values))

    def close(self) -> None:
        if self.n_buf:
            self._write(self._take(self.n_buf))
        if self.writer is None:  # a part with zero rows still gets a valid file
            self.writer = pq.ParquetWriter(
                tmp_name(self.path), self.schema, **fmt.writer_options(self.compression)
            )
        self.writer.close()
        tmp_name(self.path).replace(self.path)


def prepare_folder(root: Path, overwrite: bool) -> None:
    """Make ``root`` ready for a new dataset; only ever deletes files distmi itself wrote."""
    if root.exists() and not root.is_dir():
        raise StoreError(f"output {root} exists and is a file; pass a folder path.")
    root.mkdir(parents=True, exist_ok=True)
    entries = {p.name for p in root.iterdir()}
    ours = entries & set(_OWNED)
    foreign = {e for e in entries - set(_OWNED) if not e.startswith(".")}
    if MANIFEST in ours and not overwrite:
        raise StoreError(
            f"{root} already holds a dataset; pass overwrite=True (--overwrite) to replace it, "
            "or choose another folder."
        )
    if foreign and not ours:
        raise StoreError(
            f"{root} is not empty and is not a distmi dataset (it holds {sorted(foreign)[:5]}); "
            "choose an empty or new folder."
        )
    for name in ours:
        path = root / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


class DatasetWriter:
    """Writes parts of every layer, then the targets table and the manifest.

    Args:
        root: dataset folder (prepared by :func:`prepare_folder` or resumed).
        specs: the layers (and masks) to store, in order.
        compression: Parquet codec for activations (``"none"``: floats barely compress).
        row_group_rows: rows per row group, default sized to ~32 MiB per layer.
        on_nonfinite: ``"raise"`` (default) stops at the first NaN/Inf batch with counts;
            ``"keep"`` stores them and records the counts in the manifest.
    """

    def __init__(
        self,
        root: Path,
        specs: list[LayerSpec],
        *,
        compression: str = "none",
        row_group_rows: int | None = None,
        on_nonfinite: str = "raise",
    ) -> None:
        self.root = Path(root)
        self.specs = {s.name: s for s in specs}
        self.compression = check_choice(compression, "compression", fmt.COMPRESSIONS)
        self.on_nonfinite = check_choice(on_nonfinite, "on_nonfinite", NONFINITE_POLICIES)
        if row_group_rows is not None:
            check_int(row_group_rows, "row_group_rows", minimum=1)
        self.row_group_rows = row_group_rows
        self.dirs: dict[str, str] = {}
        counters = {"layer": 0, "mask": 0}
        for s in specs:
            check_choice(s.dtype, f"dtype of layer {s.name!r}", fmt.DTYPES)
            check_int(s.block_units, "block_units", minimum=1)
            prefix = "layers" if s.role == "layer" else "masks"
            d = fmt.layer_dir_name(counters[s.role], s.name)
            counters[s.role] += 1
            self.dirs[s.name] = f"{prefix}/{d}" if s.role == "layer" else f"{prefix}/M{d[1:]}"
        self._open: dict[str, _LayerPart] = {}
        self._part: tuple[int, int] | None = None
        self._nonfinite_part: dict[str, dict[str, int]] = {}

    def rg_rows(self, spec: LayerSpec) -> int:
        return self.row_group_rows or fmt.row_group_rows(spec.n_units, spec.dtype)

    def start_part(self, index: int, row_start: int) -> None:
        self._part = (index, row_start)
        self._nonfinite_part = {name: {"nan": 0, "inf": 0} for name in self.specs}
        for name, spec in self.specs.items():
            folder = self.root / self.dirs[name]
            folder.mkdir(parents=True, exist_ok=True)
            layout = fmt.BlockLayout(spec.n_units, spec.block_units, spec.dtype)
            self._open[name] = _LayerPart(
                path=folder / fmt.part_file_name(index),
                layout=layout,
                schema=layout.schema(name),
                rg_rows=self.rg_rows(spec),
                compression=self.compression,
            )

    def write(self, name: str, values: np.ndarray, first_row: int) -> None:
        """Append rows of layer ``name``: ``values`` has shape (rows, *unit_shape)."""
        spec = self.specs[name]
        if tuple(values.shape[1:]) != spec.unit_shape:
            raise InvalidInputError(
                f"layer {name!r} produced per-sample shape {tuple(values.shape[1:])} at sample "
                f"{first_row}, but earlier batches had {spec.unit_shape}; every batch must give "
                "the same shape (pad sequences to a fixed length, e.g. tokenizer(..., "
                "padding='max_length'), or use a pooling such as 'mean')."
            )
        flat = values.reshape(len(values), spec.n_units)
        if flat.dtype.kind == "f":
            self._count_nonfinite(name, flat, first_row)
        self._open[name].append(flat.astype(spec.dtype, copy=False))

    def _count_nonfinite(self, name: str, flat: np.ndarray, first_row: int) -> None:
        finite = np.isfinite(flat)
        if finite.all():
            return
        n_nan, n_inf = int(np.isnan(flat).sum()), int(np.isinf(flat).sum())
        if self.on_nonfinite == "raise":
            row, unit = (int(i) for i in np.argwhere(~finite)[0])
            raise NonFiniteInputError(
                f"layer {name!r} has {n_nan} NaN and {n_inf} Inf activations in the batch "
                f"starting at sample {first_row} (first at sample {first_row + row}, unit "
                f"{unit}); fix the model or inputs, or pass on_nonfinite='keep' to store them "
                "and have the counts recorded in the manifest."
            )
        self._nonfinite_part[name]["nan"] += n_nan
        self._nonfinite_part[name]["inf"] += n_inf

    def finish_part(self) -> dict[str, Any]:
        """Close and commit the current part; return its record for the capture state."""
        if self._part is None:
            raise StoreError("finish_part() called with no open part")  # programming error
        index, row_start = self._part
        rows = {name: p.rows for name, p in self._open.items()}
        if len(set(rows.values())) > 1:
            raise InvalidInputError(
                f"layers received different numbers of rows in part {index}: {rows}; every "
                "layer must see every sample."
            )
        n_rows = next(iter(rows.values()))
        files = {}
        for name, part in self._open.items():
            part.close()
            files[name] = record_file(self.root, part.path).to_dict()
        self._open, self._part = {}, None
        return {
            "index": index,
            "row_start": row_start,
            "row_stop": row_start + n_rows,
            "files": files,
            "nonfinite": self._nonfinite_part,
        }

    def abort(self) -> None:
        """Drop the open part (after an error or interruption); committed parts stay."""
        for part in self._open.values():
            if part.writer is not None:
                try:
                    part.writer.close()
                except Exception:  # pragma: no cover - best effort while unwinding
                    pass
            tmp_name(part.path).unlink(missing_ok=True)
        self._open, self._part = {}, None

    def finalize(
        self,
        parts: list[dict[str, Any]],
        targets: Any,
        target_kinds: Mapping[str, str],
        *,
        model: Mapping[str, Any],
        capture: Mapping[str, Any],
    ) -> str:
        """Write ``targets.parquet`` and ``manifest.json`` (last); return the manifest hash."""
        from distmi.core.version import __version__

        n = parts[-1]["row_stop"] if parts else 0
        if n == 0:
            raise InvalidInputError("the data held no samples; pass at least one sample.")
        if len(targets) != n:
            raise InvalidInputError(
                f"the targets table has {len(targets)} rows but {n} samples were written; pass "
                "one target row per sample."
            )
        table = pa.Table.from_pandas(targets, preserve_index=False)
        tpath = self.root / TARGETS_FILE
        pq.write_table(table, tmp_name(tpath), write_page_checksum=True, compression="zstd")
        tmp_name(tpath).replace(tpath)
        sections: dict[str, dict[str, Any]] = {"layers": {}, "masks": {}}
        for name, spec in self.specs.items():
            nonfinite = {
                k: sum(p["nonfinite"][name][k] for p in parts) for k in ("nan", "inf")
            }
            sections["layers" if spec.role == "layer" else "masks"][name] = {
                "dir": self.dirs[name],
                "dtype": spec.dtype,
                "n_units": spec.n_units,
                "unit_shape": list(spec.unit_shape),
                "block_units": spec.block_units,
                "pooling": spec.pooling,
                "row_group_rows": self.rg_rows(spec),
                "nonfinite": nonfinite,
                **({"unit_names": list(spec.unit_names)} if spec.unit_names else {}),
                "parts": [
                    {"row_start": p["row_start"], "row_stop": p["row_stop"], "file": p["files"][name]}
                    for p in parts
                ],
            }
        ids = targets[SAMPLE_ID]
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "distmi_version": __version__,
            "layout": fmt.LAYOUT,
            "n_samples": int(n),
            "sample_id_dtype": "int64" if ids.dtype.kind in "iu" else "string",
            "model": dict(model),
            "capture": {**capture, "compression": self.compression},
            "layers": sections["layers"],
            "masks": sections["masks"],
            "targets": {
                "file": record_file(self.root, tpath).to_dict(),
                "columns": describe_targets(targets, target_kinds),
            },
        }
        data = atomic_write_json(self.root / MANIFEST, doc)
        state = self.root / STATE_FILE
        if state.exists():
            state.unlink()
        return manifest_bytes_hash(data)


def check_part_rows(rows_per_part: int | None) -> int:
    if rows_per_part is None:
        return fmt.DEFAULT_ROWS_PER_PART
    return check_int(rows_per_part, "rows_per_part", minimum=1)


def check_block_units(block_units: int | None) -> int:
    if block_units is None:
        return fmt.DEFAULT_BLOCK_UNITS
    if isinstance(block_units, bool) or not isinstance(block_units, int | np.integer):
        raise InvalidParameterError(f"block_units must be a positive integer, got {block_units!r}.")
    return check_int(block_units, "block_units", minimum=1)


__all__ = ["DatasetWriter", "FileRecord", "LayerSpec", "prepare_folder"]
