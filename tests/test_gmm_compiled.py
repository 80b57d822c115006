"""The compiled (numba) GMM kernels against the torch path, and the split starts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distmi.kernels.em import GMMParams, em_fit, score
from distmi.kernels.gaussian_features import (
    component_coefficients,
    component_log_prob,
    logsumexp_components,
    mixture_log_density,
    quadratic_features,
)
from distmi.kernels.gmm_init import n_split_candidates, split_candidates
from distmi.kernels.gmm_mi_integral import expected_log_ratio, integration_points, marginal
from distmi.kernels.numba_math import FAST_FLAGS, HAVE_NUMBA

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="numba missing")


def _spd(rng, batch, d, scale=1.0):
    a = rng.normal(size=(*batch, d, d + 2))
    return torch.as_tensor(scale * (a @ np.swapaxes(a, -1, -2)) + 0.1 * np.eye(d))


def _problem(d, rng, p=3, n=600, g=12, k=3):
    data = torch.as_tensor(rng.standard_t(4, size=(p, n, d)))
    weights = torch.as_tensor(np.vstack([
        rng.multinomial(n, np.full(n, 1 / n), size=3).astype(float),  # bootstrap counts
        (rng.random((2, n)) < 0.5).astype(float),  # fold masks
    ]))
    data_index = torch.as_tensor(rng.integers(0, p, g))
    weight_index = torch.as_tensor(rng.integers(0, weights.shape[0], g))
    init = GMMParams(
        torch.log(torch.as_tensor(rng.dirichlet(np.ones(k), g))),
        torch.as_tensor(rng.normal(size=(g, k, d))),
        _spd(rng, (g, k), d),
    )
    return data, data_index, weights, weight_index, init


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("d", [1, 2])
def test_compiled_em_equals_torch_em(d, k):
    """Same iterations, same parameters to rounding, in fixed-iteration and tolerance modes.

    The backends differ only in summation order (~1e-16 relative per step); EM contracts, so
    after tens of iterations the difference stays many orders below the EM tolerance."""
    data, di, w, wi, init = _problem(d, np.random.default_rng(d), k=k)
    for tol, max_iter in [(0.0, 30), (1e-6, 10_000)]:
        a = em_fit(data, di, w, wi, init, tol=tol, max_iter=max_iter, backend="torch")
        b = em_fit(data, di, w, wi, init, tol=tol, max_iter=max_iter, backend="compiled")
        assert torch.equal(a.n_iter, b.n_iter) and torch.equal(a.converged, b.converged)
        torch.testing.assert_close(b.log_likelihood, a.log_likelihood, rtol=0, atol=1e-10)
        torch.testing.assert_close(b.params.means, a.params.means, rtol=0, atol=1e-8)
        torch.testing.assert_close(b.params.covariances, a.params.covariances, rtol=0, atol=1e-8)
        torch.testing.assert_close(b.params.log_weights, a.params.log_weights, rtol=0, atol=1e-8)
    sa = score(data, di, w, wi, a.params, backend="torch")
    sb = score(data, di, w, wi, a.params, backend="compiled")
    torch.testing.assert_close(sb, sa, rtol=0, atol=1e-12)


def test_compiled_em_handles_collapse_and_threads_do_not_change_results():
    """Heavily duplicated rows (singular covariances) escalate the ridge like the torch path,
    and one thread or two give identical numbers."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(12, 2))
    data = torch.as_tensor(np.repeat(base, 40, axis=0)[None])
    w = torch.ones((1, 480), dtype=torch.float64)
    init = GMMParams(
        torch.log(torch.full((2, 6), 1 / 6, dtype=torch.float64)),
        torch.as_tensor(base[None, :6].repeat(2, 0)),
        torch.eye(2, dtype=torch.float64).expand(2, 6, 2, 2).clone() * 1e-3,
    )
    idx = torch.zeros(2, dtype=torch.long)
    a = em_fit(data, idx, w, idx, init, tol=1e-8, backend="torch")
    b = em_fit(data, idx, w, idx, init, tol=1e-8, backend="compiled")
    assert bool(torch.isfinite(b.log_likelihood).all())
    torch.testing.assert_close(b.log_likelihood, a.log_likelihood, rtol=0, atol=1e-9)
    threads = torch.get_num_threads()
    try:
        d, di, ww, wi, ini = _problem(2, np.random.default_rng(9), g=40)
        torch.set_num_threads(1)
        one = em_fit(d, di, ww, wi, ini, backend="compiled")
        torch.set_num_threads(2)
        two = em_fit(d, di, ww, wi, ini, backend="compiled")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one.params.means, two.params.means)
    assert torch.equal(one.log_likelihood, two.log_likelihood)


@pytest.mark.parametrize("d", [1, 2])
def test_compiled_log_density_and_integrals_equal_torch(d):
    rng = np.random.default_rng(10 + d)
    g, k = 6, 4
    lw = torch.log(torch.as_tensor(rng.dirichlet(np.ones(k), g)))
    lw[0, 3] = -torch.inf  # a padding component
    params = GMMParams(lw, torch.as_tensor(rng.normal(size=(g, k, d))), _spd(rng, (g, k), d, 0.3))
    pts = torch.as_tensor(rng.normal(scale=3.0, size=(g, 700, d)))
    coef, bias, _ = component_coefficients(params.log_weights, params.means, params.covariances)
    ref = logsumexp_components(component_log_prob(quadratic_features(pts).transpose(1, 2), coef, bias))
    torch.testing.assert_close(mixture_log_density(pts, *vars(params).values()), ref, rtol=0,
                               atol=1e-12)
    # the self-expectation E_m[log m] on the per-component nodes, against explicit points
    got = expected_log_ratio(params, [(1.0, list(range(d)))], "quadrature")
    nodes, w = integration_points(marginal(params, list(range(d))), "quadrature")
    log_p = logsumexp_components(component_log_prob(quadratic_features(nodes).transpose(1, 2),
                                                    coef, bias))
    want = (w * torch.where(w > 0, log_p, torch.zeros_like(log_p))).sum(-1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-11)


def test_fast_exp_and_log():
    from numba import njit

    from distmi.kernels.numba_math import exp_nonpositive, log_positive

    @njit(fastmath=set(FAST_FLAGS))  # inlined into loops with the kernels' flags
    def both(x, s):
        e = np.empty_like(x)
        lg = np.empty_like(s)
        for i in range(x.shape[0]):
            e[i] = exp_nonpositive(x[i])
            lg[i] = log_positive(s[i])
        return e, lg

    x = -np.concatenate([np.linspace(0, 700, 200_001), np.geomspace(1e-300, 1, 1001)])
    s = np.concatenate([np.geomspace(1e-300, 1e300, 200_001), np.linspace(1, 50, 1001)])
    e, lg = both(x, s)
    np.testing.assert_allclose(e, np.exp(x), rtol=1e-13, atol=0)
    np.testing.assert_allclose(lg, np.log(s), rtol=5e-16, atol=5e-16)
    assert both(np.array([-1e4]), np.array([1.0]))[0][0] < 1e-300  # clamped, not garbage


def test_split_preserves_moments_and_ranks_by_mass_times_variance():
    """The two halves of a split have, as a mixture, exactly the parent's mean and covariance;
    the first candidate splits the heaviest, widest component along its major axis."""
    rng = np.random.default_rng(6)
    k, d = 3, 2
    parent = GMMParams(
        torch.log(torch.tensor([[0.2, 0.5, 0.3]], dtype=torch.float64)),
        torch.as_tensor(rng.normal(size=(1, k, d))),
        _spd(rng, (1, k), d),
    )
    c = n_split_candidates(k, d, 3)
    cands = split_candidates(parent, 3)
    assert cands.means.shape == (c, k + 1, d)
    evals, evecs = torch.linalg.eigh(parent.covariances[0])
    score = (parent.log_weights[0].exp()[:, None] * evals).reshape(-1)
    order = torch.argsort(-score, stable=True)[:c]
    for i in range(c):
        comp = int(order[i]) // d
        lw, mu, cov = cands.log_weights[i], cands.means[i], cands.covariances[i]
        torch.testing.assert_close(torch.logsumexp(lw, 0), torch.zeros((), dtype=torch.float64))
        halves = [comp, k]
        w = lw[halves].exp()
        mean = (w[:, None] * mu[halves]).sum(0) / w.sum()
        second = sum(w[j] * (cov[h] + torch.outer(mu[h], mu[h])) for j, h in enumerate(halves)) / w.sum()
        torch.testing.assert_close(mean, parent.means[0, comp])
        torch.testing.assert_close(second - torch.outer(mean, mean), parent.covariances[0, comp])
        assert bool((torch.linalg.eigvalsh(cov) > 0).all())
        others = [j for j in range(k) if j != comp]
        torch.testing.assert_close(mu[others], parent.means[0, others])
        shift = mu[comp] - parent.means[0, comp]
        axis = evecs[comp][:, int(order[i]) % d]
        assert abs(float(shift @ axis)) == pytest.approx(
            math.sqrt(2 / math.pi) * math.sqrt(float(evals[comp, int(order[i]) % d])))


_FRESH_OR_CACHED = """
import sys
import numpy as np
import distmi

rng = np.random.default_rng(0)
X = rng.normal(size=(400, 4))
X[:, 1] = np.tanh(3 * X[:, 1]) + 0.1 * rng.normal(size=400)
labels = (X[:, 0] + 0.5 * rng.normal(size=400) > 0).astype(int)
Y = rng.normal(size=(400, 2))
Y[:, 0] += X[:, 0] ** 2
a = distmi.pairwise_mi(X, labels, discrete_y=True, n_bootstrap=3, random_state=0)
b = distmi.pairwise_mi(X, Y, n_bootstrap=3, random_state=0)
np.save(sys.argv[1], np.r_[a.estimate, a.ci_low, b.estimate, b.ci_high])
"""


def test_fresh_and_cached_kernels_give_the_same_bits(tmp_path):
    """A kernel compiled fresh (the first process on a machine, or a new Ray actor) and the same
    kernel loaded from numba's cache give identical numbers: the compiled code's floating-point
    flags never let LLVM reorder sums (which it did differently in the two cases)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(_FRESH_OR_CACHED)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    outs = []
    for name in ("fresh", "cached"):  # the first run compiles into the empty cache dir
        out = tmp_path / f"{name}.npy"
        subprocess.run([sys.executable, str(script), str(out)], env=env, check=True,
                       timeout=900)
        outs.append(np.load(out))
    assert any((tmp_path / "numba-cache").rglob("*.nbi")), "the first run cached nothing"
    np.testing.assert_array_equal(outs[0], outs[1])
