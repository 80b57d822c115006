"""Fixtures of the decomposition tests: a trained digits CNN and a tiny token classifier with a
planted keyword (helpers in decompose_data.py)."""

from __future__ import annotations

import pytest
import torch
from decompose_data import TinyTokenClassifier, keyword_texts, train_token_model


@pytest.fixture(scope="session")
def token_model():
    torch.manual_seed(0)
    inputs, labels, _ = keyword_texts(800, seed=0)
    model = train_token_model(TinyTokenClassifier(), inputs, labels, epochs=15, seed=0)
    return model


@pytest.fixture(scope="session")
def digits():
    """(model, x_train, y_train, x_test, y_test) with the bundled digits CNN (short training)."""
    from distmi.examples.train_models import digits_data, train_digits_cnn

    model, _ = train_digits_cnn(0, epochs=8)
    d = digits_data(0)
    x, y = torch.from_numpy(d.x), torch.from_numpy(d.y)
    tr = torch.from_numpy(~d.is_test)
    return model, x[tr], y[tr], x[~tr], y[~tr]


@pytest.fixture(scope="session")
def digits_dec(digits):
    """A quick decomposition of the digits CNN at act2 (few epochs: shapes and plumbing)."""
    import distmi

    model, xtr, ytr, _, _ = digits
    return distmi.decompose.fit(model, (xtr[:512], ytr[:512]), layer="act2", local="conv",
                                epochs=2, random_state=0)
