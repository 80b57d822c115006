"""Every part carries its identity: swapped, foreign and re-typed parts and edited manifests are
caught on the normal read path (no --verify, no hashing of data), naming the file."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from store_edits import (
    copy_over,
    edit_manifest,
    make_format_1,
    part_path,
    small_dataset,
    swap_files,
)

from distmi.core.errors import CorruptDataError, StoreError
from distmi.store import open_dataset, upgrade_dataset
from distmi.store.identity import PART_KEY, PartIdentity


@pytest.fixture
def ds(tmp_path):
    return small_dataset(tmp_path / "ds", layers=("h", "g"))


def test_each_part_carries_its_identity_in_the_footer(ds):
    meta = ds.layer_info("h")
    footers = set()
    for k, part in enumerate(meta.parts):
        md = pq.ParquetFile(part_path(ds, "h", k)).metadata
        ident = PartIdentity.from_metadata(md.metadata)
        assert ident == meta.identity(ds.dataset_id, k)
        assert (ident.row_start, ident.row_stop) == (100 * k, 100 * (k + 1))
        footers.add(part.file.footer_sha256)
    assert len(footers) == len(meta.parts)  # parts of one layer never share a footer


def test_the_values_hash_is_the_row_major_bytes_of_the_part(ds):
    from distmi.store.identity import values_sha256

    part = ds.layer_info("h").parts[1]
    values = ds.read_layer("h", rows=slice(part.row_start, part.row_stop))
    assert values_sha256(values, "float32") == part.values_sha256


def test_swapped_parts_are_caught_on_read(ds):
    swap_files(part_path(ds, "h", 0), part_path(ds, "h", 1))
    fresh = open_dataset(ds.path)
    with pytest.raises(CorruptDataError,
                       match=r"L000_h/part-00000\.parquet .*holds part 1 \(rows 100\.\.200\).* "
                             r"expects part 0 \(rows 0\.\.100\).*swapped"):
        fresh.read_layer("h", rows=slice(0, 10))


def test_parts_swapped_between_layers_are_caught(ds):
    swap_files(part_path(ds, "h", 2), part_path(ds, "g", 2))
    with pytest.raises(CorruptDataError, match=r"holds layer 'g', but the manifest lists it for "
                                               r"layer 'h'"):
        open_dataset(ds.path).read_layer("h")


def test_a_part_from_another_capture_with_the_same_layout_is_caught(ds, tmp_path):
    # same settings and targets, so the same dataset id; only the values differ
    other = small_dataset(tmp_path / "other", seed=5, layers=("h", "g"))
    assert other.dataset_id == ds.dataset_id
    copy_over(part_path(other, "h", 3), part_path(ds, "h", 3))
    with pytest.raises(CorruptDataError, match=r"part-00003\.parquet .*holds other values than the "
                                               r"manifest recorded for part 3"):
        open_dataset(ds.path).read_layer("h", rows=[399])


def test_a_part_from_another_dataset_is_caught(ds, tmp_path):
    other = small_dataset(tmp_path / "other", seed=5, targets_seed=9, layers=("h", "g"))
    assert other.dataset_id != ds.dataset_id
    copy_over(part_path(other, "h", 0), part_path(ds, "h", 0))
    with pytest.raises(CorruptDataError, match=r"part-00000\.parquet .*belongs to another dataset"):
        open_dataset(ds.path).read_layer("h", units=[3])


def test_a_part_written_with_another_dtype_is_caught(ds, tmp_path):
    other = small_dataset(tmp_path / "f16", dtype="float16", layers=("h", "g"))
    copy_over(part_path(other, "h", 1), part_path(ds, "h", 1))
    with pytest.raises(CorruptDataError, match=r"stores 32-byte cells .*is float32 \(16 units x 4 "
                                               r"bytes = 64\)"):
        open_dataset(ds.path).read_layer("h")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dtype", "float16", r"part-00000\.parquet .*stores 64-byte cells .*manifest says layer 'h' "
                             r"is float16.*dtype was edited"),
        ("dtype", "int32", r"part-00000\.parquet .*was written with dtype='float32', but the manifest "
                           r"says dtype='int32'"),
        ("unit_shape", [4, 16], r"was written with unit_shape=\(64,\), but the manifest says "
                                r"unit_shape=\(4, 16\)"),
    ],
)
def test_an_edited_manifest_is_caught_on_read(ds, field, value, message):
    edit_manifest(ds.path, lambda doc: doc["layers"]["h"].update({field: value}))
    fresh = open_dataset(ds.path)  # the manifest itself is well-formed
    with pytest.raises(CorruptDataError, match=message):
        fresh.read_layer("h", units=slice(0, 4))
    with pytest.raises(CorruptDataError, match=message):
        fresh.verify()  # verify checks identities as well as hashes


def test_an_edited_row_range_is_caught(ds):
    def shift(doc):
        parts = doc["layers"]["h"]["parts"]
        parts[0]["row_stop"] = parts[1]["row_start"] = 90
    edit_manifest(ds.path, shift)
    with pytest.raises(CorruptDataError, match=r"holds part 0 \(rows 0\.\.100\).*expects part 0 "
                                               r"\(rows 0\.\.90\)"):
        open_dataset(ds.path).read_layer("h")


def test_a_part_without_identity_is_caught_even_with_matching_records(ds):
    from distmi.core.storage import StorePath
    from distmi.store.files import record_file

    path = part_path(ds, "g", 0)
    table = pq.read_table(path).replace_schema_metadata(None)
    pq.write_table(table, path, use_dictionary=False, compression="none")
    with pytest.raises(CorruptDataError, match=r"part-00000\.parquet .*(footer sha256|bytes but)"):
        open_dataset(ds.path).read_layer("g")
    root = StorePath.of(ds.path)  # now also record the new file in the manifest
    rec = record_file(root, root / ds.layer_info("g").parts[0].file.path).to_dict()
    edit_manifest(ds.path, lambda doc: doc["layers"]["g"]["parts"][0].update(file=rec))
    with pytest.raises(CorruptDataError, match=r"carries no distmi part identity"):
        open_dataset(ds.path).read_layer("g")


def test_a_foreign_targets_file_is_caught(ds, tmp_path):
    other = small_dataset(tmp_path / "other", targets_seed=3, layers=("h", "g"))
    copy_over(other.path / "targets.parquet", ds.path / "targets.parquet")
    with pytest.raises(CorruptDataError, match=r"targets\.parquet"):
        open_dataset(ds.path).read_targets()


def test_the_read_path_hashes_no_data(ds, monkeypatch):
    import distmi.store.files as files

    def boom(*_a, **_k):
        raise AssertionError("full-file hashing on the read path")

    monkeypatch.setattr(files, "sha256_file", boom)
    fresh = open_dataset(ds.path)
    assert fresh.read_layer("h").shape == (400, 64)
    fresh.read_layer("g", units=[1, 2], rows=[5, 399])
    fresh.read_targets()


def test_a_format_1_dataset_is_refused_with_the_fix_and_can_be_upgraded(ds):
    expected = {name: ds.read_layer(name) for name in ds.layers}
    targets = ds.read_targets()
    root = make_format_1(ds)
    with pytest.raises(StoreError, match=r"format 1 \(written by distmi 0\.1\.0\).*Re-capture it.*"
                                         r"distmi upgrade-dataset"):
        open_dataset(root)
    new = upgrade_dataset(root)
    assert new.manifest["format_version"] == 2 and new.manifest["upgraded_from"]["format_version"] == 1
    for name, values in expected.items():
        np.testing.assert_array_equal(new.read_layer(name), values)
    assert new.read_targets().equals(targets)
    new.verify()
    assert not list(root.glob("layers/*/part-0000?.parquet"))  # old files removed after commit
    assert upgrade_dataset(root).manifest_hash == new.manifest_hash  # idempotent
    # swapping parts of the upgraded dataset is caught like any other
    swap_files(part_path(new, "h", 0), part_path(new, "h", 1))
    with pytest.raises(CorruptDataError, match="holds part 1"):
        open_dataset(root).read_layer("h")


def test_upgrade_refuses_a_format_1_dataset_whose_parts_were_swapped(ds):
    root = make_format_1(ds)
    swap_files(part_path(ds, "h", 0), part_path(ds, "h", 1))
    with pytest.raises(CorruptDataError, match=r"part-00000\.parquet .*(sha256|footer)"):
        upgrade_dataset(root)
    assert (root / "layers/L000_h/part-00001.parquet").is_file()  # nothing was deleted


def test_the_expected_manifest_hash_is_checked(ds, tmp_path):
    assert open_dataset(ds.path, manifest_sha256=ds.manifest_hash).dataset_id == ds.dataset_id
    with pytest.raises(StoreError, match="changed: its manifest sha256 is"):
        open_dataset(ds.path, manifest_sha256="0" * 64)


def test_identity_key_is_in_the_raw_footer(ds):
    md = pq.read_metadata(part_path(ds))
    assert PART_KEY in md.metadata
