"""Streaming writer of activation datasets (used by capture and by import).

Rows arrive in batches; each layer buffers at most one row group before writing it, so memory
stays bounded by ``layers x row_group_rows x n_units``. Rows are grouped into *parts*: part ``k``
of every layer is one file ``layers/L###_name/part-0000k.parquet``. A local part file is written
under a temporary name and renamed when complete (an object-store upload appears only when it
completes); completed parts are what a resumed capture skips. Each part's footer carries its
identity and values hash (:mod:`distmi.store.identity`). The manifest is written last
(:meth:`DatasetWriter.finalize`). The folder may be a local path or a URI
(:class:`~distmi.core.storage.StorePath`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
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
from distmi.core.storage import StorePath
from distmi.core.validation import check_choice, check_int
from distmi.store import _format as fmt
from distmi.store.files import (
    FileRecord,
    HashingSink,
    atomic_write_json,
    record_file,
    tmp_name,
)
from distmi.store.identity import PartIdentity, ValuesHasher, dataset_id_for, targets_metadata
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

    path: StorePath
    layout: fmt.BlockLayout
    schema: pa.Schema
    rg_rows: int
    compression: str
    identity: PartIdentity  # values_sha256 and row_stop are filled in at close
    rows: int = 0
    buf: list[np.ndarray] = field(default_factory=list)
    n_buf: int = 0
    writer: pq.ParquetWriter | None = None
    sink: HashingSink | None = None
    hasher: ValuesHasher | None = None

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

    def _open(self) -> None:
        self.hasher = ValuesHasher(self.layout.dtype)
        if self.path.is_local:  # a temporary sibling, renamed when complete
            raw: Any = open(tmp_name(self.path).local, "wb")  # closed by close()/abort()
        else:  # an object-store upload becomes visible only when it completes
            raw = self.path.open_output()
        self.sink = HashingSink(raw)  # the file's sha256 without reading it back
        self.writer = pq.ParquetWriter(pa.PythonFile(self.sink, mode="w"), self.schema,
                                       **fmt.writer_options(self.compression))

    def _write(self, values: np.ndarray) -> None:
        if self.writer is None:
            self._open()
        self.hasher.update(values)
        self.writer.write_table(self.layout.encode(values, self.schema), row_group_size=len(values))

    def close(self) -> str:
        """Write the rest, the identity and the footer; return the values hash."""
        if self.n_buf:
            self._write(self._take(self.n_buf))
        if self.writer is None:  # a part with zero rows still gets a valid file
            self._open()
        ident = replace(self.identity, row_stop=self.identity.row_start + self.rows,
                        values_sha256=self.hasher.hexdigest())
        self.writer.add_key_value_metadata(ident.to_metadata())
        self.writer.close()
        self.sink.flush()
        self.sink.close()
        if self.path.is_local:
            tmp_name(self.path).rename(self.path)
        return ident.values_sha256

    def abort(self) -> None:
        for closer in (self.writer, self.sink):
            if closer is not None:
                try:
                    closer.close()
                except Exception:  # pragma: no cover - best effort while unwinding
                    pass
        if self.path.is_local:
            tmp_name(self.path).unlink(missing_ok=True)
        else:
            self.path.unlink(missing_ok=True)  # a partial upload is never listed anyway


def prepare_folder(root: StorePath, overwrite: bool) -> None:
    """Make ``root`` ready for a new dataset; only ever deletes files distmi itself wrote."""
    if root.is_file():
        raise StoreError(f"output {root} exists and is a file; pass a folder path.")
    root.mkdir()
    entries = set(root.listdir())
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
        path.rmtree() if path.is_dir() else path.unlink()


def write_parquet(path: StorePath, table: pa.Table, **options: Any) -> None:
    """Write a whole table to ``path`` (atomically: a temporary sibling renamed, or one upload)."""
    if path.is_local:
        tmp = tmp_name(path)
        pq.write_table(table, str(tmp.local), **options)
        tmp.rename(path)
        return
    with path.open_output() as sink:
        pq.write_table(table, sink, **options)


class DatasetWriter:
    """Writes parts of every layer, then the targets table and the manifest.

    Args:
        root: dataset folder (prepared by :func:`prepare_folder` or resumed); a path or URI.
        specs: the layers (and masks) to store, in order.
        dataset_id: written into every part (default: derived from the specs and layout); the
            capture passes its fingerprint so a resumed capture writes the same id.
        compression: Parquet codec for activations (``"none"``: floats barely compress).
        row_group_rows: rows per row group, default sized to ~32 MiB per layer.
        on_nonfinite: ``"raise"`` (default) stops at the first NaN/Inf batch with counts;
            ``"keep"`` stores them and records the counts in the manifest.
    """

    def __init__(
        self,
        root: StorePath | str,
        specs: list[LayerSpec],
        *,
        dataset_id: str | None = None,
        compression: str = "none",
        row_group_rows: int | None = None,
        on_nonfinite: str = "raise",
    ) -> None:
        self.root = StorePath.of(root)
        self.specs = {s.name: s for s in specs}
        self.compression = check_choice(compression, "compression", fmt.COMPRESSIONS)
        self.on_nonfinite = check_choice(on_nonfinite, "on_nonfinite", NONFINITE_POLICIES)
        if row_group_rows is not None:
            check_int(row_group_rows, "row_group_rows", minimum=1)
        self.row_group_rows = row_group_rows
        self.dataset_id = dataset_id or dataset_id_for(
            {"specs": [asdict(s) for s in specs], "compression": compression,
             "row_group_rows": row_group_rows})
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
            folder.mkdir()
            layout = fmt.BlockLayout(spec.n_units, spec.block_units, spec.dtype)
            self._open[name] = _LayerPart(
                path=folder / fmt.part_file_name(index),
                layout=layout,
                schema=layout.schema(name),
                rg_rows=self.rg_rows(spec),
                compression=self.compression,
                identity=PartIdentity(
                    dataset_id=self.dataset_id, role=spec.role, layer=name, part=index,
                    row_start=row_start, row_stop=row_start, dtype=spec.dtype,
                    n_units=spec.n_units, unit_shape=tuple(spec.unit_shape),
                    block_units=spec.block_units, values_sha256=""),
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
        files, values = {}, {}
        for name, part in self._open.items():
            values[name] = part.close()
            files[name] = record_file(self.root, part.path, written=part.sink).to_dict()
        self._open, self._part = {}, None
        return {
            "index": index,
            "row_start": row_start,
            "row_stop": row_start + n_rows,
            "files": files,
            "values": values,
            "nonfinite": self._nonfinite_part,
        }

    def abort(self) -> None:
        """Drop the open part (after an error or interruption); committed parts stay."""
        for part in self._open.values():
            part.abort()
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
        if any("values" not in p for p in parts):
            raise StoreError(
                f"the unfinished capture in {self.root} was started by an older distmi whose "
                "parts carry no identity; rerun it with overwrite=True (--overwrite)."
            )
        table = pa.Table.from_pandas(targets, preserve_index=False)
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), **targets_metadata(self.dataset_id, n)})
        tpath = self.root / TARGETS_FILE
        write_parquet(tpath, table, write_page_checksum=True, compression="zstd")
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
                    {"row_start": p["row_start"], "row_stop": p["row_stop"],
                     "values_sha256": p["values"][name], "file": p["files"][name]}
                    for p in parts
                ],
            }
        ids = targets[SAMPLE_ID]
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "distmi_version": __version__,
            "layout": fmt.LAYOUT,
            "dataset_id": self.dataset_id,
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
        (self.root / STATE_FILE).unlink(missing_ok=True)
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


__all__ = ["DatasetWriter", "FileRecord", "LayerSpec", "prepare_folder", "write_parquet"]
