"""Committed results are checked on load: a rewritten table, a truncated manifest or part, a
missing part give CorruptDataError naming the file and the fix; a rerun rebuilds them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from engine_data import tiny_spec

from distmi.core.errors import CorruptDataError, SpecError, StoreError
from distmi.jobs import load_results, run_job
from distmi.reduce.commit import table_digest


@pytest.fixture(scope="module")
def committed(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("committed") / "r"
    res = run_job(tiny_spec(tiny_dataset, out))
    return out, res.table


@pytest.fixture
def out(committed, tmp_path):
    """A private copy of the committed results."""
    src, _ = committed
    dst = tmp_path / "r"
    shutil.copytree(src, dst)
    return dst


def _a_part(out: Path) -> Path:
    return sorted((out / "parts").glob("*.parquet"))[0]


def test_manifest_records_sizes_and_hashes(out, committed):
    table, manifest = load_results(out, verify=True)
    pd.testing.assert_frame_equal(table, committed[1])
    assert manifest["table"]["size"] == (out / "attribution.parquet").stat().st_size
    for rec in manifest["parts"]:
        path = out / rec["path"]
        assert rec["size"] == path.stat().st_size
        assert rec["values_sha256"] == table_digest(pq.read_table(path))
    assert sum(r["rows"] for r in manifest["parts"]) == manifest["table"]["rows"] == len(table)


def test_a_table_rewritten_with_other_numbers_is_refused(out):
    path = out / "attribution.parquet"
    frame = pd.read_parquet(path)
    frame["estimate"] = frame["estimate"] * 2
    frame.to_parquet(path, index=False)
    with pytest.raises(CorruptDataError, match=r"attribution\.parquet (is \d+ bytes|does not match)"
                                               r".*run the job again"):
        load_results(out)


def test_a_same_size_edit_of_the_table_is_refused(out):
    path = out / "attribution.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match=r"attribution\.parquet does not match the sha256 "
                                               r"recorded in .*manifest\.json"):
        load_results(out)


@pytest.mark.parametrize("keep", [0, 1, 40, 200])
def test_a_truncated_manifest_is_refused(out, keep):
    mf = out / "manifest.json"
    mf.write_bytes(mf.read_bytes()[:keep])
    with pytest.raises(CorruptDataError, match=r"manifest\.json is truncated or not valid JSON.*"
                                               r"run the job again"):
        load_results(out)


def test_a_manifest_missing_its_table_record_is_refused(out):
    mf = out / "manifest.json"
    doc = json.loads(mf.read_text())
    del doc["table"]
    mf.write_text(json.dumps(doc))
    with pytest.raises(CorruptDataError, match=r"not a complete distmi results manifest"):
        load_results(out)


def test_a_truncated_part_is_refused(out):
    part = _a_part(out)
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(CorruptDataError, match=rf"result part .*{part.name} is 100 bytes but the "
                                               r"manifest recorded"):
        load_results(out)


def test_a_missing_part_is_refused(out):
    part = _a_part(out)
    part.unlink()
    with pytest.raises(CorruptDataError, match=rf"result part .*{part.name} listed in the manifest "
                                               r"is missing"):
        load_results(out)


def test_verify_hashes_every_part(out):
    part = _a_part(out)
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: only the full hash sees it
    part.write_bytes(bytes(data))
    load_results(out)  # the cheap check passes ...
    with pytest.raises(CorruptDataError, match=rf"{part.name} does not match the sha256"):
        load_results(out, verify=True)


def test_a_missing_manifest_is_not_committed(out):
    (out / "manifest.json").unlink()
    with pytest.raises(StoreError, match=r"holds no committed results .*unfinished run: run the "
                                         r"job again to resume"):
        load_results(out)


def test_a_rerun_rebuilds_damaged_results_from_the_parts(out, committed, tiny_dataset):
    (out / "manifest.json").write_text("{")  # truncated
    logs = []
    res = run_job(tiny_spec(tiny_dataset, out), log=logs.append)
    assert res.batches_run == 0 and any("damaged" in m for m in logs)
    pd.testing.assert_frame_equal(res.table, committed[1])
    load_results(out, verify=True)


def test_an_edited_part_is_recomputed_on_resume(out, committed, tiny_dataset):
    part = _a_part(out)
    table = pq.read_table(part)
    frame = table.to_pandas()
    frame["estimate"] = 9.0  # other numbers, the part's metadata kept as it was
    pq.write_table(pq.read_table(part).from_pandas(frame, preserve_index=False)
                   .replace_schema_metadata(table.schema.metadata), part)
    (out / "manifest.json").unlink()  # an interrupted run
    res = run_job(tiny_spec(tiny_dataset, out))
    assert res.batches_run == 1  # the edited part was recomputed
    pd.testing.assert_frame_equal(res.table, committed[1])


def test_a_damaged_job_file_is_refused_with_the_fix(out, tiny_dataset):
    (out / "job.json").write_text("{not json")
    (out / "manifest.json").unlink()
    with pytest.raises(CorruptDataError, match=r"job\.json is damaged .*--overwrite"):
        run_job(tiny_spec(tiny_dataset, out))
    with pytest.raises(SpecError, match="different job"):
        (out / "job.json").write_text(json.dumps({"spec_hash": "x"}))
        run_job(tiny_spec(tiny_dataset, out))
