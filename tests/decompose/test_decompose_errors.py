"""Bad input gets a clear error naming the problem and the fix."""

from __future__ import annotations

import pytest
import torch

import distmi
from distmi.core.errors import (
    InvalidInputError,
    InvalidParameterError,
    LengthMismatchError,
    UnknownLayerError,
)


def _fit(digits, **kw):
    model, xtr, ytr, _, _ = digits
    params = {"layer": "act2", "local": "conv", "epochs": 1, **kw}
    data = params.pop("data", (xtr[:64], ytr[:64]))
    return distmi.decompose.fit(model, data, **params)


def test_unknown_layer_names_close_matches(digits):
    with pytest.raises(UnknownLayerError, match=r"no layer named 'act22'.*Did you mean 'act2'"):
        _fit(digits, layer="act22")


def test_wrong_local_mode_value(digits):
    with pytest.raises(InvalidParameterError, match=r"local must be one of \['conv', 'tokens'\]"):
        _fit(digits, local="pixels")


def test_local_mode_that_does_not_fit_the_layer(digits):
    with pytest.raises(InvalidParameterError,
                       match=r"local='conv' needs layer 'act3' to output a \(batch, channels, H, "
                             r"W\) feature map, but it outputs \(64, 32\)"):
        _fit(digits, layer="act3")
    with pytest.raises(InvalidParameterError, match=r"local='tokens' needs layer 'act2'.*"
                                                    r"local='conv'"):
        _fit(digits, local="tokens")


def test_labels_of_the_wrong_length(digits):
    _, xtr, ytr, _, _ = digits
    with pytest.raises(LengthMismatchError,
                       match=r"labels have 63 entries but the inputs hold 64 samples"):
        _fit(digits, data=(xtr[:64], ytr[:63]))


def test_labels_outside_the_model_classes(digits):
    _, xtr, _, _, _ = digits
    with pytest.raises(InvalidInputError, match=r"labels go up to 12 but the model scores 10"):
        _fit(digits, data=(xtr[:64], torch.full((64,), 12)))


def test_bad_parameters(digits):
    with pytest.raises(InvalidParameterError, match=r"bound must be 'jsd'.*got 'nwj'"):
        _fit(digits, bound="nwj")
    with pytest.raises(InvalidParameterError, match=r"c: Input should be greater than or equal"):
        _fit(digits, c=-1.0)
    with pytest.raises(InvalidParameterError, match=r"batch_size"):
        _fit(digits, batch_size=1)
    with pytest.raises(UnknownLayerError, match=r"no representation module named 'nope'"):
        _fit(digits, representation="nope")


def test_bad_data(digits):
    model = digits[0]
    with pytest.raises(InvalidInputError, match=r"one-shot iterator"):
        distmi.decompose.fit(model, iter([digits[1][:8]]), layer="act2", local="conv")
    with pytest.raises(InvalidInputError, match=r"cannot read samples from a str"):
        distmi.decompose.fit(model, "images.npy", layer="act2", local="conv")
    with pytest.raises(InvalidInputError, match=r"must be a torch.nn.Module"):
        distmi.decompose.fit(lambda x: x, digits[1][:8], layer="act2", local="conv")


def test_model_without_class_scores(digits):
    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(InvalidInputError, match=r"must return class scores of shape \(batch, "
                                                r"n_classes\)"):
        distmi.decompose.fit(Encoder(), digits[1][:8], layer="conv", local="conv",
                             representation="conv")


def test_explaining_inputs_of_another_size(digits_dec):
    with pytest.raises(InvalidInputError, match=r"fitted on \(16, 4, 4\)"):
        digits_dec.explain(torch.zeros(2, 1, 16, 16))
