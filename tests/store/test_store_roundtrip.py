"""Dataset format: exact round trips, shard reads equal slices, import sources, targets."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distmi.core.errors import (
    InvalidInputError,
    InvalidParameterError,
    LengthMismatchError,
    NonFiniteInputError,
    NonNumericInputError,
    StoreError,
    UnknownLayerError,
)
from distmi.store import open_dataset, plan_shards, write_dataset

N, U = 530, 203  # not multiples of the block / row-group / part sizes used below


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(7)
    return {
        "fc": rng.standard_normal((N, U)).astype(np.float32),
        "conv": rng.standard_normal((N, 3, 4, 5)),  # float64, per-sample shape (3, 4, 5)
        "half": rng.standard_normal((N, 9)).astype(np.float16),
        "codes": rng.integers(-5, 5, size=(N, 6)).astype(np.int64),
        "scalar": rng.standard_normal(N).astype(np.float32),  # 1-D: one unit
    }


@pytest.fixture(scope="module")
def dataset(arrays, tmp_path_factory):
    rng = np.random.default_rng(8)
    targets = {
        "label": rng.integers(0, 4, N),
        "name": rng.choice(["cat", "dog"], N),
        "temperature": rng.normal(20, 5, N),
    }
    path = tmp_path_factory.mktemp("rt") / "ds"
    return write_dataset(path, arrays, targets, block_units=32, rows_per_part=200,
                         row_group_rows=64, model_id="unit-test")


def test_round_trip_is_exact_for_every_dtype_and_shape(dataset, arrays):
    assert dataset.layers == list(arrays)
    for name, arr in arrays.items():
        got = dataset.read_layer(name)
        expected = arr.reshape(N, -1)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
        assert dataset.layer_shape(name) == expected.shape
    assert dataset.layer_info("conv").unit_shape == (3, 4, 5)
    assert dataset.model_id == "unit-test"


def test_layers_are_split_into_parts_row_groups_and_blocks(dataset):
    info = dataset.layer_info("fc")
    assert [(p.row_start, p.row_stop) for p in info.parts] == [(0, 200), (200, 400), (400, 530)]
    names = pq.ParquetFile(dataset.path / info.parts[0].file.path).schema_arrow.names
    assert names[0] == "u0000000_0000032" and names[-1] == "u0000192_0000203"
    md = pq.ParquetFile(dataset.path / info.parts[0].file.path).metadata
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [64, 64, 64, 8]


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_selection_equals_numpy_indexing(dataset, arrays, data):
    x = arrays["fc"]
    kind_u = data.draw(st.sampled_from(["slice", "indices", "mask", "none"]))
    kind_r = data.draw(st.sampled_from(["slice", "indices", "mask", "none"]))

    def draw(kind, n):
        if kind == "none":
            return None, slice(None)
        if kind == "slice":
            a = data.draw(st.integers(0, n))
            b = data.draw(st.integers(a, n))
            return slice(a, b), slice(a, b)
        if kind == "mask":
            m = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
            return m, m
        idx = np.array(data.draw(st.lists(st.integers(-n, n - 1), max_size=40)), dtype=np.int64)
        return idx, idx

    units, u_np = draw(kind_u, U)
    rows, r_np = draw(kind_r, N)
    got = dataset.read_layer("fc", units=units, rows=rows)
    np.testing.assert_array_equal(got, x[r_np][:, u_np])


def test_shards_tile_the_layer_and_equal_slices(dataset, arrays):
    x = arrays["fc"]
    shards = plan_shards(dataset, "fc", units_per_shard=64, rows_per_shard=250)
    cover = np.zeros(x.shape, dtype=int)
    for s in shards:
        np.testing.assert_array_equal(s.read(dataset), x[s.row_start:s.row_stop,
                                                         s.unit_start:s.unit_stop])
        cover[s.row_start:s.row_stop, s.unit_start:s.unit_stop] += 1
    assert (cover == 1).all()
    assert len({s.shard_id for s in shards}) == len(shards) == 4 * 3
    assert shards[0].shard_id == "fc/u0-64/r0-250"
    again = plan_shards(dataset, "fc", units_per_shard=64, rows_per_shard=250)
    assert [s.shard_id for s in again] == [s.shard_id for s in shards]
    sub = plan_shards(dataset, "fc", 100, rows=(10, 20))
    assert [(s.unit_start, s.unit_stop, s.row_start, s.row_stop) for s in sub] == [
        (0, 100, 10, 20), (100, 200, 10, 20), (200, 203, 10, 20)]


def test_iter_layer_streams_row_groups_and_batches(dataset, arrays):
    x = arrays["fc"]
    starts = []
    for start, block in dataset.iter_layer("fc", units=[5, 190, 0]):
        np.testing.assert_array_equal(block, x[start:start + len(block)][:, [5, 190, 0]])
        starts.append(start)
    assert starts[:4] == [0, 64, 128, 192] and starts[4] == 200  # row groups restart per part
    pieces = [b for _, b in dataset.iter_layer("fc", batch_rows=100)]
    assert [len(b) for b in pieces] == [100] * 5 + [30]
    np.testing.assert_array_equal(np.concatenate(pieces), x)


def test_targets_table_and_kinds(dataset):
    t = dataset.read_targets()
    assert list(t.columns) == ["sample_id", "label", "name", "temperature"]
    np.testing.assert_array_equal(t["sample_id"], np.arange(N))
    assert dataset.target_kinds == {"label": "categorical", "name": "categorical",
                                    "temperature": "continuous"}
    cols = dataset.manifest["targets"]["columns"]
    assert cols["name"]["n_classes"] == 2
    assert sum(cols["label"]["class_counts"].values()) == N
    assert list(dataset.read_targets(columns=["temperature"]).columns) == ["sample_id", "temperature"]
    with pytest.raises(UnknownLayerError, match=r"target 'temprature' .*Did you mean 'temperature'"):
        dataset.read_targets(columns=["temprature"])


def test_reading_does_not_import_torch_and_dataset_pickles(dataset, arrays):
    ds2 = pickle.loads(pickle.dumps(dataset))
    np.testing.assert_array_equal(ds2.read_layer("half", rows=[3, 1]), arrays["half"][[3, 1]])
    assert ds2.manifest_hash == dataset.manifest_hash
    code = (
        "import sys; from distmi.store import open_dataset; "
        f"ds = open_dataset({str(dataset.path)!r}); ds.read_layer('fc'); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_layer_suggests_the_closest(dataset):
    with pytest.raises(UnknownLayerError, match=r"layer 'fc1' is not in dataset .*Did you mean 'fc'"):
        dataset.read_layer("fc1")


def test_bad_selections_name_the_range(dataset):
    with pytest.raises(InvalidParameterError, match=r"units index 203 is out of range .*0\.\.202"):
        dataset.read_layer("fc", units=[203])
    with pytest.raises(InvalidParameterError, match=r"boolean rows mask must have shape \(530,\)"):
        dataset.read_layer("fc", rows=np.ones(3, bool))
    with pytest.raises(InvalidParameterError, match="units_per_shard must be >= 1"):
        plan_shards(dataset, "fc", 0)


def test_import_from_parquet_pandas_arrow_and_npy(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 4)).astype(np.float32)
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "acts.parquet")
    np.save(tmp_path / "acts.npy", x)
    ds = write_dataset(tmp_path / "ds", {
        "pandas": frame, "arrow": pa.Table.from_pandas(frame),
        "parquet": tmp_path / "acts.parquet", "npy": str(tmp_path / "acts.npy"),
    }, {"y": rng.integers(0, 2, 50)}, rows_per_part=16)
    for name in ds.layers:
        np.testing.assert_array_equal(ds.read_layer(name), x)
    assert ds.layer_info("pandas").unit_names == ("a", "b", "c", "d")
    assert ds.layer_info("npy").unit_names is None


def test_string_sample_ids_and_explicit_kinds(tmp_path):
    ids = [f"img-{i:03d}" for i in range(20)]
    ds = write_dataset(tmp_path / "ds", {"h": np.eye(20, dtype=np.float32)},
                       pd.DataFrame({"sample_id": ids, "grade": np.arange(20) % 3 * 1.0}),
                       target_kinds={"grade": "categorical"})
    assert ds.manifest["sample_id_dtype"] == "string"
    assert list(ds.sample_ids) == ids
    assert ds.target_kinds == {"grade": "categorical"}


@pytest.mark.parametrize(
    ("layers", "targets", "kwargs", "error", "match"),
    [
        ({"a": np.zeros((5, 2)), "b": np.zeros((6, 2))}, None, {}, LengthMismatchError,
         r"layers have different numbers of rows \{'a': 5, 'b': 6\}"),
        ({"a": np.zeros((5, 2))}, {"y": np.arange(4)}, {}, LengthMismatchError,
         "targets have 4 rows but the dataset has 5 samples"),
        ({"a": np.array([["x"], ["y"]])}, None, {}, NonNumericInputError,
         "layer 'a' has dtype <U1; activations must be numeric"),
        ({"a": np.zeros((5, 2))}, {"y": np.arange(5)}, {"target_kinds": {"z": "continuous"}},
         InvalidParameterError, r"target_kinds names \['z'\], which are not target columns"),
        ({"a": np.zeros((5, 2))}, {"y": np.arange(5)}, {"target_kinds": {"y": "ordinal"}},
         InvalidParameterError, "target kind of 'y' must be one of"),
        ({"a": np.zeros((3, 2))}, {"t": [1.0, np.nan, 2.0]}, {}, NonFiniteInputError,
         "target 't' has 1 NaN and 0 Inf values"),
        ({"a": np.zeros((3, 2))}, None, {"sample_ids": [1, 1, 2]}, InvalidInputError,
         r"sample_ids must be unique, but \[1\] occur more than once"),
        ({"a": np.zeros((3, 2))}, None, {"compression": "gzip9"}, InvalidParameterError,
         "compression must be one of"),
    ],
)
def test_bad_imports_are_rejected_with_a_fix(tmp_path, layers, targets, kwargs, error, match):
    with pytest.raises(error, match=match):
        write_dataset(tmp_path / "ds", layers, targets, **kwargs)
    assert not (tmp_path / "ds" / "manifest.json").exists()


def test_nonfinite_activations_raise_with_counts_or_are_kept_and_counted(tmp_path):
    x = np.ones((10, 3), dtype=np.float32)
    x[4, 1] = np.nan
    x[6, 0] = x[7, 2] = np.inf
    with pytest.raises(NonFiniteInputError, match=r"layer 'h' has 1 NaN and 2 Inf .*first at "
                       r"sample 4, unit 1.*on_nonfinite='keep'"):
        write_dataset(tmp_path / "a", {"h": x})
    ds = write_dataset(tmp_path / "b", {"h": x}, on_nonfinite="keep", rows_per_part=5)
    assert ds.layer_info("h").nonfinite == {"nan": 1, "inf": 2}
    np.testing.assert_array_equal(ds.read_layer("h"), x)  # stored as is, never dropped


def test_existing_folders_are_protected(tmp_path):
    write_dataset(tmp_path / "ds", {"h": np.zeros((3, 1))})
    with pytest.raises(StoreError, match="already holds a dataset; pass overwrite=True"):
        write_dataset(tmp_path / "ds", {"h": np.ones((3, 1))})
    ds = write_dataset(tmp_path / "ds", {"h": np.ones((3, 1))}, overwrite=True)
    assert ds.read_layer("h").sum() == 3
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="is not empty and is not a distmi dataset"):
        write_dataset(tmp_path / "mine", {"h": np.zeros((3, 1))}, overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_open_missing_or_foreign_folder(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match=r"has no manifest\.json; it is not a distmi"):
        open_dataset(tmp_path / "empty")
