"""Shard planning: cut a layer into (unit range x row range) work units for the engine.

A shard's ``shard_id`` depends only on the layer and its ranges, so seeds derived from it
(``derive_seed(root, shard.shard_id)``) are the same however shards are scheduled. Shards start
at unit 0 and step by ``units_per_shard``, so when that is a multiple of the stored
``block_units`` (128 by default) every shard reads whole blocks and no unneeded bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from distmi.core.errors import InvalidParameterError
from distmi.core.validation import check_int

if TYPE_CHECKING:
    from distmi.store.reader import ActivationDataset


@dataclass(frozen=True, order=True)
class Shard:
    """Units [unit_start, unit_stop) x rows [row_start, row_stop) of one layer."""

    layer: str
    unit_start: int
    unit_stop: int
    row_start: int
    row_stop: int

    @property
    def shard_id(self) -> str:
        """Stable id, e.g. ``"encoder.layer.0/u0-128/r0-1000"``."""
        return (
            f"{self.layer}/u{self.unit_start}-{self.unit_stop}/r{self.row_start}-{self.row_stop}"
        )

    @property
    def n_units(self) -> int:
        return self.unit_stop - self.unit_start

    @property
    def n_rows(self) -> int:
        return self.row_stop - self.row_start

    def read(self, dataset: ActivationDataset) -> np.ndarray:
        """Activations of this shard, shape (n_rows, n_units)."""
        return dataset.read_layer(
            self.layer,
            units=slice(self.unit_start, self.unit_stop),
            rows=slice(self.row_start, self.row_stop),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "unit_start": self.unit_start,
            "unit_stop": self.unit_stop,
            "row_start": self.row_start,
            "row_stop": self.row_stop,
        }


def _row_range(rows: Any, n: int) -> tuple[int, int]:
    if rows is None:
        return 0, n
    if isinstance(rows, slice | range):
        start, stop, step = slice(rows.start, rows.stop, rows.step).indices(n)
        if step != 1:
            raise InvalidParameterError(f"rows must be a contiguous range (step 1), got step {step}.")
        return start, max(start, stop)
    if isinstance(rows, tuple) and len(rows) == 2:
        start, stop = (check_int(v, "rows bound", minimum=0, maximum=n) for v in rows)
        if stop < start:
            raise InvalidParameterError(f"rows=(start, stop) needs start <= stop, got {rows}.")
        return start, stop
    raise InvalidParameterError(
        f"rows must be None, a slice/range or a (start, stop) tuple, got {rows!r}; shards are "
        "contiguous row ranges (select samples with read_layer(rows=...) instead)."
    )


def plan_shards(
    dataset: ActivationDataset,
    layer: str,
    units_per_shard: int,
    rows: Any = None,
    rows_per_shard: int | None = None,
) -> list[Shard]:
    """Cut ``layer`` into shards of ``units_per_shard`` units (x ``rows_per_shard`` rows).

    Args:
        dataset: an opened dataset.
        layer: layer name.
        units_per_shard: units per shard (the last shard may be narrower).
        rows: contiguous row range to cover (None = all samples).
        rows_per_shard: rows per shard (None = the whole row range in each shard).

    Returns:
        Shards ordered by (unit_start, row_start); together they cover the selection once.
    """
    n_samples, n_units = dataset.layer_shape(layer)
    step_u = check_int(units_per_shard, "units_per_shard", minimum=1)
    r0, r1 = _row_range(rows, n_samples)
    step_r = (r1 - r0) or 1
    if rows_per_shard is not None:
        step_r = check_int(rows_per_shard, "rows_per_shard", minimum=1)
    shards = []
    for u in range(0, n_units, step_u):
        for r in range(r0, r1, step_r):
            shards.append(Shard(layer, u, min(u + step_u, n_units), r, min(r + step_r, r1)))
    return shards
