"""Upgrade a format-1 dataset (distmi 0.1.0) in place to the current format.

Format 1 files carry no identity, so a swapped or foreign part could only be caught by hashing
every file. :func:`upgrade_dataset` does exactly that once: every file is hashed against the
manifest (each record holds that file's own sha256, so swapped, foreign or edited files fail
here), every column's cell width is checked against the manifest's dtype, and then each part
is rewritten with its identity and values hash (same values, same row groups) under a new name
(``part-00000-v2.parquet``) and the targets file with its identity. The new manifest is written
last; only then are the old files deleted. An interrupted upgrade leaves the old dataset intact
(run it again); the upgraded dataset gets a new manifest hash.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.parquet as pq

from distmi.core.errors import CorruptDataError, StoreError
from distmi.core.storage import StorePath
from distmi.store import _format as fmt
from distmi.store.files import FileRecord, atomic_write_json, check_full, record_file
from distmi.store.identity import (
    PartIdentity,
    ValuesHasher,
    check_cell_widths,
    dataset_id_for,
    parquet_columns,
    targets_metadata,
)
from distmi.store.manifest import (
    FORMAT_VERSION,
    LEGACY_VERSIONS,
    MANIFEST,
    LayerMeta,
    load_manifest,
    manifest_bytes_hash,
    parse_manifest,
)
from distmi.store.reader import ActivationDataset, open_dataset
from distmi.store.writer import write_parquet

_SUFFIX = "-v2.parquet"


def upgrade_dataset(path: str | Any, *, log: Any = None) -> ActivationDataset:
    """Verify a format-1 dataset completely, then record every part's identity (see module doc).

    Args:
        path: the dataset folder or URI.
        log: optional ``log(message)`` callback, called per rewritten file.

    Returns:
        The upgraded dataset, opened. A dataset already in the current format is returned as is.

    Raises:
        CorruptDataError: a file does not match the manifest (restore it or recapture).
        StoreError: not a dataset, or a format this distmi does not know.
    """
    root = StorePath.of(path)
    mpath = root / MANIFEST
    if not mpath.is_file():
        load_manifest(root)  # raises the usual "no dataset here" message
    raw = mpath.read_bytes()
    doc = parse_manifest(raw, mpath)
    version = doc.get("format_version")
    if version == FORMAT_VERSION:
        return open_dataset(root)
    if version not in LEGACY_VERSIONS:
        raise StoreError(f"{mpath} has format_version {version!r}, which cannot be upgraded.")
    dataset_id = dataset_id_for({"upgraded_from": manifest_bytes_hash(raw)})
    old_files: list[str] = []
    for section, role in (("layers", "layer"), ("masks", "mask")):
        for name, entry in doc.get(section, {}).items():
            meta = LayerMeta.from_dict(name, entry, role)
            for k, part in enumerate(meta.parts):
                check_full(root, part.file)
                new_rec, values_hash = _rewrite_part(root, meta, k, dataset_id)
                entry["parts"][k].update(values_sha256=values_hash, file=new_rec.to_dict())
                old_files.append(part.file.path)
                if log is not None:
                    log(f"{part.file.path} -> {new_rec.path}")
    trec = FileRecord.from_dict(doc["targets"]["file"])
    check_full(root, trec)
    table = pq.read_table((root / trec.path).parquet_source())
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), **targets_metadata(dataset_id, int(doc["n_samples"]))})
    new_targets = root / trec.path.replace(".parquet", _SUFFIX)
    write_parquet(new_targets, table, write_page_checksum=True, compression="zstd")
    doc["targets"]["file"] = record_file(root, new_targets).to_dict()
    old_files.append(trec.path)
    doc.update(format_version=FORMAT_VERSION, dataset_id=dataset_id,
               upgraded_from={"format_version": version,
                              "manifest_sha256": manifest_bytes_hash(raw)})
    atomic_write_json(mpath, doc)  # the commit point: the old files are unused from here on
    for rel in old_files:
        (root / rel).unlink(missing_ok=True)
    return open_dataset(root)


def _rewrite_part(root: StorePath, meta: LayerMeta, k: int, dataset_id: str
                  ) -> tuple[FileRecord, str]:
    """Copy part ``k`` of ``meta`` row group by row group, adding its identity."""
    rec = meta.parts[k].file
    layout = meta.layout
    src = pq.ParquetFile((root / rec.path).parquet_source(), page_checksum_verification=True)
    widths = [e - s for s, e in map(layout.block_range, range(layout.n_blocks))]
    where = f"dataset file {rec.path} in {root}"
    check_cell_widths(parquet_columns(src.metadata), meta.identity(dataset_id, k), widths, where)
    if src.schema_arrow.names != layout.column_names():
        raise CorruptDataError(
            f"{where} has columns {src.schema_arrow.names[:4]}..., expected "
            f"{layout.column_names()[:4]}...; restore it or recapture the dataset."
        )
    target = root / rec.path.replace(".parquet", _SUFFIX)
    schema = layout.schema(meta.name)
    hasher = ValuesHasher(meta.dtype)
    sink = None if target.is_local else target.open_output()
    writer = pq.ParquetWriter(str(target.local) if sink is None else sink, schema,
                              **fmt.writer_options(_compression(src)))
    rows = 0
    try:
        for i in range(src.metadata.num_row_groups):
            table = src.read_row_group(i)
            values = np.empty((table.num_rows, meta.n_units), dtype=meta.dtype)
            for b in range(layout.n_blocks):
                start, stop = layout.block_range(b)
                layout.decode_into(table.column(b), b, values, slice(start, stop))
            hasher.update(values)
            writer.write_table(layout.encode(values, schema), row_group_size=len(values))
            rows += len(values)
        part = meta.parts[k]
        if rows != part.row_stop - part.row_start:
            raise CorruptDataError(
                f"{where} holds {rows} rows, the manifest says {part.row_stop - part.row_start}; "
                "restore it or recapture the dataset."
            )
        ident = PartIdentity(
            dataset_id=dataset_id, role=meta.role, layer=meta.name, part=k,
            row_start=part.row_start, row_stop=part.row_stop, dtype=meta.dtype,
            n_units=meta.n_units, unit_shape=meta.unit_shape, block_units=meta.block_units,
            values_sha256=hasher.hexdigest())
        writer.add_key_value_metadata(ident.to_metadata())
    finally:
        writer.close()
        if sink is not None:
            sink.close()
    return record_file(root, target), ident.values_sha256


def _compression(pf: pq.ParquetFile) -> str:
    if pf.metadata.num_row_groups == 0 or pf.metadata.num_columns == 0:
        return "none"
    codec = pf.metadata.row_group(0).column(0).compression.lower()
    return "none" if codec == "uncompressed" else codec


__all__ = ["upgrade_dataset"]
