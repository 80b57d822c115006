"""save/load: identical maps, the model check, incomplete and tampered folders."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

import distmi
from distmi.core.errors import CorruptDataError, InvalidInputError, StoreError


def test_round_trip_gives_the_same_maps(digits_dec, digits, tmp_path):
    model, _, _, xte, _ = digits
    before = digits_dec.explain(xte[:12])
    digits_dec.save(tmp_path / "dec")
    manifest = json.loads((tmp_path / "dec" / "decomposition.json").read_text())
    assert manifest["config"]["layer"] == "act2" and manifest["representation"] == "input:out"
    for loaded in (distmi.decompose.load(tmp_path / "dec"),
                   distmi.decompose.load(tmp_path / "dec", model)):
        after = loaded.explain(xte[:12])
        np.testing.assert_array_equal(before.total, after.total)
        np.testing.assert_array_equal(before.decision, after.decision)
        assert loaded.history_ == digits_dec.history_


def test_a_different_model_is_refused(digits_dec, digits, tmp_path):
    digits_dec.save(tmp_path / "dec", include_model=False)
    other = copy.deepcopy(digits[0])
    with torch.no_grad():
        other.out.bias.add_(0.1)
    with pytest.raises(InvalidInputError, match=r"not the one this decomposition was fitted on"):
        distmi.decompose.load(tmp_path / "dec", other)
    with pytest.raises(InvalidInputError, match=r"saved without the model"):
        distmi.decompose.load(tmp_path / "dec")


def test_incomplete_and_tampered_folders(digits_dec, tmp_path):
    with pytest.raises(StoreError, match=r"holds no decomposition.json"):
        distmi.decompose.load(tmp_path)
    folder = digits_dec.save(tmp_path / "dec")
    data = bytearray((folder / "modules.pt").read_bytes())
    data[-20] ^= 0xFF
    (folder / "modules.pt").write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match=r"does not match the SHA-256"):
        distmi.decompose.load(folder)
    digits_dec.save(folder)  # saving again repairs it
    (folder / "model.pt").unlink()
    with pytest.raises(CorruptDataError, match=r"model.pt is missing"):
        distmi.decompose.load(folder)
