"""A job whose dataset and output are s3:// URIs (moto's server on a free loopback port):
run, resume after an interruption, read the results (API and CLI); no credentials stored."""

from __future__ import annotations

import pandas as pd
import pytest
from engine_data import make_activations, tiny_spec
from s3_server import ACCESS_KEY, SECRET_KEY, bucket_objects, moto_server, new_bucket, s3_env
from typer.testing import CliRunner

from distmi.core.errors import InvalidParameterError
from distmi.core.storage import StorePath
from distmi.jobs import load_results, run_job
from distmi.store import write_dataset

pytest.importorskip("moto")


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        yield url


@pytest.fixture
def bucket(endpoint, monkeypatch):
    for key, value in s3_env(endpoint).items():
        monkeypatch.setenv(key, value)
    return new_bucket(endpoint)


def _s3_dataset(bucket: str) -> str:
    uri = f"s3://{bucket}/datasets/tiny"
    layers, targets = make_activations()
    write_dataset(uri, layers, targets, {"label": "categorical", "score": "continuous"},
                  model_id="tiny", block_units=4)
    return uri


def test_job_with_s3_dataset_and_output_runs_resumes_and_loads(bucket, endpoint, tiny_dataset,
                                                               tmp_path):
    dataset = _s3_dataset(bucket)
    output = f"s3://{bucket}/results/tiny"
    expected = run_job(tiny_spec(tiny_dataset, tmp_path / "local")).table
    first = run_job(tiny_spec(dataset, output))
    pd.testing.assert_frame_equal(first.table, expected, check_exact=True)
    assert first.manifest["dataset"]["path"] == dataset

    # an interrupted run: no manifest, two parts lost
    out = StorePath.of(output)
    (out / "manifest.json").unlink()
    lost = sorted((out / "parts").listdir())[:2]
    for name in lost:
        (out / "parts" / name).unlink()
    resumed = run_job(tiny_spec(dataset, output))
    assert (resumed.batches_run, resumed.batches_resumed) == (2, len(first.manifest["parts"]) - 2)
    pd.testing.assert_frame_equal(resumed.table, expected, check_exact=True)

    table, _ = load_results(output, verify=True)
    pd.testing.assert_frame_equal(table, expected, check_exact=True)

    from distmi.cli import _load_commands, app

    _load_commands()
    res = CliRunner().invoke(app, ["results", output, "--target", "label", "--top", "1"])
    assert res.exit_code == 0, res.output
    assert "label" in res.output

    for key, blob in bucket_objects(endpoint, bucket).items():
        assert ACCESS_KEY.encode() not in blob and SECRET_KEY.encode() not in blob, key


def test_tampered_results_on_s3_are_refused(bucket):
    dataset = _s3_dataset(bucket)
    output = f"s3://{bucket}/results/t"
    run_job(tiny_spec(dataset, output))
    table = StorePath.of(output) / "attribution.parquet"
    data = bytearray(table.read_bytes())
    data[len(data) // 3] ^= 0x10
    table.write_bytes(bytes(data))
    from distmi.core.errors import CorruptDataError

    with pytest.raises(CorruptDataError, match=r"attribution\.parquet does not match the sha256"):
        load_results(output)


def test_a_job_with_credentials_in_its_output_uri_is_refused(bucket, tiny_dataset):
    spec = tiny_spec(tiny_dataset, f"s3://{ACCESS_KEY}:{SECRET_KEY}@{bucket}/out")
    with pytest.raises(InvalidParameterError, match="carries credentials") as err:
        run_job(spec)
    assert SECRET_KEY not in str(err.value)
