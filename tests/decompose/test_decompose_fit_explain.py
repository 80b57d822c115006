"""fit/explain: frozen backbone, shapes for feature maps and tokens, loaders, aggregates,
determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from decompose_data import keyword_texts

import distmi


def test_backbone_weights_flags_and_mode_are_unchanged(digits):
    model, xtr, ytr, _, _ = digits
    model.train()  # fit must put it in eval mode for the passes and restore this afterwards
    model.fc1.weight.requires_grad_(False)  # a frozen flag set by the user is kept as well
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    try:
        dec = distmi.decompose.fit(model, (xtr[:256], ytr[:256]), layer="act2", local="conv",
                                   epochs=2, batch_size=32)
        dec.explain(xtr[:16])
        after = model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert flags == {n: p.requires_grad for n, p in model.named_parameters()}
        assert model.training
        for n, p in model.named_parameters():  # no gradient reached the backbone's weights
            assert (p.grad is None) == (grads[n] is None)
            assert p.grad is None or torch.equal(p.grad, grads[n])
        # the inserted modules did train
        assert dec.history_[-1]["i_zx"] > 0.05
    finally:
        model.fc1.weight.requires_grad_(True)
        model.eval()


def test_conv_maps_have_the_feature_map_shape(digits_dec, digits):
    _, _, _, xte, yte = digits
    e = digits_dec.explain((xte[:40], yte[:40]))
    for name in ("total", "decision", "redundant", "mask"):
        assert e.map(name).shape == (40, 4, 4)
        assert np.isfinite(e.map(name)).all()
    np.testing.assert_allclose(e.redundant, e.total - e.decision)
    assert ((e.mask >= 0) & (e.mask <= 1)).all()
    assert e.predictions.shape == e.masked_predictions.shape == (40,)
    assert e.labels.tolist() == yte[:40].tolist()
    assert e.upsample((8, 8)).shape == (40, 8, 8)
    table = e.per_position()
    assert len(table) == 16 and {"row", "col", "total", "decision"} <= set(table.columns)
    means = e.class_means(by="label")
    assert set(means) == set(yte[:40].tolist())
    assert means[int(yte[0])]["decision"].shape == (4, 4)
    assert sum(m["count"] for m in means.values()) == 40


def test_maps_of_a_sample_do_not_depend_on_its_batch(digits_dec, digits):
    _, _, _, xte, _ = digits
    batch = digits_dec.explain(xte[:20])
    alone = digits_dec.explain(xte[7:8])
    np.testing.assert_allclose(alone.total[0], batch.total[7], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(alone.decision[0], batch.decision[7], rtol=1e-5, atol=1e-5)


def test_a_dataloader_gives_the_same_kind_of_fit(digits):
    model, xtr, ytr, xte, _ = digits
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xtr[:256], ytr[:256]),
                                         batch_size=64)
    dec = distmi.decompose.fit(model, loader, layer="act1", local="conv", epochs=1)
    assert dec.survey_.n_samples == 256 and dec.survey_.layer_shape == (8, 8, 8)
    e = dec.explain(torch.utils.data.DataLoader(xte[:10], batch_size=4))
    assert e.total.shape == (10, 8, 8) and e.labels is None


def test_token_maps_have_one_value_per_token_and_nan_padding(token_model):
    inputs, labels, _ = keyword_texts(200, seed=2)
    dec = distmi.decompose.fit(token_model, (inputs, labels), layer="layer", local="tokens",
                               epochs=2, batch_size=32)
    assert dec.representation_ == "input:head"
    e = dec.explain(keyword_texts(30, seed=3)[0])
    mask = keyword_texts(30, seed=3)[0]["attention_mask"].numpy().astype(bool)
    assert e.total.shape == (30, 10)
    np.testing.assert_array_equal(e.valid, mask)
    assert np.isfinite(e.total[mask]).all() and np.isnan(e.total[~mask]).all()
    assert np.isnan(e.decision[~mask]).all()
    table = e.per_position()
    assert table["n_samples"].tolist() == mask.sum(0).tolist()


def test_token_decision_map_finds_the_planted_keyword(token_model):
    """The class is the presence of one keyword token; at the (context-free) embedding layer the
    decision-related map must put >= 80% of its mass on the keyword, while the total map also
    gives other tokens information about the sentence representation."""
    inputs, labels, _ = keyword_texts(800, seed=0)
    dec = distmi.decompose.fit(token_model, (inputs, labels), layer="embed", local="tokens",
                               representation="pool", epochs=10, random_state=0)
    test_inputs, test_labels, where = keyword_texts(300, seed=1)
    e = dec.explain((test_inputs, test_labels))
    has = np.flatnonzero(where >= 0)
    decision = np.clip(np.nan_to_num(e.decision), 0, None)
    mass = decision[has, where[has]] / decision[has].sum(1)
    assert mass.mean() >= 0.8
    others = np.ones(e.total.shape, bool)
    others[has, where[has]] = False
    assert np.nanmean(e.total[has][others[has]]) > 0.1


def test_same_seed_same_maps_and_another_seed_other_maps(digits):
    model, xtr, ytr, xte, _ = digits

    def run(seed):
        dec = distmi.decompose.fit(model, (xtr[:256], ytr[:256]), layer="act2", local="conv",
                                   epochs=2, random_state=seed)
        return dec.explain(xte[:20])

    a, b, c = run(3), run(3), run(4)
    np.testing.assert_array_equal(a.total, b.total)
    np.testing.assert_array_equal(a.decision, b.decision)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.allclose(a.total, c.total)


def test_dv_bound_and_zero_baseline_run(digits):
    model, xtr, ytr, xte, _ = digits
    dec = distmi.decompose.fit(model, (xtr[:256], ytr[:256]), layer="act2", local="conv",
                               bound="dv", fill="zero", epochs=2)
    assert torch.count_nonzero(dec.mask_.baseline) == 0
    e = dec.explain(xte[:5])
    assert np.isfinite(e.total).all() and dec.history_[-1]["i_zx"] > 0.0


def test_import_distmi_stays_light_and_resolves_decompose():
    import subprocess
    import sys

    code = ("import sys, distmi; assert 'torch' not in sys.modules; "
            "f = distmi.decompose.fit; assert distmi.decompose.load")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("device", ["cpu"])
def test_explicit_device(digits_dec, digits, device):
    _, _, _, xte, _ = digits
    assert digits_dec.explain(xte[:3], device=device).total.shape == (3, 4, 4)


@pytest.mark.gpu
def test_fit_and_explain_on_cuda_leave_the_model_on_its_device(digits):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model, xtr, ytr, xte, _ = digits
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dec = distmi.decompose.fit(model, (xtr[:512], ytr[:512]), layer="act2", local="conv",
                               epochs=3, device="cuda")
    e = dec.explain(xte[:50])
    assert e.total.shape == (50, 4, 4) and np.isfinite(e.total).all()
    assert next(model.parameters()).device.type == "cpu"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    cpu = distmi.decompose.fit(model, (xtr[:512], ytr[:512]), layer="act2", local="conv",
                               epochs=3, device="cpu").explain(xte[:50])
    # the same seed on another device: same kind of maps (reductions differ in order)
    assert np.corrcoef(cpu.total.ravel(), e.total.ravel())[0, 1] > 0.8
