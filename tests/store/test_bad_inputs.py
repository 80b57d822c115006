"""Bad inputs of the store, committed results, storage locations and job submission: each case
is (make the input and use it, expected error class, message fragment). Every one must raise
that distmi error with a message naming the problem (and the file) and the fix.

Datasets and results are built once per module and copied per case, so each case damages its
own copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from store_edits import (
    copy_over,
    edit_manifest,
    make_format_1,
    part_path,
    small_dataset,
    swap_files,
)

from distmi.core.errors import (
    CorruptDataError,
    InvalidParameterError,
    SpecError,
    StoreError,
)
from distmi.store import open_dataset

ROOT = Path(__file__).parents[2]


class Env:
    """Fresh copies of a pristine dataset and of committed results, per case."""

    def __init__(self, tmp: Path, pristine: Path, other: Path, f16: Path, results: Path,
                 spec_doc: dict) -> None:
        self.tmp, self._pristine, self._results, self.spec_doc = tmp, pristine, results, spec_doc
        self.other, self.f16 = other, f16

    def dataset(self) -> Path:
        dst = self.tmp / "ds"
        shutil.copytree(self._pristine, dst)
        return dst

    def results(self) -> Path:
        dst = self.tmp / "res"
        shutil.copytree(self._results, dst)
        return dst

    def spec(self, **over):
        from distmi.jobs.spec import parse_spec

        return parse_spec({**self.spec_doc, **over})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from distmi.jobs import run_job
    from distmi.jobs.spec import parse_spec

    base = tmp_path_factory.mktemp("bad-inputs")
    small_dataset(base / "pristine", layers=("h", "g"))
    small_dataset(base / "other", seed=5, targets_seed=9, layers=("h", "g"))
    small_dataset(base / "f16", dtype="float16", layers=("h", "g"))
    doc = {"name": "bad-inputs", "dataset": {"path": str(base / "pristine")}, "layers": ["h"],
           "units": {"range": [0, 4]}, "targets": ["y"],
           "estimator": {"method": "gmm", "params": {"n_components": 1, "n_inits": 1}},
           "n_bootstrap": 2, "null_permutations": 0, "output": str(base / "results"),
           "scaling": {"executor": "local", "batch_size": 2}}
    run_job(parse_spec(doc))
    return base, doc


@pytest.fixture
def env(built, tmp_path):
    base, doc = built
    return Env(tmp_path, base / "pristine", base / "other", base / "f16", base / "results",
               {**doc, "output": str(tmp_path / "res")})


def _read(path) -> None:
    ds = open_dataset(path)
    for name in ds.layers:
        ds.read_layer(name)
    ds.read_targets()


# ---- activation store: identity, widths, manifests --------------------------------------------
def _swapped_parts(e):
    ds = open_dataset(e.dataset())
    swap_files(part_path(ds, "h", 0), part_path(ds, "h", 1))
    _read(ds.path)


def _swapped_layers(e):
    ds = open_dataset(e.dataset())
    swap_files(part_path(ds, "h", 1), part_path(ds, "g", 1))
    _read(ds.path)


def _foreign_part(e):
    ds = open_dataset(e.dataset())
    copy_over(part_path(open_dataset(e.other), "h", 2), part_path(ds, "h", 2))
    _read(ds.path)


def _foreign_part_same_layout(e):
    ds = open_dataset(e.dataset())
    other = small_dataset(e.tmp / "same-layout", seed=11, layers=("h", "g"))
    copy_over(part_path(other, "g", 3), part_path(ds, "g", 3))
    _read(ds.path)


def _retyped_part(e):
    ds = open_dataset(e.dataset())
    copy_over(part_path(open_dataset(e.f16), "h", 0), part_path(ds, "h", 0))
    _read(ds.path)


def _manifest_dtype(value):
    def make(e):
        path = e.dataset()
        edit_manifest(path, lambda d: d["layers"]["h"].update(dtype=value))
        _read(path)
    return make


def _manifest_shape(e):
    path = e.dataset()
    edit_manifest(path, lambda d: d["layers"]["g"].update(unit_shape=[8, 8]))
    _read(path)


def _manifest_rows(e):
    path = e.dataset()

    def shift(d):
        parts = d["layers"]["h"]["parts"]
        parts[1]["row_stop"] = parts[2]["row_start"] = 150
    edit_manifest(path, shift)
    _read(path)


def _part_without_identity(e):
    from distmi.core.storage import StorePath
    from distmi.store.files import record_file

    path = e.dataset()
    ds = open_dataset(path)
    target = part_path(ds, "g", 0)
    pq.write_table(pq.read_table(target).replace_schema_metadata(None), target,
                   use_dictionary=False, compression="none")
    root = StorePath.of(path)
    rec = record_file(root, root / ds.layer_info("g").parts[0].file.path).to_dict()
    edit_manifest(path, lambda d: d["layers"]["g"]["parts"][0].update(file=rec))
    _read(path)


def _foreign_targets(e):
    path = e.dataset()
    copy_over(Path(e.other) / "targets.parquet", path / "targets.parquet")
    open_dataset(path).read_targets()


def _truncated_dataset_manifest(e):
    path = e.dataset()
    mf = path / "manifest.json"
    mf.write_bytes(mf.read_bytes()[:300])
    open_dataset(path)


def _manifest_without_dataset_id(e):
    path = e.dataset()
    edit_manifest(path, lambda d: d.pop("dataset_id"))
    open_dataset(path)


def _manifest_unknown_dtype(e):
    path = e.dataset()
    edit_manifest(path, lambda d: d["layers"]["h"].update(dtype="complex64"))
    open_dataset(path)


def _format_1_dataset(e):
    path = e.dataset()
    make_format_1(open_dataset(path))
    open_dataset(path)


def _missing_part(e):
    ds = open_dataset(e.dataset())
    part_path(ds, "h", 3).unlink()
    _read(ds.path)


def _truncated_part(e):
    ds = open_dataset(e.dataset())
    p = part_path(ds, "g", 2)
    p.write_bytes(p.read_bytes()[:1000])
    _read(ds.path)


def _flipped_byte(e):
    ds = open_dataset(e.dataset())
    p = part_path(ds, "h", 1)
    md = pq.ParquetFile(p).metadata
    col = md.row_group(0).column(0)
    data = bytearray(p.read_bytes())
    data[col.data_page_offset + col.total_compressed_size // 2] ^= 0x5A
    p.write_bytes(bytes(data))
    _read(ds.path)


def _same_size_edit_verify(e):
    ds = open_dataset(e.dataset())
    p = part_path(ds, "h", 2)
    md = pq.ParquetFile(p).metadata
    col = md.row_group(1).column(2)
    data = bytearray(p.read_bytes())
    data[col.data_page_offset + col.total_compressed_size - 3] ^= 0x01
    p.write_bytes(bytes(data))
    open_dataset(ds.path, verify=True)


def _changed_dataset(e):
    open_dataset(e.dataset(), manifest_sha256="f" * 64)


def _missing_dataset(e):
    open_dataset(e.tmp / "no-such-dataset")


def _not_a_dataset(e):
    (e.tmp / "folder").mkdir()
    (e.tmp / "folder" / "notes.txt").write_text("x")
    open_dataset(e.tmp / "folder")


# ---- committed results -------------------------------------------------------------------------
def _load(path, verify=False):
    from distmi.jobs import load_results

    load_results(path, verify=verify)


def _tampered_table(e):
    import pandas as pd

    out = e.results()
    frame = pd.read_parquet(out / "attribution.parquet")
    frame["estimate"] = frame["estimate"] + 0.5
    frame.to_parquet(out / "attribution.parquet", index=False)
    _load(out)


def _same_size_table_edit(e):
    out = e.results()
    t = out / "attribution.parquet"
    data = bytearray(t.read_bytes())
    data[len(data) // 2] ^= 0x01
    t.write_bytes(bytes(data))
    _load(out)


def _truncated_results_manifest(e):
    out = e.results()
    mf = out / "manifest.json"
    mf.write_bytes(mf.read_bytes()[: len(mf.read_bytes()) // 2])
    _load(out)


def _results_manifest_not_a_mapping(e):
    out = e.results()
    (out / "manifest.json").write_text("[1, 2, 3]")
    _load(out)


def _results_manifest_without_table(e):
    out = e.results()
    doc = json.loads((out / "manifest.json").read_text())
    doc.pop("table")
    (out / "manifest.json").write_text(json.dumps(doc))
    _load(out)


def _results_part(out):
    return sorted((out / "parts").glob("*.parquet"))[0]


def _truncated_result_part(e):
    out = e.results()
    p = _results_part(out)
    p.write_bytes(p.read_bytes()[:64])
    _load(out)


def _missing_result_part(e):
    out = e.results()
    _results_part(out).unlink()
    _load(out)


def _result_part_edited_verify(e):
    out = e.results()
    p = _results_part(out)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    _load(out, verify=True)


def _missing_results_manifest(e):
    out = e.results()
    (out / "manifest.json").unlink()
    _load(out)


def _missing_results_folder(e):
    _load(e.tmp / "never-ran")


def _damaged_job_file(e):
    from distmi.jobs import run_job

    out = e.results()
    (out / "manifest.json").unlink()
    (out / "job.json").write_text('{"spec_hash": ')
    run_job(e.spec())


def _other_jobs_folder(e):
    from distmi.jobs import run_job

    e.results()
    run_job(e.spec(seed=99))  # another spec hash, same output folder


# ---- storage locations -------------------------------------------------------------------------
def _open(uri):
    def make(e):
        open_dataset(uri)
    return make


def _job_output(uri):
    def make(e):
        from distmi.jobs import run_job

        run_job(e.spec(output=uri))
    return make


def _write_to(uri):
    def make(e):
        from distmi.store import write_dataset

        write_dataset(uri, {"h": np.zeros((4, 2), np.float32)})
    return make


def _dataset_is_a_file(e):
    from distmi.store import write_dataset

    (e.tmp / "file").write_text("x")
    write_dataset(e.tmp / "file", {"h": np.ones((4, 2), np.float32)})


# ---- submit / status ---------------------------------------------------------------------------
def _submission(**over):
    def make(e):
        from distmi.jobs.spec import load_spec, parse_spec, spec_to_dict
        from distmi.jobs.submit import build_submission

        doc = spec_to_dict(load_spec(ROOT / "jobs/quickstart.yaml"))
        for key, value in over.pop("doc", {}).items():
            doc[key] = value
        kwargs = {"working_dir": ROOT, "single_machine": False, **over}
        build_submission(ROOT / "jobs/quickstart.yaml", parse_spec(doc), **kwargs)
    return make


def _relative_job_file_outside(e):
    from distmi.jobs.spec import load_spec
    from distmi.jobs.submit import build_submission

    job = e.tmp / "job.yaml"
    job.write_text(yaml.safe_dump({**e.spec_doc, "scaling": {"executor": "ray"}}))
    build_submission(job, load_spec(job), working_dir=ROOT, single_machine=True)


def _bad_address(e):
    from distmi.jobs.submit import job_status

    job_status("x", "head:6379")


def _unknown_job(e):
    from distmi.jobs.submit import job_status

    class Client:
        def get_job_info(self, job_id):
            raise RuntimeError("Request failed with status code 404: Job x does not exist.")

    job_status("x", "http://head:8265", client=Client())


def _remote_cluster_listing_no_nodes(e):
    from distmi.jobs.submit import cluster_is_single_machine

    single = cluster_is_single_machine("http://head:8265", node_ips=lambda a: [], attempts=2,
                                       pause_s=0)
    _submission(single_machine=single)(e)


CASES = [
    # activation store (read path, no --verify)
    pytest.param(_swapped_parts, CorruptDataError, "holds part 1 (rows 100..200)", id="swapped-parts"),
    pytest.param(_swapped_layers, CorruptDataError, "files were swapped between layers",
                 id="parts-swapped-between-layers"),
    pytest.param(_foreign_part, CorruptDataError, "belongs to another dataset", id="foreign-part"),
    pytest.param(_foreign_part_same_layout, CorruptDataError, "holds other values than the manifest",
                 id="foreign-part-same-layout"),
    pytest.param(_retyped_part, CorruptDataError, "stores 32-byte cells", id="retyped-part"),
    pytest.param(_manifest_dtype("float16"), CorruptDataError, "manifest's dtype was edited",
                 id="manifest-dtype-float16"),
    pytest.param(_manifest_dtype("int32"), CorruptDataError, "was written with dtype='float32'",
                 id="manifest-dtype-int32-same-width"),
    pytest.param(_manifest_dtype("float64"), CorruptDataError, "stores 64-byte cells",
                 id="manifest-dtype-float64"),
    pytest.param(_manifest_shape, CorruptDataError, "unit_shape=(8, 8)", id="manifest-unit-shape"),
    pytest.param(_manifest_rows, CorruptDataError, "row ranges were edited", id="manifest-row-range"),
    pytest.param(_part_without_identity, CorruptDataError, "carries no distmi part identity",
                 id="part-without-identity"),
    pytest.param(_foreign_targets, CorruptDataError, "targets.parquet", id="foreign-targets"),
    pytest.param(_truncated_dataset_manifest, CorruptDataError, "is not valid JSON",
                 id="truncated-dataset-manifest"),
    pytest.param(_manifest_without_dataset_id, CorruptDataError, "lacks the keys ['dataset_id']",
                 id="manifest-without-dataset-id"),
    pytest.param(_manifest_unknown_dtype, CorruptDataError, "dtype 'complex64' is not one of",
                 id="manifest-unknown-dtype"),
    pytest.param(_format_1_dataset, StoreError, "distmi upgrade-dataset", id="format-1-dataset"),
    pytest.param(_missing_part, CorruptDataError, "is missing from", id="missing-part"),
    pytest.param(_truncated_part, CorruptDataError, "bytes but the manifest recorded",
                 id="truncated-part"),
    pytest.param(_flipped_byte, CorruptDataError, "could not be read", id="flipped-byte-page-crc"),
    pytest.param(_same_size_edit_verify, CorruptDataError, "content changed after capture",
                 id="same-size-edit-verify"),
    pytest.param(_changed_dataset, StoreError, "changed: its manifest sha256", id="dataset-changed"),
    pytest.param(_missing_dataset, StoreError, "does not exist", id="missing-dataset"),
    pytest.param(_not_a_dataset, StoreError, "it is not a distmi activation dataset",
                 id="not-a-dataset"),
    # committed results
    pytest.param(_tampered_table, CorruptDataError, "attribution.parquet", id="tampered-table"),
    pytest.param(_same_size_table_edit, CorruptDataError, "does not match the sha256",
                 id="same-size-table-edit"),
    pytest.param(_truncated_results_manifest, CorruptDataError, "truncated or not valid JSON",
                 id="truncated-results-manifest"),
    pytest.param(_results_manifest_not_a_mapping, CorruptDataError,
                 "not a complete distmi results manifest", id="results-manifest-not-a-mapping"),
    pytest.param(_results_manifest_without_table, CorruptDataError,
                 "not a complete distmi results manifest", id="results-manifest-without-table"),
    pytest.param(_truncated_result_part, CorruptDataError, "is 64 bytes but the manifest recorded",
                 id="truncated-result-part"),
    pytest.param(_missing_result_part, CorruptDataError, "listed in the manifest is missing",
                 id="missing-result-part"),
    pytest.param(_result_part_edited_verify, CorruptDataError, "does not match the sha256",
                 id="result-part-edited-verify"),
    pytest.param(_missing_results_manifest, StoreError, "holds no committed results",
                 id="missing-results-manifest"),
    pytest.param(_missing_results_folder, StoreError, "the folder does not exist",
                 id="missing-results-folder"),
    pytest.param(_damaged_job_file, CorruptDataError, "job.json is damaged", id="damaged-job-file"),
    pytest.param(_other_jobs_folder, SpecError, "holds results of a different job",
                 id="output-of-another-job"),
    # storage locations
    pytest.param(_open("s3://AKIAEXAMPLE:secret@bucket/ds"), InvalidParameterError,
                 "carries credentials", id="credentials-in-uri"),
    pytest.param(_open("s3://bucket/ds?secret_key=abc&access_key=AKIA"), InvalidParameterError,
                 "credential parameter(s)", id="credential-query-in-uri"),
    pytest.param(_open("gs://bucket/ds?session_token=abc"), InvalidParameterError,
                 "credential parameter(s)", id="session-token-in-uri"),
    pytest.param(_open("nosuchfs://bucket/ds"), InvalidParameterError, "cannot open",
                 id="unknown-uri-scheme"),
    pytest.param(_job_output("s3://AKIAEXAMPLE:secret@bucket/out"), InvalidParameterError,
                 "carries credentials", id="credentials-in-job-output"),
    pytest.param(_write_to("s3://u:p@bucket/ds"), InvalidParameterError, "carries credentials",
                 id="credentials-in-dataset-uri"),
    pytest.param(_dataset_is_a_file, StoreError, "exists and is a file", id="dataset-path-is-a-file"),
    # submit / status
    pytest.param(_submission(), SpecError, "output 'out/iris-quickstart' is a relative path",
                 id="relative-output-on-submit"),
    pytest.param(_submission(output="s3://b/out"), SpecError,
                 "dataset.path 'out/iris' is a relative path", id="relative-dataset-on-submit"),
    pytest.param(_submission(output="s3://AKIA:secret@b/out"), InvalidParameterError,
                 "carries credentials", id="credentials-in-submit-output"),
    pytest.param(_submission(doc={"scaling": {"executor": "local"}}, single_machine=True),
                 SpecError, "set scaling.executor: ray", id="local-executor-on-submit"),
    pytest.param(_relative_job_file_outside, SpecError, "outside the working directory",
                 id="job-file-outside-working-dir"),
    pytest.param(_remote_cluster_listing_no_nodes, SpecError, "is a relative path",
                 id="cluster-listing-no-nodes-is-remote"),
    pytest.param(_bad_address, InvalidParameterError, "dashboard URL such as http://HEAD:8265",
                 id="status-address-not-dashboard"),
    pytest.param(_unknown_job, InvalidParameterError, "has no job 'x'", id="status-unknown-job"),
]


@pytest.mark.parametrize(("make", "error", "fragment"), CASES)
def test_bad_input_raises_a_clear_error(env, make, error, fragment):
    with pytest.raises(error) as info:
        make(env)
    assert fragment in str(info.value), str(info.value)
    assert type(info.value).__module__ == "distmi.core.errors"


# ---- the CLI: messages and exit codes, never a traceback ---------------------------------------
def _cli():
    from typer.testing import CliRunner

    from distmi.cli import _load_commands, app

    _load_commands()
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    ("prepare", "args", "fragment"),
    [
        (lambda e: _tampered_table_only(e), ["results", "{res}"], "does not match the sha256"),
        (lambda e: (e.results() / "manifest.json").write_text("{"), ["results", "{res}"],
         "truncated or not valid JSON"),
        (lambda e: _swap_first_parts(e.dataset()), ["inspect", "{ds}"], None),
        (lambda e: make_format_1(open_dataset(e.dataset())), ["inspect", "{ds}"],
         "distmi upgrade-dataset"),
        (lambda e: None, ["inspect", "s3://user:pw@bucket/x"], "carries credentials"),
        (lambda e: None, ["status", "x", "--address", "head:6379"], "dashboard URL"),
    ],
    ids=["tampered-table", "truncated-manifest", "swapped-parts-inspect-ok",
         "format-1-inspect", "credentials-uri", "status-bad-address"],
)
def test_cli_reports_errors_without_tracebacks(env, prepare, args, fragment):
    prepare(env)
    res = _cli()(*[a.format(res=env.tmp / "res", ds=env.tmp / "ds") for a in args])
    if fragment is None:  # inspect reads only the manifest: the swap shows on reading data
        assert res.exit_code == 0, res.output
        res = _cli()("inspect", env.tmp / "ds", "--verify")
        fragment = "holds part 1"
    assert res.exit_code == 2, res.output
    assert fragment in res.output and "Traceback" not in res.output
    assert res.output.startswith("error: ")


def _swap_first_parts(path):
    ds = open_dataset(path)
    swap_files(part_path(ds, "h", 0), part_path(ds, "h", 1))


def _tampered_table_only(e):
    out = e.results()
    t = out / "attribution.parquet"
    data = bytearray(t.read_bytes())
    data[len(data) // 3] ^= 0x02
    t.write_bytes(bytes(data))


def test_unexpected_errors_print_a_short_message_and_how_to_see_the_traceback(monkeypatch):
    def boom(*_a, **_k):
        raise ZeroDivisionError("division by zero")

    # the results command imports load_results when it runs
    monkeypatch.setattr("distmi.reduce.commit.load_results", boom)
    res = _cli()("results", "anything")
    assert res.exit_code == 3
    assert "internal error: ZeroDivisionError: division by zero" in res.output
    assert "DISTMI_DEBUG=1" in res.output and "Traceback" not in res.output
    monkeypatch.setenv("DISTMI_DEBUG", "1")
    res = _cli()("results", "anything")
    assert isinstance(res.exception, ZeroDivisionError)  # the traceback is there when asked


def test_the_table_is_large_enough():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


def test_usage_errors_keep_clicks_message_and_exit_code():
    res = _cli()("status", "some-job", "--no-such-option")
    assert res.exit_code == 2 and "No such option" in res.output
    assert "internal error" not in res.output
