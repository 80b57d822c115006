"""Fixtures of the NIF tests: the bundled iris classifier, a planted network, one Ray session."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def iris_bundle():
    from distmi.examples.tabular import load_bundled

    return load_bundled("iris")


@pytest.fixture(scope="session")
def iris_flow(iris_bundle):
    """NIF of the bundled iris MLP on its training split (KSG, small test settings)."""
    import distmi

    x, y = iris_bundle.train
    return distmi.nif.information_flow(
        iris_bundle.model, x, y, n_bootstrap=8, n_permutations=999,
        feature_names=iris_bundle.feature_names, class_names=iris_bundle.class_names)



def gaussian_network(n: int, seed: int = 0):
    """A linear-Gaussian 'network' x (3) -> h (4) -> o (2) with closed-form link MI.

    x ~ N(0, Sx); h = W1^T x + e1; o = W2^T h + e2 (unit-variance noise). Every pair of
    nodes is jointly Gaussian, so I(a; b) = -1/2 log(1 - rho_ab^2) from the joint covariance.

    Returns:
        (activations {"input", "h", "o"}, covariance (9, 9) of [x, h, o]).
    """
    rng = np.random.default_rng(seed)
    sx = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.0]])
    w1 = np.array([[1.0, 0.0, 0.5, 0.0], [0.0, 1.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.8]])
    w2 = np.array([[1.0, 0.2], [0.5, 0.0], [0.0, 1.0], [0.3, 0.3]])
    x = rng.multivariate_normal(np.zeros(3), sx, size=n)
    h = x @ w1 + rng.normal(size=(n, 4))
    o = h @ w2 + rng.normal(size=(n, 2))
    sh = w1.T @ sx @ w1 + np.eye(4)
    so = w2.T @ sh @ w2 + np.eye(2)
    cov = np.zeros((9, 9))
    cov[:3, :3], cov[3:7, 3:7], cov[7:, 7:] = sx, sh, so
    cov[:3, 3:7] = sx @ w1
    cov[3:7, 7:] = sh @ w2
    cov[:3, 7:] = sx @ w1 @ w2
    cov = np.triu(cov) + np.triu(cov, 1).T
    return {"input": x, "h": h, "o": o}, cov


def gaussian_mi(cov: np.ndarray, a: int, b: int) -> float:
    rho = cov[a, b] / np.sqrt(cov[a, a] * cov[b, b])
    return float(-0.5 * np.log(1.0 - rho**2))
