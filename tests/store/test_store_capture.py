"""Capture from torch models: values, pooling, batch sources, bad input, resume."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from distmi.core.errors import (  # noqa: E402
    InvalidInputError,
    InvalidParameterError,
    NonFiniteInputError,
    StoreError,
    UnknownLayerError,
)
from distmi.store import capture, list_layers, open_dataset  # noqa: E402


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 40), nn.Tanh(), nn.Linear(40, 5))


class TinyEncoder(nn.Module):
    """(batch, tokens) ids -> (batch, tokens, 8) hidden states, like a transformer layer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.embed = nn.Embedding(50, 8)
        self.block = nn.Linear(8, 8)

    def forward(self, input_ids, attention_mask):
        h = self.block(self.embed(input_ids))
        return (h * attention_mask[..., None],)  # tuple output like Hugging Face layers


def _tokens(n=12, t=7, seed=0):
    rng = np.random.default_rng(seed)
    ids = torch.from_numpy(rng.integers(1, 50, size=(n, t)))
    lengths = rng.integers(1, t + 1, size=n)
    mask = torch.from_numpy((np.arange(t)[None, :] < lengths[:, None]).astype(np.int64))
    return {"input_ids": ids * mask, "attention_mask": mask}, lengths


def test_capture_equals_a_direct_forward(tmp_path):
    model, x = _mlp(), torch.randn(300, 6)
    ds = capture(model, x, ["1", "2"], tmp_path / "ds", batch_size=64,
                 targets={"y": np.arange(300) % 3})
    with torch.no_grad():
        hidden = model[1](model[0](x)).numpy()
        out = model(x).numpy()
    np.testing.assert_allclose(ds.read_layer("1"), hidden, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ds.read_layer("2"), out, rtol=0, atol=1e-6)
    assert ds.manifest["model"]["id"] == "Sequential"
    assert ds.manifest["model"]["n_parameters"] == 6 * 40 + 40 + 40 * 5 + 5
    assert ds.target_kinds == {"y": "categorical"}
    assert model.training  # training mode is restored


def test_token_poolings_respect_the_attention_mask(tmp_path):
    model = TinyEncoder()
    data, lengths = _tokens()
    with torch.no_grad():
        h = model.block(model.embed(data["input_ids"])).numpy()  # (n, t, 8)
    ds = capture(model, data, ["block"], tmp_path / "mean", pooling="mean", batch_size=5)
    mean = np.stack([h[i, : lengths[i]].mean(0) for i in range(len(h))])
    np.testing.assert_allclose(ds.read_layer("block"), mean, atol=1e-6)
    ds = capture(model, data, ["block"], tmp_path / "first", pooling="first", batch_size=5)
    np.testing.assert_allclose(ds.read_layer("block"), h[:, 0], atol=1e-6)
    ds = capture(model, data, ["block"], tmp_path / "last", pooling="last", batch_size=5)
    last = np.stack([h[i, lengths[i] - 1] for i in range(len(h))])
    np.testing.assert_allclose(ds.read_layer("block"), last, atol=1e-6)


def test_per_token_capture_zeroes_padding_and_stores_the_mask(tmp_path):
    model = TinyEncoder()
    data, lengths = _tokens()
    ds = capture(model, data, ["block"], tmp_path / "tok", pooling="none", batch_size=5)
    assert ds.layer_shape("block") == (12, 7 * 8)
    assert ds.layer_info("block").unit_shape == (7, 8)
    mask = ds.read_mask()
    np.testing.assert_array_equal(mask.sum(1), lengths)
    values = ds.read_layer("block").reshape(12, 7, 8)
    assert (values[~mask] == 0).all()
    pos, hid = ds.unit_coords("block", [8 * 3 + 2])
    assert (pos[0], hid[0]) == (3, 2)
    # the root module's tuple output is recorded through its first tensor
    ds2 = capture(model, data, ["block", "embed"], tmp_path / "tok2", pooling={"block": "mean"})
    assert ds2.layer_info("embed").pooling == "none" and ds2.layer_info("block").pooling == "mean"


def test_spatial_mean_and_flattened_conv_maps(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU())
    x = torch.randn(20, 1, 5, 5)
    with torch.no_grad():
        maps = model(x).numpy()
    ds = capture(model, x, ["1"], tmp_path / "gap", pooling="spatial_mean")
    np.testing.assert_allclose(ds.read_layer("1"), maps.mean(axis=(2, 3)), atol=1e-6)
    ds = capture(model, x, ["1"], tmp_path / "flat")
    np.testing.assert_allclose(ds.read_layer("1"), maps.reshape(20, -1), atol=1e-6)
    with pytest.raises(InvalidParameterError, match="use pooling='spatial_mean' for conv"):
        capture(model, x, ["1"], tmp_path / "bad", pooling="mean")


def test_dataloader_batches_carry_targets(tmp_path):
    model, x = _mlp(), torch.randn(90, 6)
    y = torch.arange(90) % 4
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y, x[:, 0]), batch_size=20)
    ds = capture(model, dl, ["1"], tmp_path / "dl", target_names=["label", "x0"])
    t = ds.read_targets()
    np.testing.assert_array_equal(t["label"], y.numpy())
    assert ds.target_kinds == {"label": "categorical", "x0": "continuous"}
    shuffled = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), shuffle=True)
    with pytest.raises(InvalidInputError, match="the DataLoader shuffles"):
        capture(model, shuffled, ["1"], tmp_path / "sh")


@pytest.mark.parametrize(
    ("layers", "error", "match"),
    [
        (["1", "fc"], UnknownLayerError, r"layer 'fc' is not in model Sequential\. Available"),
        (["21"], UnknownLayerError, "Did you mean '2'"),
        ([], InvalidParameterError, "layers is empty"),
        (["1", "1"], InvalidParameterError, r"layers \['1'\] are listed more than once"),
    ],
)
def test_bad_layer_names(tmp_path, layers, error, match):
    with pytest.raises(error, match=match):
        capture(_mlp(), torch.randn(4, 6), layers, tmp_path / "x")


def test_shapes_changing_across_batches_are_refused(tmp_path):
    model = TinyEncoder()
    batches = [_tokens(4, 7)[0], _tokens(4, 9, seed=1)[0]]  # dynamic padding per batch
    with pytest.raises(InvalidInputError, match=r"per-sample shape \(9, 8\) at sample 4, but "
                       r"earlier batches had \(7, 8\).*padding='max_length'"):
        capture(model, batches, ["block"], tmp_path / "x", pooling="none")
    ds = capture(model, batches, ["block"], tmp_path / "ok", pooling="mean")  # pooled: fine
    assert ds.layer_shape("block") == (8, 8)


def test_nonfinite_activations_are_reported_with_counts(tmp_path):
    model = nn.Sequential(nn.Identity(), nn.Linear(2, 2))
    x = torch.ones(10, 2)
    x[3, 1] = float("nan")
    with pytest.raises(NonFiniteInputError, match=r"layer '0' has 1 NaN and 0 Inf activations "
                       r"in the batch starting at sample 0 \(first at sample 3, unit 1\)"):
        capture(model, x, ["0", "1"], tmp_path / "a")
    assert not (tmp_path / "a" / "manifest.json").exists()
    ds = capture(model, x, ["0", "1"], tmp_path / "b", on_nonfinite="keep", batch_size=4)
    assert ds.layer_info("0").nonfinite == {"nan": 1, "inf": 0}
    assert ds.layer_info("1").nonfinite == {"nan": 2, "inf": 0}


def test_layers_that_do_not_run_once_are_refused(tmp_path):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.unused = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(self.lin(x))

    with pytest.raises(InvalidInputError, match="layer 'lin' ran 2 times in one forward pass"):
        capture(Twice(), torch.randn(4, 3), ["lin"], tmp_path / "a")
    with pytest.raises(InvalidInputError, match="layer 'unused' did not run"):
        capture(Twice(), torch.randn(4, 3), ["unused"], tmp_path / "b")


class Crashing(nn.Module):
    """An MLP whose forward raises on a chosen call, to simulate an interrupted capture."""

    def __init__(self, fail_at=None):
        super().__init__()
        torch.manual_seed(1)
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        self.fail_at, self.calls = fail_at, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated interruption")
        return self.body(x)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_an_interrupted_capture_resumes_to_the_same_dataset(tmp_path):
    x = torch.randn(1000, 6)
    kw = {"batch_size": 50, "rows_per_part": 200, "targets": {"y": np.arange(1000) % 2}}
    layers = ["body.0", "body.2"]
    reference = capture(Crashing(), x, layers, tmp_path / "ref", **kw)

    crashing = Crashing(fail_at=13)  # dies in batch 13: parts 0-2 (rows 0..600) are committed
    with pytest.raises(KeyboardInterrupt):
        capture(crashing, x, layers, tmp_path / "run", **kw)
    assert not (tmp_path / "run" / "manifest.json").exists()
    with pytest.raises(StoreError, match="unfinished capture: rerun the same capture to resume"):
        open_dataset(tmp_path / "run")
    assert not list((tmp_path / "run").rglob(".*.inprogress"))

    resumed_model = Crashing()
    ds = capture(resumed_model, x, layers, tmp_path / "run", **kw)
    assert resumed_model.calls == (1000 - 600) // 50  # only the missing batches ran
    assert ds.manifest_hash == reference.manifest_hash
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")


def test_rerun_is_a_no_op_and_other_settings_are_refused(tmp_path):
    x = torch.randn(100, 6)
    first = capture(Crashing(), x, ["body.0"], tmp_path / "ds", batch_size=25)
    model = Crashing()
    again = capture(model, x, ["body.0"], tmp_path / "ds", batch_size=25)
    assert model.calls == 0 and again.manifest_hash == first.manifest_hash
    with pytest.raises(StoreError, match="captured with other settings, weights or data"):
        capture(Crashing(), x + 1, ["body.0"], tmp_path / "ds", batch_size=25)
    crashing = Crashing(fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        capture(crashing, x, ["body.0"], tmp_path / "half", batch_size=25, rows_per_part=25)
    with pytest.raises(StoreError, match="unfinished capture with other settings"):
        capture(Crashing(), x, ["body.2"], tmp_path / "half", batch_size=25, rows_per_part=25)
    ds = capture(Crashing(), x, ["body.2"], tmp_path / "half", batch_size=25, overwrite=True)
    assert ds.layers == ["body.2"]


def test_iterable_batches_resume_by_skipping_whole_batches(tmp_path):
    x = torch.randn(120, 6)
    batches = [x[i : i + 30] for i in range(0, 120, 30)]
    with pytest.raises(KeyboardInterrupt):
        capture(Crashing(fail_at=4), batches, ["body.2"], tmp_path / "it", rows_per_part=30)
    model = Crashing()
    ds = capture(model, batches, ["body.2"], tmp_path / "it", rows_per_part=30)
    assert model.calls == 1
    with torch.no_grad():
        np.testing.assert_allclose(ds.read_layer("body.2"), Crashing().body(x).numpy(), atol=1e-6)


def test_list_layers_with_output_shapes():
    rows = list_layers(_mlp(), torch.randn(2, 6))
    assert [(r.name, r.type, r.n_parameters, r.output_shape) for r in rows] == [
        ("0", "Linear", 280, (40,)), ("1", "Tanh", 0, (40,)), ("2", "Linear", 205, (5,))]


@pytest.mark.gpu
def test_capture_on_cuda_matches_cpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    model = TinyEncoder()
    data, _ = _tokens(40, 9)
    cpu = capture(model, data, ["block"], tmp_path / "cpu", pooling="mean", batch_size=8)
    gpu = capture(model.cuda(), data, ["block"], tmp_path / "gpu", pooling="mean", batch_size=8)
    # float32 matmuls on GPU may use TF32 / other reduction orders: agree to ~1e-3 relative
    np.testing.assert_allclose(gpu.read_layer("block"), cpu.read_layer("block"), rtol=1e-3,
                               atol=1e-3)


def test_in_place_ops_after_a_layer_do_not_change_its_record(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 2))
    x = torch.randn(50, 4)
    ds = capture(model, x, ["0"], tmp_path / "ds")
    with torch.no_grad():
        expected = model[0](x).numpy()
    assert (expected < 0).any()
    np.testing.assert_allclose(ds.read_layer("0"), expected, atol=1e-6)
