"""The pure numerics under GMM-MI: small linear algebra, EM against scikit-learn, integrals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

from distmi.kernels.em import GMMParams, em_fit, m_step
from distmi.kernels.gaussian_features import (
    component_coefficients,
    mixture_log_density,
    quadratic_features,
)
from distmi.kernels.gmm_mi_integral import expected_log_ratio
from distmi.kernels.small_linalg import cholesky_unrolled, tril_inverse_unrolled


def _spd(rng, batch, d):
    a = rng.normal(size=(*batch, d, d + 2))
    return torch.as_tensor(a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(d))


@pytest.mark.parametrize("d", [1, 2, 3, 5, 8])
def test_unrolled_cholesky_and_inverse_match_torch(d):
    cov = _spd(np.random.default_rng(d), (7, 3), d)
    chol, ok = cholesky_unrolled(cov)
    assert bool(ok.all())
    torch.testing.assert_close(chol, torch.linalg.cholesky(cov), rtol=1e-10, atol=1e-12)
    inv = tril_inverse_unrolled(chol)
    eye = torch.eye(d, dtype=cov.dtype).expand_as(cov)
    torch.testing.assert_close(inv @ chol, eye, rtol=1e-9, atol=1e-10)


def test_non_positive_definite_is_flagged_and_regularised():
    cov = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    _, ok = cholesky_unrolled(cov)
    assert ok.tolist() == [False, True]
    log_w = torch.zeros(1, 2, dtype=torch.float64)
    means = torch.zeros(1, 2, 2, dtype=torch.float64)
    coef, bias, used = component_coefficients(log_w, means, cov[None], reg=0.0)
    assert torch.isfinite(coef).all() and torch.isfinite(bias).all()
    # only the singular component received a ridge
    assert used[0, 0, 0, 0] > 1.0 and used[0, 1, 0, 0] == 1.0


def test_log_density_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(1)
    cov = _spd(rng, (1, 2), 3)
    means = torch.as_tensor(rng.normal(size=(1, 2, 3)))
    log_w = torch.log(torch.tensor([[0.3, 0.7]], dtype=torch.float64))
    pts = torch.as_tensor(rng.normal(size=(1, 50, 3)))
    ours = mixture_log_density(pts, log_w, means, cov)[0].numpy()
    ref = np.log(
        0.3 * stats.multivariate_normal(means[0, 0].numpy(), cov[0, 0].numpy()).pdf(pts[0].numpy())
        + 0.7 * stats.multivariate_normal(means[0, 1].numpy(), cov[0, 1].numpy()).pdf(pts[0].numpy())
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_em_matches_sklearn_from_same_start():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal([-2, 0], [1.0, 0.5], (400, 2)), rng.normal([2, 1], 0.7, (600, 2))])
    w0 = np.array([0.5, 0.5])
    m0 = np.array([[-1.0, 0.0], [1.0, 0.0]])
    c0 = np.stack([np.eye(2), np.eye(2)])
    ref = GaussianMixture(2, covariance_type="full", weights_init=w0, means_init=m0,
                          precisions_init=np.linalg.inv(c0), reg_covar=1e-6, tol=1e-13,
                          max_iter=2000).fit(x)
    data = torch.as_tensor(x)[None]
    init = GMMParams(torch.log(torch.as_tensor(w0))[None], torch.as_tensor(m0)[None],
                     torch.as_tensor(c0)[None])
    res = em_fit(data, torch.zeros(1, dtype=torch.long), torch.ones(1, len(x), dtype=torch.float64),
                 torch.zeros(1, dtype=torch.long), init, reg=1e-6, tol=1e-13, max_iter=2000)
    assert bool(res.converged[0])
    np.testing.assert_allclose(torch.exp(res.params.log_weights[0]).numpy(), ref.weights_, atol=1e-6)
    np.testing.assert_allclose(res.params.means[0].numpy(), ref.means_, atol=1e-6)
    np.testing.assert_allclose(res.params.covariances[0].numpy(), ref.covariances_, atol=1e-6)
    assert res.log_likelihood[0].item() == pytest.approx(ref.score(x), abs=1e-8)


def test_weighted_em_equals_em_on_repeated_rows():
    """Integer weights are the same as duplicating rows (the bootstrap identity)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 2))
    counts = rng.multinomial(300, np.full(300, 1 / 300))
    dup = np.repeat(x, counts, axis=0)
    resp = torch.as_tensor(rng.random((1, 2, 300)))
    resp = resp / resp.sum(1, keepdim=True)
    feats = quadratic_features(torch.as_tensor(x)[None])
    p_w, _, _ = m_step(feats, resp * torch.as_tensor(counts, dtype=torch.float64)[None, None], 2, 0.0)
    resp_dup = torch.repeat_interleave(resp, torch.as_tensor(counts), dim=2)
    p_d, _, _ = m_step(quadratic_features(torch.as_tensor(dup)[None]), resp_dup, 2, 0.0)
    torch.testing.assert_close(p_w.means, p_d.means)
    torch.testing.assert_close(p_w.covariances, p_d.covariances)


def test_batched_elements_are_independent():
    rng = np.random.default_rng(4)
    data = torch.as_tensor(rng.normal(size=(3, 500, 2)))
    weights = torch.as_tensor(rng.multinomial(500, np.full(500, 1 / 500), size=4).astype(float))
    idx_d = torch.tensor([0, 1, 2, 1])
    idx_w = torch.tensor([0, 1, 2, 3])
    resp = torch.as_tensor(rng.random((4, 3, 500)))
    resp = resp / resp.sum(1, keepdim=True)
    init, _, _ = m_step(quadratic_features(data[idx_d]), resp * weights[idx_w][:, None], 2, 1e-6)
    together = em_fit(data, idx_d, weights, idx_w, init, tol=1e-8)
    for g in range(4):
        alone = em_fit(data, idx_d[g : g + 1], weights, idx_w[g : g + 1], init.index(torch.tensor([g])),
                       tol=1e-8)
        torch.testing.assert_close(alone.params.means[0], together.params.means[g], rtol=1e-9, atol=1e-12)
        assert alone.n_iter[0] == together.n_iter[g]


def test_quadrature_exact_for_a_gaussian_and_close_to_mc_for_mixtures():
    rho = 0.7
    cov = torch.tensor([[[[1.0, rho], [rho, 1.0]]]], dtype=torch.float64)
    single = GMMParams(torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, 2, dtype=torch.float64), cov)
    terms = [(1.0, [0, 1]), (-1.0, [0]), (-1.0, [1])]
    q = expected_log_ratio(single, terms, "quadrature")
    assert q.item() == pytest.approx(-0.5 * math.log(1 - rho**2), abs=1e-12)
    rng = np.random.default_rng(5)
    mix = GMMParams(
        torch.log(torch.tensor([[0.2, 0.5, 0.3]], dtype=torch.float64)),
        torch.as_tensor(rng.normal(scale=2.0, size=(1, 3, 2))),
        _spd(rng, (1, 3), 2) * 0.3,
    )
    q = expected_log_ratio(mix, terms, "quadrature").item()
    gen = np.random.default_rng(6)
    normals = torch.as_tensor(gen.standard_normal((400_000, 2)))
    uniforms = torch.as_tensor(gen.random(400_000))
    mc = expected_log_ratio(mix, terms, "mc", mc_normals=normals, mc_uniforms=uniforms).item()
    assert abs(q - mc) < 0.006  # ~4 MC standard errors at 4e5 samples
