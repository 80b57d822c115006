"""Corrupt, edited, truncated or missing files are detected with a clear error."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distmi.core.errors import CorruptDataError, StoreError
from distmi.store import open_dataset, write_dataset


@pytest.fixture
def ds(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 64)).astype(np.float32)
    return write_dataset(tmp_path / "ds", {"h": x}, {"y": rng.integers(0, 2, 400)},
                         block_units=16, row_group_rows=100)


def _part(ds):
    return ds.path / ds.layer_info("h").parts[0].file.path


def _flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def test_a_flipped_byte_is_caught_on_read_and_by_verify(ds):
    path = _part(ds)
    md = pq.ParquetFile(path).metadata
    col = md.row_group(2).column(1)  # units 16..32, rows 200..300
    _flip_byte(path, col.data_page_offset + col.total_compressed_size // 2)
    fresh = open_dataset(ds.path)
    # a read that does not touch the damaged page still works ...
    fresh.read_layer("h", units=slice(0, 16))
    # ... one that does fails, naming the file
    with pytest.raises(CorruptDataError, match=r"L000_h/part-00000\.parquet .*could not be read"):
        fresh.read_layer("h", units=slice(16, 32))
    with pytest.raises(CorruptDataError, match=r"part-00000\.parquet .* has sha256 .*content changed"):
        fresh.verify()
    with pytest.raises(CorruptDataError):
        open_dataset(ds.path, verify=True)


def test_a_rewritten_file_is_caught_by_its_footer_hash(ds):
    path = _part(ds)
    table = pq.read_table(path)
    pq.write_table(table, path, use_dictionary=False, compression="none")  # same values, new file
    with pytest.raises(CorruptDataError, match=r"(bytes but the manifest recorded|footer sha256)"):
        open_dataset(ds.path).read_layer("h")


def test_an_in_place_edit_keeping_size_and_footer_is_caught(ds):
    path = _part(ds)
    # overwrite one value through pyarrow's own layout: same sizes, same footer, valid CRCs
    pf = pq.ParquetFile(path)
    col = pf.metadata.row_group(0).column(0)
    raw = bytearray(path.read_bytes())
    end = col.data_page_offset + col.total_compressed_size
    value = np.float32(123.0).tobytes()
    raw[end - 4 : end] = value  # last float of the chunk (CRC now wrong for that page)
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptDataError):
        open_dataset(ds.path).read_layer("h", units=slice(0, 16), rows=slice(0, 100))
    with pytest.raises(CorruptDataError, match="content changed after capture"):
        open_dataset(ds.path).verify()


def test_truncated_and_missing_files(ds):
    path = _part(ds)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDataError, match=r"is .* bytes but the manifest recorded"):
        open_dataset(ds.path).read_layer("h")
    os.remove(path)
    with pytest.raises(CorruptDataError, match="is missing from"):
        open_dataset(ds.path).read_layer("h")


def test_targets_file_is_checked_too(ds):
    tpath = ds.path / "targets.parquet"
    pq.write_table(pa.table({"sample_id": np.arange(400), "y": np.zeros(400, int)}), tpath)
    with pytest.raises(CorruptDataError, match=r"targets\.parquet"):
        open_dataset(ds.path).read_targets()


def test_an_edited_or_broken_manifest(ds):
    mpath = ds.path / "manifest.json"
    doc = json.loads(mpath.read_text())
    doc["layers"]["h"]["parts"][0]["row_stop"] = 399
    mpath.write_text(json.dumps(doc))
    with pytest.raises(CorruptDataError, match=r"do not cover rows 0\.\.400"):
        open_dataset(ds.path)
    mpath.write_text(mpath.read_text()[:50])
    with pytest.raises(CorruptDataError, match="is not valid JSON"):
        open_dataset(ds.path)
    doc["format_version"] = 99
    mpath.write_text(json.dumps(doc))
    with pytest.raises(StoreError, match="format_version 99; this distmi reads version 2"):
        open_dataset(ds.path)


def test_manifest_hash_identifies_the_content(ds, tmp_path):
    again = write_dataset(tmp_path / "again", {"h": ds.read_layer("h")}, ds.read_targets(),
                          block_units=16, row_group_rows=100)
    assert again.manifest_hash == ds.manifest_hash
    assert again.verify() == ds.verify() > 400 * 64 * 4
    other = write_dataset(tmp_path / "other", {"h": ds.read_layer("h") + 1}, ds.read_targets(),
                          block_units=16, row_group_rows=100)
    assert other.manifest_hash != ds.manifest_hash
