"""Identity of every stored file: which dataset, layer, part and rows it holds, and its values.

Each Parquet part of a layer carries, in its footer's key-value metadata (key ``distmi.part``),
a JSON :class:`PartIdentity`: the dataset id, the layer (or mask) name, the part index, its row
range [row_start, row_stop), the stored dtype, the unit count, unit shape and block width, and
the sha256 of its values. The manifest records the same facts per part. When a part is first
opened for reading, its identity is compared with what the manifest expects for that file
name, and every column's cell width with the manifest's dtype (``block width x itemsize``).
The footer is read anyway to open the file, so this costs no I/O and no hashing of data.

What it catches without ``verify()``: parts swapped between names or layers, a part copied in
from another dataset (another id, or the same id with other values), a part written with
another dtype, and manifest edits of a layer's dtype, shape or row ranges.

**Values hash.** ``values_sha256`` is the sha256 of the part's values as a row-major
(rows, n_units) array of the stored dtype, little-endian: independent of block width and row
groups, computed while writing (each row is hashed once, from memory). Recomputing it needs
every value (``distmi inspect --verify`` hashes every file instead).

**Dataset id.** Chosen by the writer from the capture fingerprint (or, for imports, from the
layer specs, layout and targets), so the same call writes the same id and stays byte-identical
when resumed; two datasets with equal ids are told apart by their values hashes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from distmi.core.errors import CorruptDataError

PART_KEY = b"distmi.part"
TARGETS_KEY = b"distmi.targets"
_FIX = "restore the file (or the manifest) from a copy, or recapture the dataset."


@dataclass(frozen=True)
class PartIdentity:
    """What one layer (or mask) part file holds; stored in its footer and in the manifest."""

    dataset_id: str
    role: str  # "layer" or "mask"
    layer: str
    part: int
    row_start: int
    row_stop: int
    dtype: str
    n_units: int
    unit_shape: tuple[int, ...]
    block_units: int
    values_sha256: str

    def to_metadata(self) -> dict[bytes, bytes]:
        doc = {**asdict(self), "unit_shape": list(self.unit_shape)}
        return {PART_KEY: json.dumps(doc, sort_keys=True).encode()}

    @classmethod
    def from_metadata(cls, metadata: dict[bytes, bytes] | None) -> PartIdentity | None:
        """The identity in a file's key-value metadata, or None when it has none."""
        raw = (metadata or {}).get(PART_KEY)
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            return cls(**{**doc, "unit_shape": tuple(int(s) for s in doc["unit_shape"])})
        except (ValueError, TypeError, KeyError):
            return None


class ValuesHasher:
    """sha256 of rows appended in order, as row-major little-endian bytes of one dtype."""

    def __init__(self, dtype: str) -> None:
        self._dtype = np.dtype(dtype).newbyteorder("<")
        self._h = hashlib.sha256()

    def update(self, values: np.ndarray) -> None:
        """Add rows ``values`` (shape (rows, n_units))."""
        block = np.ascontiguousarray(values, dtype=self._dtype)
        self._h.update(memoryview(block).cast("B"))

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def values_sha256(values: np.ndarray, dtype: str) -> str:
    """The values hash of a whole part (shape (rows, n_units))."""
    h = ValuesHasher(dtype)
    h.update(values)
    return h.hexdigest()


def check_cell_widths(columns: list[tuple[str, str, int]], expected: PartIdentity,
                      block_widths: list[int], where: str) -> None:
    """Each column must hold ``width x itemsize`` bytes per row for the manifest's dtype.

    Args:
        columns: ``(name, Parquet physical type, type length)`` of the file's columns.
        expected: the manifest's identity of the part (its dtype).
        block_widths: units per column, in column order.
        where: the file, for the message.
    """
    itemsize = np.dtype(expected.dtype).itemsize
    for (name, physical, length), width in zip(columns, block_widths, strict=True):
        got = length if physical == "FIXED_LEN_BYTE_ARRAY" else None
        if got != width * itemsize:
            raise CorruptDataError(
                f"{where} stores {got}-byte cells in column {name}, but the manifest says "
                f"layer {expected.layer!r} is {expected.dtype} ({width} units x {itemsize} bytes "
                f"= {width * itemsize}); the manifest's dtype was edited, or the file was written "
                f"with another dtype (it belongs to another dataset): {_FIX}"
            )


def parquet_columns(metadata: Any) -> list[tuple[str, str, int]]:
    """``(name, physical type, type length)`` of every column of a Parquet file's metadata."""
    schema = metadata.schema
    out = []
    for i in range(len(schema)):
        col = schema.column(i)
        out.append((col.name, col.physical_type, col.length))
    return out


def check_part(found: PartIdentity | None, expected: PartIdentity, where: str) -> None:
    """Compare a part file's identity with the manifest's expectation.

    Raises:
        CorruptDataError: naming the file, what it holds, what was expected, and the fix.
    """
    if found is None:
        raise CorruptDataError(
            f"{where} carries no distmi part identity, so it cannot be matched to part "
            f"{expected.part} of layer {expected.layer!r}; it was replaced by a file that this "
            f"dataset's writer did not write: {_FIX}"
        )
    if found.dataset_id != expected.dataset_id:
        raise CorruptDataError(
            f"{where} belongs to another dataset (id {found.dataset_id[:12]}..., this dataset "
            f"{expected.dataset_id[:12]}...): a file was copied in from another capture: {_FIX}"
        )
    if (found.role, found.layer) != (expected.role, expected.layer):
        raise CorruptDataError(
            f"{where} holds {found.role} {found.layer!r}, but the manifest lists it for "
            f"{expected.role} {expected.layer!r}: files were swapped between layers: {_FIX}"
        )
    if (found.part, found.row_start, found.row_stop) != (
        expected.part, expected.row_start, expected.row_stop
    ):
        raise CorruptDataError(
            f"{where} holds part {found.part} (rows {found.row_start}..{found.row_stop}) of "
            f"layer {found.layer!r}, but the manifest expects part {expected.part} (rows "
            f"{expected.row_start}..{expected.row_stop}) there: parts were swapped or renamed, "
            f"or the manifest's row ranges were edited: {_FIX}"
        )
    layout = ("dtype", "n_units", "unit_shape", "block_units")
    diff = [k for k in layout if getattr(found, k) != getattr(expected, k)]
    if diff:
        got = ", ".join(f"{k}={getattr(found, k)!r}" for k in diff)
        want = ", ".join(f"{k}={getattr(expected, k)!r}" for k in diff)
        raise CorruptDataError(
            f"{where} was written with {got}, but the manifest says {want} for layer "
            f"{expected.layer!r}: the manifest was edited or the file is from another dataset: "
            f"{_FIX}"
        )
    if found.values_sha256 != expected.values_sha256:
        raise CorruptDataError(
            f"{where} holds other values than the manifest recorded for part {expected.part} of "
            f"layer {expected.layer!r} (values sha256 {found.values_sha256[:12]}..., expected "
            f"{expected.values_sha256[:12]}...): it was replaced by a file of another capture "
            f"with the same layout: {_FIX}"
        )


def check_part_file(metadata: Any, expected: PartIdentity, names: list[str],
                    widths: list[int], where: str) -> None:
    """All read-time checks of one part from its Parquet footer (``FileMetaData``).

    Args:
        metadata: the open file's ``pyarrow.parquet.FileMetaData``.
        expected: the manifest's identity of the part.
        names, widths: the manifest layout's column names and units per column.
        where: the file, for the messages.
    """
    columns = parquet_columns(metadata)
    if [c[0] for c in columns] != names:
        raise CorruptDataError(
            f"{where} has columns {[c[0] for c in columns][:4]}..., expected {names[:4]}...; "
            f"the file does not belong to layer {expected.layer!r} as the manifest describes "
            f"it: {_FIX}"
        )
    check_cell_widths(columns, expected, widths, where)
    check_part(PartIdentity.from_metadata(metadata.metadata), expected, where)


def targets_metadata(dataset_id: str, n_rows: int) -> dict[bytes, bytes]:
    """Key-value metadata of ``targets.parquet``."""
    return {TARGETS_KEY: json.dumps({"dataset_id": dataset_id, "n_rows": int(n_rows)}).encode()}


def check_targets(metadata: dict[bytes, bytes] | None, dataset_id: str, n_rows: int,
                  where: str) -> None:
    """The targets file must name this dataset and hold one row per sample."""
    raw = (metadata or {}).get(TARGETS_KEY)
    try:
        doc: Any = json.loads(raw) if raw is not None else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise CorruptDataError(
            f"{where} carries no distmi targets identity; it was replaced by a file this "
            f"dataset's writer did not write: {_FIX}"
        )
    if doc.get("dataset_id") != dataset_id or doc.get("n_rows") != n_rows:
        raise CorruptDataError(
            f"{where} belongs to another dataset (id {str(doc.get('dataset_id'))[:12]}..., "
            f"{doc.get('n_rows')} rows; this dataset {dataset_id[:12]}..., {n_rows} rows): "
            f"{_FIX}"
        )


def dataset_id_for(settings: dict[str, Any]) -> str:
    """A dataset id from JSON-able settings (stable: same settings, same id)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(b"distmi-dataset\0" + text.encode()).hexdigest()[:32]
