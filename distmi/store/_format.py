"""On-disk layout of a layer: Parquet files whose columns are blocks of units.

A layer of shape (n_rows, n_units) is cut into unit blocks of ``block_units`` consecutive units.
Each block is one Parquet column of type ``fixed_size_binary(block_width * itemsize)``: one cell
holds the block's values of one row as raw little-endian bytes. Why this layout (measured, see
docs/store.md):

- A whole-layer read touches every column; FIXED_LEN_BYTE_ARRAY pages decode as a memcpy, so it
  runs at disk/memory speed (list or tensor columns carry repetition levels per value and were
  ~5x slower to write and read here).
- A unit shard reads only the blocks it overlaps, i.e. ``ceil(units / block_units)`` columns.
- The footer holds ``n_blocks x n_row_groups`` column chunks: small for any realistic width.

Files are written without dictionary encoding, without statistics and with page CRC32 checksums
(verified on every read). Column ``u{start:07d}_{stop:07d}`` holds units [start, stop).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

LAYOUT = "unit-blocks-v1"
DEFAULT_BLOCK_UNITS = 128
#: Target size of one row group of one layer (all blocks together).
ROW_GROUP_BYTES = 32 * 1024 * 1024
MIN_ROW_GROUP_ROWS = 256
MAX_ROW_GROUP_ROWS = 65536
DEFAULT_ROWS_PER_PART = 65536

#: Storage dtypes a layer may have (numpy names, and ``bfloat16``).
DTYPES = ("float16", "float32", "float64", "uint8", "int32", "int64", "bfloat16")
#: Dtypes numpy lacks, stored as raw little-endian bits of another width.
_BITS = {"bfloat16": "<u2"}


def storage_dtype(dtype: str) -> np.dtype:
    """The numpy dtype of the stored bytes (``bfloat16``: its raw bits as ``uint16``)."""
    return np.dtype(_BITS.get(dtype, dtype))


def value_dtype(dtype: str) -> np.dtype:
    """The dtype reads return: the stored dtype, except ``bfloat16`` -> ``float32`` (exact)."""
    return np.dtype("float32") if dtype == "bfloat16" else np.dtype(dtype)


def to_storage(values: np.ndarray, dtype: str) -> np.ndarray:
    """Values as stored: a cast, or for ``bfloat16`` float32 rounded to nearest even (as
    ``torch.Tensor.to(torch.bfloat16)``), kept as ``uint16`` bits; NaN stays a quiet NaN."""
    if dtype != "bfloat16":
        with np.errstate(over="ignore"):  # an overflow to Inf is reported by the writer
            return values.astype(dtype, copy=False)
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))))
    out = (rounded >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(values)
    if nan.any():
        out[nan] = ((bits[nan] >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
    return out


def from_storage(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Stored values as :func:`value_dtype` (``bfloat16`` bits widened to float32)."""
    if dtype != "bfloat16":
        return raw
    return (raw.astype(np.uint32) << np.uint32(16)).view(np.float32)
COMPRESSIONS = ("none", "zstd", "lz4", "snappy")


@dataclass(frozen=True)
class BlockLayout:
    """How the units of one layer map to Parquet columns.

    Attributes:
        n_units: number of (flattened) units of the layer.
        block_units: units per column; the last block may be narrower.
        dtype: numpy dtype name of the stored values.
    """

    n_units: int
    block_units: int
    dtype: str

    @property
    def n_blocks(self) -> int:
        return -(-self.n_units // self.block_units)

    @property
    def itemsize(self) -> int:
        return storage_dtype(self.dtype).itemsize

    def block_range(self, b: int) -> tuple[int, int]:
        start = b * self.block_units
        return start, min(start + self.block_units, self.n_units)

    def column_name(self, b: int) -> str:
        start, stop = self.block_range(b)
        return f"u{start:07d}_{stop:07d}"

    def column_names(self) -> list[str]:
        return [self.column_name(b) for b in range(self.n_blocks)]

    def blocks_for(self, units: np.ndarray) -> np.ndarray:
        """Sorted unique block indices covering the unit indices ``units`` (shape (k,))."""
        return np.unique(units // self.block_units)

    def schema(self, layer: str) -> pa.Schema:
        fields = []
        for b in range(self.n_blocks):
            start, stop = self.block_range(b)
            fields.append(
                pa.field(
                    self.column_name(b),
                    pa.binary((stop - start) * self.itemsize),
                    nullable=False,
                    metadata={"distmi.dtype": self.dtype, "distmi.units": f"{start}:{stop}"},
                )
            )
        return pa.schema(fields, metadata={"distmi.layer": layer, "distmi.layout": LAYOUT})

    def encode(self, values: np.ndarray, schema: pa.Schema) -> pa.Table:
        """Encode rows ``values`` (shape (rows, n_units), in :func:`storage_dtype`) as a table."""
        values = np.asarray(values, dtype=storage_dtype(self.dtype))
        arrays = []
        for b in range(self.n_blocks):
            start, stop = self.block_range(b)
            block = np.ascontiguousarray(values[:, start:stop])  # shape (rows, width)
            if block.dtype.byteorder == ">":  # pragma: no cover - big-endian hosts
                block = block.astype(block.dtype.newbyteorder("<"))
            arrays.append(
                pa.Array.from_buffers(
                    pa.binary((stop - start) * self.itemsize),
                    len(block),
                    [None, pa.py_buffer(block)],
                )
            )
        return pa.Table.from_arrays(arrays, schema=schema)

    def decode_into(
        self, column: pa.ChunkedArray, b: int, out: np.ndarray, out_cols: slice, row0: int = 0
    ) -> None:
        """Copy block ``b`` from ``column`` into ``out[row0:row0+len, out_cols]``."""
        start, stop = self.block_range(b)
        width = stop - start
        row = row0
        for chunk in column.chunks:
            n = len(chunk)
            if n == 0:
                continue
            data = np.frombuffer(
                chunk.buffers()[1],
                dtype=storage_dtype(self.dtype).newbyteorder("<"),
                count=n * width,
                offset=chunk.offset * width * self.itemsize,
            ).reshape(n, width)
            out[row : row + n, out_cols] = from_storage(data, self.dtype)
            row += n


def row_group_rows(n_units: int, dtype: str) -> int:
    """Rows per row group so that one row group of the layer is about ``ROW_GROUP_BYTES``."""
    row_bytes = max(1, n_units * storage_dtype(dtype).itemsize)
    rows = ROW_GROUP_BYTES // row_bytes
    return int(min(MAX_ROW_GROUP_ROWS, max(MIN_ROW_GROUP_ROWS, rows)))


def writer_options(compression: str) -> dict:
    """Keyword arguments of :class:`pyarrow.parquet.ParquetWriter` for activation files.

    Dictionary encoding is off (pyarrow's default made a wide float file 2.3 GB and 7x slower
    to write), statistics are off (min/max of byte blocks is meaningless), page CRCs are on.
    """
    return {
        "use_dictionary": False,
        "compression": compression,
        "write_statistics": False,
        "write_page_checksum": True,
    }


def layer_dir_name(index: int, name: str) -> str:
    """Folder of layer number ``index``: ``L003_encoder.layer.2`` (unsafe characters -> ``_``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80].strip(".") or "layer"
    return f"L{index:03d}_{safe}"


def part_file_name(index: int) -> str:
    return f"part-{index:05d}.parquet"
