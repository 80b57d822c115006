"""Pooling honours the attention mask (checked against hand computations), token rows, and
the stored dtypes float16 / bfloat16 read back as documented."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from distmi.core.errors import InvalidInputError, NonFiniteInputError  # noqa: E402
from distmi.engine.capture_run import run_capture  # noqa: E402
from distmi.store import capture  # noqa: E402
from distmi.store.capture_inputs import InputsRef  # noqa: E402
from distmi.store.capture_models import load_model, load_tokenizer, resolve_model  # noqa: E402
from distmi.store.capture_session import CaptureRequest  # noqa: E402


class Encoder(nn.Module):
    """(batch, tokens) ids -> (batch, tokens, 5) hidden states; padded positions are NOT
    zeroed, so a pooling that forgot the mask would see them."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.embed = nn.Embedding(30, 5)
        self.block = nn.Linear(5, 5)

    def forward(self, input_ids, attention_mask):
        return self.block(self.embed(input_ids) + 3.0)


def _data(n=9, t=6):
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, t + 1, size=n)
    lengths[0] = t
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1, 30, size=(n, t))
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}, lengths


def _hidden(model, data):
    with torch.no_grad():
        return model.block(model.embed(data["input_ids"]) + 3.0).numpy().astype(np.float64)


@pytest.mark.parametrize("pooling", ["mean", "max", "first", "cls", "last"])
def test_token_poolings_equal_a_hand_computation_over_real_tokens(tmp_path, pooling):
    model = Encoder()
    data, lengths = _data()
    h = _hidden(model, data)
    rows = []
    for i, n in enumerate(lengths):  # only the n real tokens of sample i
        real = h[i, :n]
        rows.append({"mean": real.sum(0) / n, "max": real.max(0), "first": real[0],
                     "cls": real[0], "last": real[n - 1]}[pooling])
    ds = capture(model, data, ["block"], tmp_path / pooling, pooling=pooling, batch_size=4)
    np.testing.assert_allclose(ds.read_layer("block"), np.stack(rows), rtol=0, atol=2e-6)
    assert ds.layer_info("block").pooling == ("first" if pooling == "cls" else pooling)


def test_token_rows_keep_every_real_token_with_its_input_and_position(tmp_path):
    model = Encoder()
    data, lengths = _data()
    h = _hidden(model, data)
    ids = np.array([f"s{i}" for i in range(len(lengths))])
    ds = capture(model, data, ["block"], tmp_path / "tok", pooling="tokens", batch_size=4,
                 targets={"length": lengths}, sample_ids=ids, rows_per_part=4)
    assert ds.n_samples == lengths.sum()
    t = ds.read_targets()
    expect_rows = np.repeat(np.arange(len(lengths)), lengths)
    np.testing.assert_array_equal(t["input_row"], expect_rows)
    np.testing.assert_array_equal(t["position"], np.concatenate([np.arange(n) for n in lengths]))
    np.testing.assert_array_equal(t["token_id"], data["input_ids"].numpy()[
        data["attention_mask"].numpy() == 1])
    np.testing.assert_array_equal(t["length"], lengths[expect_rows])  # per-input target, repeated
    np.testing.assert_array_equal(t["input_id"], ids[expect_rows])
    np.testing.assert_array_equal(t["sample_id"], np.arange(lengths.sum()))
    want = np.concatenate([h[i, :n] for i, n in enumerate(lengths)])
    np.testing.assert_allclose(ds.read_layer("block"), want, rtol=0, atol=2e-6)
    parts = ds.layer_info("block").parts  # parts of 4 inputs: rows follow their tokens
    assert [p.row_stop for p in parts] == list(np.cumsum(lengths)[[3, 7, 8]])


def test_text_pooling_equals_unpadded_forward_passes(tmp_path):
    """Batched, padded and masked capture == each text run alone, without padding."""
    source = resolve_model("bert-tiny-random")
    model, tok = load_model(source), load_tokenizer(source.tokenizer)
    from distmi.examples.texts import concept_texts

    texts = concept_texts(24, seed=5)[0]
    ref = {"mean": [], "max": [], "first": []}
    with torch.no_grad():
        for text in texts:
            enc = tok(text, return_tensors="pt")
            hidden = model(**enc, output_hidden_states=True).hidden_states[2][0].numpy()
            ref["mean"].append(hidden.mean(0))
            ref["max"].append(hidden.max(0))
            ref["first"].append(hidden[0])
    for pooling in ("mean", "max", "cls"):
        req = CaptureRequest(source, InputsRef("set", "concept_texts", {"n": 24, "seed": 5}),
                             ("encoder.layer.1",), pooling=pooling, batch_size=8,
                             rows_per_part=16)
        ds = run_capture(req, tmp_path / pooling).dataset
        key = "first" if pooling == "cls" else pooling
        np.testing.assert_allclose(ds.read_layer("encoder.layer.1"), np.stack(ref[key]),
                                   rtol=0, atol=2e-5)
    # pooling none on texts: one row per token, with per-token concept labels
    req = CaptureRequest(source, InputsRef("set", "concept_texts", {"n": 24, "seed": 5}),
                         ("encoder.layer.1",), pooling="none", batch_size=8, rows_per_part=16)
    ds = run_capture(req, tmp_path / "tokens").dataset
    t = ds.read_targets()
    values = ds.read_layer("encoder.layer.1")
    with torch.no_grad():
        for i in (0, 13, 23):
            enc = tok(texts[i], return_tensors="pt")
            hidden = model(**enc, output_hidden_states=True).hidden_states[2][0].numpy()
            rows = np.flatnonzero(t["input_row"].to_numpy() == i)
            np.testing.assert_allclose(values[rows], hidden, rtol=0, atol=2e-5)
            words = tok.convert_ids_to_tokens(t["token_id"].to_numpy()[rows])
            flagged = [w for w, c in zip(words, t["concept_word"].to_numpy()[rows], strict=True)
                       if c]
            assert words[0] == "[CLS]" and not t["concept_word"].to_numpy()[rows][0]
            assert flagged, texts[i]  # every text has a topic and an evaluative word
    topic_rows = t[t["topic_word"] != "none"]
    assert (topic_rows["topic_word"] == topic_rows["topic"]).all()  # a topic word = its topic
    assert ds.target_kinds["concept_word"] == "categorical"


def _values():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64))
    return model, torch.randn(300, 8) * 3


def test_float16_and_bfloat16_round_trips(tmp_path):
    model, x = _values()
    full = capture(model, x, ["0"], tmp_path / "f32").read_layer("0")
    half = capture(model, x, ["0"], tmp_path / "f16", dtype="float16")
    got = half.read_layer("0")
    assert got.dtype == np.float16  # float16 is read back as float16
    np.testing.assert_array_equal(got, full.astype(np.float16))
    brain = capture(model, x, ["0"], tmp_path / "bf16", dtype="bfloat16")
    got = brain.read_layer("0")
    assert got.dtype == np.float32  # bfloat16 is read back as float32, exactly
    want = torch.from_numpy(full).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(brain.read_layer("0", units=[5, 1], rows=[7, 3]),
                                  want[[7, 3]][:, [5, 1]])
    assert brain.layer_info("0").dtype == "bfloat16"
    size = brain.layer_info("0").parts[0].file.size
    assert size < 0.6 * capture(model, x, ["0"], tmp_path / "f32b").layer_info("0").parts[0].file.size
    assert brain.verify() > 0 and half.verify() > 0
    assert brain.read_layer("0", dtype=np.float64).dtype == np.float64


def test_sharded_bfloat16_equals_the_capture_call(tmp_path):
    from distmi.store.capture_models import ModelSource

    model, x = _values()
    single = capture(model, x, ["0"], tmp_path / "one", dtype="bfloat16", batch_size=50,
                     rows_per_part=100, model_id="m")
    req = CaptureRequest(ModelSource("factory", lambda: model, "m", "m"),
                         InputsRef("factory", lambda: x), ("0",), pooling="none",
                         batch_size=50, rows_per_part=100, dtype="bfloat16")
    ds = run_capture(req, tmp_path / "sharded").dataset
    assert ds.manifest_hash == single.manifest_hash


def test_float16_overflow_is_an_error_not_a_silent_inf(tmp_path):
    model = nn.Sequential(nn.Identity())
    x = torch.ones(10, 3)
    x[4, 2] = 1e6
    with pytest.raises(NonFiniteInputError, match=r"activations beyond the range of float16 .* "
                       r"\(first at sample 4, unit 2: 1e\+06; 1 values would be stored as Inf\); "
                       r"store it as float32 or bfloat16"):
        capture(model, x, ["0"], tmp_path / "a", dtype="float16")
    ds = capture(model, x, ["0"], tmp_path / "b", dtype="bfloat16")  # bfloat16 has the range
    assert ds.read_layer("0")[4, 2] == pytest.approx(1e6, rel=4e-3)


def test_pooling_tokens_needs_a_mask_and_token_outputs(tmp_path):
    model = Encoder()
    seq = nn.Sequential(nn.Identity())
    with pytest.raises(InvalidInputError, match=r"pooling 'tokens' needs the attention mask"):
        capture(seq, torch.randn(4, 3, 5), ["0"], tmp_path / "a", pooling="tokens")
    from distmi.core.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match=r"a dataset has one kind of rows"):
        capture(model, _data()[0], ["block", "embed"], tmp_path / "b",
                pooling={"block": "tokens", "embed": "mean"})


def test_bfloat16_rounding_equals_torch_on_edge_values():
    from distmi.store._format import from_storage, to_storage

    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[~np.isnan(x)]  # every finite float32 pattern class: subnormals, ties, huge, Inf
    x = np.concatenate([x, np.float32([0.0, -0.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 3.4e38,
                                       -np.inf, np.inf, 1e-45])])
    want = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(to_storage(x, "bfloat16"), want)
    np.testing.assert_array_equal(from_storage(want, "bfloat16"),
                                  torch.from_numpy(x).to(torch.bfloat16).float().numpy())
    assert np.isnan(from_storage(to_storage(np.float32([np.nan]), "bfloat16"), "bfloat16")).all()
