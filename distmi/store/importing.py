"""Import existing activations (numpy, torch, Parquet, pandas, arrow) into a dataset.

For people who already have activation matrices: ``write_dataset(path, {"fc1": X1, ...},
targets={"label": y})`` stores them in the same format as :func:`distmi.store.capture`, so the
whole engine works on them. Sources are streamed in row chunks (``.npy`` files are memory
mapped, Parquet files read by row batches), so importing needs bounded memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from distmi.core.errors import InvalidInputError, LengthMismatchError, NonNumericInputError
from distmi.core.storage import StorePath
from distmi.core.validation import check_choice
from distmi.store import _format as fmt
from distmi.store.identity import dataset_id_for
from distmi.store.reader import ActivationDataset, open_dataset
from distmi.store.targets import normalize_targets
from distmi.store.writer import (
    DatasetWriter,
    LayerSpec,
    check_block_units,
    check_part_rows,
    prepare_folder,
)


@dataclass
class _Source:
    """Rows of one layer: ``n`` rows of per-sample ``shape``; chunks come from ``chunks()``."""

    name: str
    n: int
    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: Any  # callable(chunk_rows) -> Iterator[np.ndarray]
    unit_names: tuple[str, ...] | None = None


def _numeric_columns(schema: pa.Schema, name: str) -> list[str]:
    bad = [f.name for f in schema if not (pa.types.is_floating(f.type) or pa.types.is_integer(f.type)
                                          or pa.types.is_boolean(f.type))]
    if bad:
        raise NonNumericInputError(
            f"layer {name!r}: columns {bad[:5]} are not numeric; pass only activation columns "
            "(one numeric column per unit) and give labels as targets."
        )
    return schema.names


def _table_chunks(table: pa.Table) -> Any:
    def chunks(rows: int) -> Iterator[np.ndarray]:
        for batch in table.to_batches(max_chunksize=rows):
            yield np.column_stack([c.to_numpy(zero_copy_only=False) for c in batch.columns])

    return chunks


def _array_chunks(arr: Any) -> Any:
    def chunks(rows: int) -> Iterator[np.ndarray]:
        for s in range(0, len(arr), rows):
            yield np.asarray(arr[s : s + rows])

    return chunks


def _source(name: str, value: Any) -> _Source:
    """Wrap one layer's value (array, tensor, DataFrame, arrow Table, .npy/.parquet path)."""
    if isinstance(value, str | Path):
        path = Path(value)
        if not path.is_file():
            raise InvalidInputError(f"layer {name!r}: file {path} does not exist.")
        if path.suffix == ".npy":
            value = np.load(path, mmap_mode="r")
        elif path.suffix == ".parquet":
            pf = pq.ParquetFile(path)
            cols = _numeric_columns(pf.schema_arrow, name)

            def chunks(rows: int) -> Iterator[np.ndarray]:
                for batch in pf.iter_batches(batch_size=rows):
                    yield np.column_stack([c.to_numpy(zero_copy_only=False) for c in batch.columns])

            dtype = np.result_type(*[f.type.to_pandas_dtype() for f in pf.schema_arrow])
            return _Source(name, pf.metadata.num_rows, (len(cols),), dtype, chunks, tuple(cols))
        else:
            raise InvalidInputError(
                f"layer {name!r}: {path} has suffix {path.suffix!r}; pass a .npy or .parquet file, "
                "or load it and pass the array."
            )
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    if hasattr(value, "columns") and hasattr(value, "to_numpy") and not isinstance(value, pa.Table):
        value = pa.Table.from_pandas(value, preserve_index=False)  # pandas DataFrame
    if isinstance(value, pa.Table):
        cols = _numeric_columns(value.schema, name)
        dtype = np.result_type(*[f.type.to_pandas_dtype() for f in value.schema])
        return _Source(name, value.num_rows, (len(cols),), dtype, _table_chunks(value), tuple(cols))
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise NonNumericInputError(
            f"layer {name!r} has dtype {arr.dtype}; activations must be numeric."
        )
    if arr.ndim == 0:
        raise InvalidInputError(f"layer {name!r} is a scalar; pass an array of shape (n, ...).")
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    return _Source(name, len(arr), tuple(arr.shape[1:]), arr.dtype, _array_chunks(arr))


def _stored_dtype(src: _Source, dtype: str | None) -> str:
    if dtype is not None:
        return check_choice(dtype, "dtype", fmt.DTYPES)
    if src.dtype == np.bool_:
        return "uint8"
    return src.dtype.name if src.dtype.name in fmt.DTYPES else "float32"


def write_dataset(
    path: str | Path,
    layers: Mapping[str, Any],
    targets: Any = None,
    target_kinds: Mapping[str, str] | None = None,
    *,
    model_id: str = "imported",
    sample_ids: Any = None,
    dtype: str | None = None,
    block_units: int | None = None,
    rows_per_part: int | None = None,
    row_group_rows: int | None = None,
    compression: str = "none",
    on_nonfinite: str = "raise",
    overwrite: bool = False,
) -> ActivationDataset:
    """Store existing activations as a dataset.

    Args:
        path: dataset folder or URI (``s3://bucket/prefix``; created; must be empty or a dataset
            when ``overwrite``).
        layers: ``{name: value}``; a value is an array/tensor (n, ...) (per-sample shapes are
            flattened C-order into units), a DataFrame or pyarrow Table with one numeric column
            per unit (column names are kept as ``unit_names``), or a ``.npy`` / ``.parquet`` path.
        targets: dict of arrays, DataFrame or pyarrow Table, one row per sample (may hold
            ``sample_id``).
        target_kinds: ``{target: "categorical" | "continuous"}`` (inferred when omitted).
        model_id: recorded as the model id in the manifest.
        sample_ids: ids in row order (default ``0..n-1``).
        dtype: stored dtype (default: the source's float dtype, so the round trip is exact).
        block_units, rows_per_part, row_group_rows, compression: storage layout.
        on_nonfinite: ``"raise"`` (default) or ``"keep"`` NaN/Inf (counted in the manifest).
        overwrite: replace an existing dataset at ``path``.
    """
    if not isinstance(layers, Mapping) or not layers:
        raise InvalidInputError(
            "layers must be a non-empty dict {layer name: activations}, got "
            f"{type(layers).__name__}."
        )
    sources = [_source(str(name), value) for name, value in layers.items()]
    lengths = {s.name: s.n for s in sources}
    if len(set(lengths.values())) > 1:
        raise LengthMismatchError(
            f"layers have different numbers of rows {lengths}; every layer needs one row per sample."
        )
    n = sources[0].n
    if n == 0:
        raise InvalidInputError("layers hold no rows; pass at least one sample.")
    frame, kinds = normalize_targets(targets, n, sample_ids, target_kinds)
    part_rows = check_part_rows(rows_per_part)
    block = check_block_units(block_units)
    specs = [
        LayerSpec(s.name, s.shape, _stored_dtype(s, dtype), "none", block, unit_names=s.unit_names)
        for s in sources
    ]
    root = StorePath.of(path)
    dataset_id = dataset_id_for({
        "source": "import", "n": n, "specs": [asdict(s) for s in specs], "rows_per_part": part_rows,
        "row_group_rows": row_group_rows, "compression": compression,
        "targets": hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy()
                                  .tobytes() + ",".join(map(str, frame.columns)).encode())
        .hexdigest(),
    })
    writer = DatasetWriter(root, specs, dataset_id=dataset_id, compression=compression,
                           row_group_rows=row_group_rows, on_nonfinite=on_nonfinite)
    prepare_folder(root, overwrite)
    iters = {s.name: _Rechunker(s.chunks(min(part_rows, 65536)), s.name) for s in sources}
    parts = []
    try:
        for index, start in enumerate(range(0, n, part_rows)):
            stop = min(start + part_rows, n)
            writer.start_part(index, start)
            for s in sources:
                row = start
                while row < stop:
                    chunk = iters[s.name].take(stop - row)
                    writer.write(s.name, chunk, row)
                    row += len(chunk)
            parts.append(writer.finish_part())
    except BaseException:
        writer.abort()
        raise
    writer.finalize(parts, frame, kinds, model={"id": model_id},
                    capture={"source": "import", "rows_per_part": part_rows})
    return open_dataset(root)


class _Rechunker:
    """Hand out exactly the requested number of rows from an iterator of row chunks."""

    def __init__(self, it: Iterator[np.ndarray], name: str) -> None:
        self.it, self.name, self.rest = it, name, None

    def take(self, k: int) -> np.ndarray:
        if self.rest is None or len(self.rest) == 0:
            self.rest = next(self.it, None)
            if self.rest is None:
                raise InvalidInputError(f"layer {self.name!r} ended early; it has fewer rows than declared.")
        out, self.rest = self.rest[:k], self.rest[k:]
        return out
