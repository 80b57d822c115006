"""StorePath: local paths and URIs behind one small interface."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from distmi.core.errors import InvalidParameterError
from distmi.core.storage import StorePath, check_uri, is_uri


def test_local_paths_keep_what_was_given_and_know_their_absolute_form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = StorePath.of("out/ds")
    assert str(p) == "out/ds" and p.uri == str(tmp_path / "out" / "ds") and p.is_local
    assert os.fspath(p) == "out/ds" and p.local == Path("out/ds")
    child = p / "layers" / "part-00000.parquet"
    assert child.uri == str(tmp_path / "out/ds/layers/part-00000.parquet")
    assert child.relative_to(p) == "layers/part-00000.parquet" and child.parent.parent == p
    assert not p.exists()
    (p / "x.bin").write_bytes(b"abc")  # creates the folders; atomic on local disks
    assert p.is_dir() and (p / "x.bin").read_bytes() == b"abc" and p.listdir() == {"x.bin": 3}
    assert (p / "x.bin").read_tail(2) == b"bc" and (p / "x.bin").size() == 3
    assert StorePath.of(f"file://{tmp_path}/out/ds") == p
    p.rmtree()
    assert not p.exists()


def test_uris_keep_their_options_and_join_below_the_path():
    pytest.importorskip("pyarrow")
    p = StorePath.of("s3://bucket/runs?region=eu-west-1&endpoint_override=127.0.0.1:9&scheme=http")
    assert not p.is_local and p.fs_path == "bucket/runs" and str(p) == "s3://bucket/runs"
    child = p / "iris" / "manifest.json"
    assert child.fs_path == "bucket/runs/iris/manifest.json"
    assert child.uri.startswith("s3://bucket/runs/iris/manifest.json?region=eu-west-1")
    assert child.parent.fs_path == "bucket/runs/iris"
    with pytest.raises(TypeError, match="not a local path"):
        os.fspath(p)


@pytest.mark.parametrize("uri", ["s3://KEY:SECRET@bucket/x", "s3://KEY@bucket/x",
                                 "s3://bucket/x?secret_key=s", "gs://b/x?access_token=t",
                                 "abfs://c/x?sas_token=t", "hdfs://nn/x?password=p"])
def test_uris_with_credentials_are_refused(uri):
    assert is_uri(uri)
    with pytest.raises(InvalidParameterError, match="environment"):
        check_uri(uri)
    with pytest.raises(InvalidParameterError):
        StorePath.of(uri)


def test_plain_paths_are_not_uris():
    for path in ("out/x", "/abs/x", "C:/x", "relative:colon/x"):
        assert not is_uri(path)
    with pytest.raises(InvalidParameterError, match="empty"):
        StorePath.of("")
