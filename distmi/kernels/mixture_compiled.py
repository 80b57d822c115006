"""Compiled (numba) log-densities and self-expectations of 1-D and 2-D Gaussian mixtures.

The CPU fast path of :mod:`distmi.kernels.gmm_mi_integral`: MI of a fitted mixture is a signed
sum of terms E_m[log m(z)] over marginal mixtures m (the joint and each variable), and each
term is integrated with the same per-component rule (a node set t_j with weights v_j for the
standard normal, placed at mu_k + L_k t_j with weight pi_k v_j):

    E_m[log m] ~= sum_k pi_k sum_j v_j log m(mu_k + L_k t_j)

(a single Gaussian gets its closed form, -1/2 (D log 2 pi e + log|S|), which the rule also
integrates exactly).

:func:`negentropy_compiled` evaluates that sum without materialising the points (G mixtures x
K components x J nodes), with the blocked log-sum-exp of :mod:`distmi.kernels.em_compiled`
(exp and log from :mod:`distmi.kernels.numba_math`). :func:`log_density_compiled` returns
log m at given points. Both agree with the torch path to rounding.
"""

from __future__ import annotations

import math

import numpy as np

from distmi.kernels.em_compiled import _run_chunks
from distmi.kernels.em_steps_compiled import BLOCK
from distmi.kernels.numba_math import FAST_FLAGS, HAVE_NUMBA

if HAVE_NUMBA:
    import numba

    from distmi.kernels.em_steps_compiled import _coefficients_1d, _coefficients_2d
    from distmi.kernels.numba_math import exp_nonpositive, log_positive

    _jit = numba.njit(nogil=True, cache=True)
    _jit_fast = numba.njit(nogil=True, cache=True, fastmath=set(FAST_FLAGS))

    @_jit_fast
    def _log_density_block(xs, nb, dim, mu, whiten, logc, lp, peak, scale, out):  # pragma: no cover
        """log m at the first ``nb`` points of xs (D, BLOCK) into out (BLOCK,)."""
        k_total = mu.shape[0]
        for j in range(nb):
            peak[j] = -np.inf
        for k in range(k_total):
            a = whiten[k, 0]
            b = whiten[k, 1]
            c = whiten[k, 2]
            m0 = mu[k, 0]
            m1 = mu[k, 1] if dim == 2 else 0.0
            lc = logc[k]
            for j in range(nb):
                dx = xs[0, j] - m0
                if dim == 2:
                    dy = xs[1, j] - m1
                    u = a * dx
                    v = b * dx + c * dy
                    t = lc - 0.5 * (u * u + v * v)
                else:
                    u = a * dx
                    t = lc - 0.5 * u * u
                lp[k, j] = t
                peak[j] = max(peak[j], t)
        for j in range(nb):
            scale[j] = 0.0
        for k in range(k_total):
            for j in range(nb):
                scale[j] += exp_nonpositive(lp[k, j] - peak[j])
        for j in range(nb):
            out[j] = peak[j] + log_positive(scale[j])

    @_jit
    def _prepare(logw, cov_g, dim, cur_cov, whiten, logc):  # pragma: no cover - compiled
        cur_cov[:, :, :] = cov_g
        if dim == 1:
            _coefficients_1d(logw, cur_cov, 0.0, whiten, logc)
        else:
            _coefficients_2d(logw, cur_cov, 0.0, whiten, logc)

    @_jit
    def log_density_elements(points, elements, logw, mu, cov, out):  # pragma: no cover
        """log m_g at its points: points (G, D, J), out (G, J)."""
        dim = points.shape[1]
        k_total = logw.shape[1]
        j_total = points.shape[2]
        whiten = np.zeros((k_total, 3))
        logc = np.empty(k_total)
        lp = np.empty((k_total, BLOCK))
        peak = np.empty(BLOCK)
        scale = np.empty(BLOCK)
        buf = np.empty(BLOCK)
        xs = np.empty((dim, BLOCK))
        cur_cov = np.empty((k_total, dim, dim))
        for g in elements:
            _prepare(logw[g], cov[g], dim, cur_cov, whiten, logc)
            for start in range(0, j_total, BLOCK):
                nb = min(BLOCK, j_total - start)
                for d in range(dim):
                    xs[d, :nb] = points[g, d, start:start + nb]
                _log_density_block(xs, nb, dim, mu[g], whiten, logc, lp, peak, scale, buf)
                out[g, start:start + nb] = buf[:nb]

    @_jit
    def negentropy_elements(nodes, node_w, elements, logw, mu, cov, out):  # pragma: no cover
        """out[g] = sum_k pi_k sum_j v_j log m_g(mu_k + L_k t_j); nodes (D, J), node_w (J,)."""
        dim = nodes.shape[0]
        k_total = logw.shape[1]
        j_total = nodes.shape[1]
        whiten = np.zeros((k_total, 3))
        logc = np.empty(k_total)
        lp = np.empty((k_total, BLOCK))
        peak = np.empty(BLOCK)
        scale = np.empty(BLOCK)
        buf = np.empty(BLOCK)
        xs = np.empty((dim, BLOCK))
        cur_cov = np.empty((k_total, dim, dim))
        for g in elements:
            _prepare(logw[g], cov[g], dim, cur_cov, whiten, logc)
            live = 0
            for k in range(k_total):
                if logw[g, k] > -np.inf:
                    live += 1
                    last = k
            if live == 1:  # one Gaussian: E log N = log c - D / 2 exactly (log c = logc[k])
                out[g] = logc[last] - 0.5 * dim
                continue
            total = 0.0
            for k in range(k_total):
                pi = math.exp(logw[g, k])
                if pi <= 0.0:
                    continue
                # Cholesky factor of the covariance actually used (ridge included)
                l00 = math.sqrt(cur_cov[k, 0, 0])
                l10 = cur_cov[k, 1, 0] / l00 if dim == 2 else 0.0
                l11 = math.sqrt(max(cur_cov[k, 1, 1] - l10 * l10, 0.0)) if dim == 2 else 0.0
                acc = 0.0
                for start in range(0, j_total, BLOCK):
                    nb = min(BLOCK, j_total - start)
                    for j in range(nb):
                        t0 = nodes[0, start + j]
                        xs[0, j] = mu[g, k, 0] + l00 * t0
                        if dim == 2:
                            xs[1, j] = mu[g, k, 1] + l10 * t0 + l11 * nodes[1, start + j]
                    _log_density_block(xs, nb, dim, mu[g], whiten, logc, lp, peak, scale, buf)
                    for j in range(nb):
                        acc += node_w[start + j] * buf[j]
                total += pi * acc
            out[g] = total


def supports(dim: int, device_type: str) -> bool:
    """Whether the compiled path handles mixtures of this dimension on this device."""
    return HAVE_NUMBA and device_type == "cpu" and dim in (1, 2)


def log_density_compiled(points: np.ndarray, log_weights: np.ndarray, means: np.ndarray,
                         covariances: np.ndarray, *, n_threads: int) -> np.ndarray:
    """log m (G, M) of G mixtures (D = 1 or 2) at their points (G, M, D)."""
    pts = np.ascontiguousarray(np.transpose(points, (0, 2, 1)))
    out = np.empty((pts.shape[0], pts.shape[2]))
    _run_chunks(
        log_density_elements, pts.shape[0], n_threads, (pts,),
        (np.ascontiguousarray(log_weights), np.ascontiguousarray(means),
         np.ascontiguousarray(covariances), out),
    )
    return out


def negentropy_compiled(nodes: np.ndarray, node_weights: np.ndarray, log_weights: np.ndarray,
                        means: np.ndarray, covariances: np.ndarray, *, n_threads: int) -> np.ndarray:
    """E_m[log m] (G,) of G mixtures (D = 1 or 2) by the per-component rule (nodes (J, D),
    weights (J,) summing to 1) described in the module docstring."""
    out = np.empty(log_weights.shape[0])
    _run_chunks(
        negentropy_elements, log_weights.shape[0], n_threads,
        (np.ascontiguousarray(nodes.T), np.ascontiguousarray(node_weights)),
        (np.ascontiguousarray(log_weights), np.ascontiguousarray(means),
         np.ascontiguousarray(covariances), out),
    )
    return out
