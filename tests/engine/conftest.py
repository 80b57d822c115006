"""Fixtures of the engine tests: a small synthetic dataset and one local Ray session."""

from __future__ import annotations

import pytest
from engine_data import make_activations, make_planted


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Path of a stored dataset with layers a (6 units) and b (4 units), 160 samples."""
    from distmi.store import write_dataset

    path = tmp_path_factory.mktemp("engine") / "tiny"
    layers, targets = make_activations()
    write_dataset(path, layers, targets, {"label": "categorical", "score": "continuous"},
                  model_id="tiny", block_units=4)
    return path


@pytest.fixture(scope="session")
def planted_dataset(tmp_path_factory):
    """Path of the planted two-stage dataset (layers h: 40 units, g: 8 units; n=600)."""
    from distmi.store import write_dataset

    path = tmp_path_factory.mktemp("planted") / "planted"
    layers, targets = make_planted()
    write_dataset(path, layers, targets, {"label": "categorical", "score": "continuous"},
                  model_id="planted", block_units=16)
    return path

