"""Edits a user (or a bad copy) can make to a stored dataset, shared by the store tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from distmi.store import write_dataset


def small_dataset(path: Path, seed: int = 0, *, dtype: str | None = None, n: int = 400,
                  targets_seed: int = 0, layers: tuple[str, ...] = ("h",)):
    """400 x 64 float32 layers (16-unit blocks), 4 parts of 100 rows, 2 row groups each."""
    rng = np.random.default_rng(seed)
    values = {name: rng.standard_normal((n, 64)).astype(np.float32) for name in layers}
    y = np.random.default_rng(targets_seed).integers(0, 2, n)
    return write_dataset(path, values, {"y": y}, block_units=16, rows_per_part=100,
                         row_group_rows=50, dtype=dtype)


def part_path(ds, layer: str = "h", k: int = 0) -> Path:
    return Path(ds.path) / ds.layer_info(layer).parts[k].file.path


def swap_files(a: Path, b: Path) -> None:
    tmp = a.with_name(a.name + ".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def copy_over(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)


def edit_manifest(ds_path: Path, edit) -> None:
    """Apply ``edit(doc)`` to ``manifest.json`` in place."""
    mpath = Path(ds_path) / "manifest.json"
    doc = json.loads(mpath.read_text())
    edit(doc)
    mpath.write_text(json.dumps(doc, indent=1))


def make_format_1(ds) -> Path:
    """Turn a dataset into what distmi 0.1.0 wrote: no identities, format_version 1."""
    from distmi.core.storage import StorePath
    from distmi.store.files import record_file

    root = Path(ds.path)
    doc = json.loads((root / "manifest.json").read_text())
    sroot = StorePath.of(root)
    for section in ("layers", "masks"):
        for entry in doc.get(section, {}).values():
            for part in entry["parts"]:
                path = root / part["file"]["path"]
                table = pq.read_table(path).replace_schema_metadata(None)
                pq.write_table(table, path, use_dictionary=False, compression="none",
                               write_statistics=False, write_page_checksum=True,
                               row_group_size=50)
                part.pop("values_sha256")
                part["file"] = record_file(sroot, sroot / part["file"]["path"]).to_dict()
    tpath = root / "targets.parquet"
    table = pq.read_table(tpath)
    table = table.replace_schema_metadata(
        {k: v for k, v in (table.schema.metadata or {}).items() if not k.startswith(b"distmi")})
    pq.write_table(table, tpath, write_page_checksum=True, compression="zstd")
    doc["targets"]["file"] = record_file(sroot, sroot / "targets.parquet").to_dict()
    doc["format_version"] = 1
    doc["distmi_version"] = "0.1.0"
    doc.pop("dataset_id")
    (root / "manifest.json").write_text(json.dumps(doc, indent=1))
    return root
