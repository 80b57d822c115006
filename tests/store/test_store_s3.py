"""Datasets on S3-compatible object storage (moto's server on a free loopback port)."""

from __future__ import annotations

import numpy as np
import pytest
from s3_server import ACCESS_KEY, SECRET_KEY, bucket_objects, moto_server, new_bucket, s3_env

from distmi.core.errors import CorruptDataError, InvalidParameterError, StoreError
from distmi.core.storage import StorePath
from distmi.store import open_dataset, write_dataset

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


def _values(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((300, 40)).astype(np.float32), rng.integers(0, 3, 300)


def test_write_read_and_verify_on_s3(bucket, endpoint):
    x, y = _values()
    uri = f"s3://{bucket}/acts/ds"
    ds = write_dataset(uri, {"h": x}, {"y": y}, block_units=16, rows_per_part=100)
    assert ds.uri == uri and str(ds.path) == uri
    again = open_dataset(uri)
    np.testing.assert_array_equal(again.read_layer("h"), x)
    np.testing.assert_array_equal(again.read_layer("h", units=[3, 39], rows=slice(50, 250)),
                                  x[50:250][:, [3, 39]])
    assert again.read_targets()["y"].tolist() == y.tolist()
    assert again.verify() > x.nbytes
    objects = bucket_objects(endpoint, bucket)
    assert "acts/ds/manifest.json" in objects and "acts/ds/layers/L000_h/part-00002.parquet" in objects
    assert not any(k.endswith(".inprogress") for k in objects)
    for blob in objects.values():  # credentials come from the environment, never stored
        assert ACCESS_KEY.encode() not in blob and SECRET_KEY.encode() not in blob


def test_a_swapped_part_on_s3_is_caught_on_read(bucket):
    x, y = _values()
    uri = f"s3://{bucket}/ds"
    ds = write_dataset(uri, {"h": x}, {"y": y}, block_units=16, rows_per_part=100)
    root = StorePath.of(uri)
    part0, part1 = (root / p.file.path for p in ds.layer_info("h").parts[:2])
    root.fs.copy_file(part1.fs_path, part0.fs_path)
    with pytest.raises(CorruptDataError, match=r"part-00000\.parquet .*holds part 1"):
        open_dataset(uri).read_layer("h")


def test_overwrite_and_refusals_on_s3(bucket):
    x, y = _values()
    uri = f"s3://{bucket}/ds"
    write_dataset(uri, {"h": x}, {"y": y})
    with pytest.raises(StoreError, match="already holds a dataset"):
        write_dataset(uri, {"h": x}, {"y": y})
    ds = write_dataset(uri, {"h": x + 1}, {"y": y}, overwrite=True)
    np.testing.assert_array_equal(ds.read_layer("h"), x + 1)
    with pytest.raises(StoreError, match="does not exist"):
        open_dataset(f"s3://{bucket}/nothing-here")


def test_capture_to_s3(bucket):
    pytest.importorskip("torch")
    from distmi.examples.train_models import build_iris_dataset

    uri = f"s3://{bucket}/iris"
    ds = build_iris_dataset(uri)
    assert ds.uri == uri and ds.layer_shape("act1") == (150, 16)
    assert open_dataset(uri).manifest_hash == ds.manifest_hash
    assert build_iris_dataset(uri).manifest_hash == ds.manifest_hash  # reused, not rebuilt


@pytest.mark.parametrize(
    "uri",
    [f"s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/ds",
     f"s3://bucket/ds?access_key={ACCESS_KEY}&secret_key={SECRET_KEY}",
     "s3://bucket/ds?session_token=abc"],
)
def test_credentials_in_a_uri_are_refused_and_not_echoed(uri):
    with pytest.raises(InvalidParameterError, match=r"credential.*environment") as err:
        open_dataset(uri)
    assert SECRET_KEY not in str(err.value)
