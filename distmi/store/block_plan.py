"""Which unit blocks (Parquet columns) a read needs, and copying their rows into the output.

A read of units ``U`` touches the blocks overlapping ``U``; :func:`unit_plan` lists, per block,
which of its units go to which output columns (slices when ``U`` is a contiguous range, index
arrays otherwise), and :func:`decode_rows` copies rows of a row group's columns into the output
(each cell is ``width`` little-endian values of the layer's dtype).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from distmi.store._format import BlockLayout


@dataclass(frozen=True)
class BlockPlan:
    """Copy ``block[:, src]`` to ``out[:, dst]`` (slices for contiguous units, else arrays)."""

    block: int
    column: str
    src: slice | np.ndarray
    dst: slice | np.ndarray


def unit_plan(layout: BlockLayout, u: np.ndarray | slice) -> list[BlockPlan]:
    """Per block overlapping the units ``u`` (a normalized slice or int array), what to copy."""
    plans = []
    if isinstance(u, slice):
        if u.stop <= u.start:
            return []
        for b in range(u.start // layout.block_units, (u.stop - 1) // layout.block_units + 1):
            s, e = layout.block_range(b)
            lo, hi = max(s, u.start), min(e, u.stop)
            plans.append(BlockPlan(b, layout.column_name(b), slice(lo - s, hi - s),
                                   slice(lo - u.start, hi - u.start)))
        return plans
    blocks = u // layout.block_units
    for b in np.unique(blocks):
        pos = np.flatnonzero(blocks == b)
        s, _ = layout.block_range(int(b))
        plans.append(BlockPlan(int(b), layout.column_name(int(b)), u[pos] - s, pos))
    return plans


def decode_rows(layout: BlockLayout, table: pa.Table, plan: list[BlockPlan], lo: int, hi: int,
                out: np.ndarray, out_row: int) -> None:
    """Copy rows [lo, hi) (relative to the row group) of ``table`` into ``out[out_row:]``."""
    for p in plan:
        s, e = layout.block_range(p.block)
        width = e - s
        row = 0
        for chunk in table.column(p.column).chunks:
            n = len(chunk)
            a, b = max(lo, row), min(hi, row + n)
            if a < b:
                view = np.frombuffer(
                    chunk.buffers()[1], dtype=np.dtype(layout.dtype).newbyteorder("<"),
                    count=n * width, offset=chunk.offset * width * layout.itemsize,
                ).reshape(n, width)
                out[out_row + a - lo : out_row + b - lo, p.dst] = view[a - row : b - row, p.src]
            row += n
