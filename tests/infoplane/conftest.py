"""Fixtures of the information-plane tests: a tiny network trained for a few epochs with capture."""

from __future__ import annotations

import pytest
from plane_data import capture_planted, train_tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A training dataset of the tiny model, epochs 0-4."""
    path = tmp_path_factory.mktemp("plane") / "train"
    train_tiny(path)
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A training dataset of :class:`plane_data.PlantedNet`, epochs 0-2."""
    return capture_planted(tmp_path_factory.mktemp("planted") / "train")
