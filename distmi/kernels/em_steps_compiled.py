"""Compiled (numba) E- and M-steps of one 1-D or 2-D Gaussian mixture on compacted rows.

The arithmetic under :mod:`distmi.kernels.em_compiled` and :mod:`distmi.kernels.mixture_compiled`:

- component coefficients: per component the inverse Cholesky factor (whitening u = L^-1 (x - mu))
  and log pi - log|L| - D/2 log 2pi, with the torch path's per-component ridge escalation;
- the fused, blocked E-step: for a block of ``BLOCK`` points the component log-densities
  (log pi - log|L| - D/2 log 2pi - |u|^2 / 2), the log-sum-exp, the responsibilities and the
  sufficient statistics (sum r, sum r x, sum r x x^T) in SIMD loops over points (exp and log from
  :mod:`distmi.kernels.numba_math`); one component skips the log-sum-exp;
- the M-step from the statistics (the formulas of :func:`distmi.kernels.em.m_step`).
"""

from __future__ import annotations

import math

import numpy as np

from distmi.kernels.numba_math import FAST_FLAGS, HAVE_NUMBA

BLOCK = 256
EPS = float(np.finfo(np.float64).eps)
LOG_2PI = math.log(2.0 * math.pi)
TINY = float(np.finfo(np.float64).tiny)

if HAVE_NUMBA:
    import numba

    from distmi.kernels.numba_math import exp_nonpositive, log_positive

    _jit = numba.njit(nogil=True, cache=True)
    _jit_fast = numba.njit(nogil=True, cache=True, fastmath=set(FAST_FLAGS))

    # ------------------------------------------------------------ component coefficients

    @_jit
    def _pd_factor_2d(c00, c01, c11):  # pragma: no cover - compiled
        """Inverse Cholesky entries (a, b, c) and log|L| of [[c00, c01], [c01, c11]], and
        whether both pivots were positive. u = a dx, v = b dx + c dy whitens."""
        s0 = c00
        l00 = math.sqrt(max(s0, TINY))
        l10 = c01 / l00
        s1 = c11 - l10 * l10
        l11 = math.sqrt(max(s1, TINY))
        ok = s0 > 0 and s1 > 0
        a = 1.0 / l00
        c = 1.0 / l11
        b = -l10 * a * c
        return a, b, c, math.log(l00) + math.log(l11), ok

    @_jit
    def _coefficients_2d(logw, cov, reg, whiten, logc):  # pragma: no cover - compiled
        """Fill whiten (K, 3) and logc (K,) from log weights and covariances (K, 2, 2).

        ``reg`` > 0 is added to the diagonal first; a component that is not positive
        definite gets a ridge escalated x10 from max(reg, 1e-12) (cumulative, as the torch
        path), and the identity beyond 1. ``cov`` is updated in place to what was used.
        """
        k_total = logw.shape[0]
        for k in range(k_total):
            if reg > 0:
                cov[k, 0, 0] += reg
                cov[k, 1, 1] += reg
            a, b, c, logdet, ok = _pd_factor_2d(cov[k, 0, 0], cov[k, 0, 1], cov[k, 1, 1])
            ridge = max(reg, 1e-12)
            while not ok:
                if ridge <= 1.0:
                    cov[k, 0, 0] += ridge
                    cov[k, 1, 1] += ridge
                else:
                    cov[k, 0, 0] = 1.0
                    cov[k, 1, 1] = 1.0
                    cov[k, 0, 1] = 0.0
                    cov[k, 1, 0] = 0.0
                a, b, c, logdet, ok = _pd_factor_2d(cov[k, 0, 0], cov[k, 0, 1], cov[k, 1, 1])
                ok = ok or ridge > 1.0
                ridge *= 10.0
            whiten[k, 0] = a
            whiten[k, 1] = b
            whiten[k, 2] = c
            logc[k] = logw[k] - logdet - LOG_2PI

    @_jit
    def _coefficients_1d(logw, cov, reg, whiten, logc):  # pragma: no cover - compiled
        """1-D version of :func:`_coefficients_2d`: whiten (K, 1) = 1 / sd."""
        k_total = logw.shape[0]
        for k in range(k_total):
            if reg > 0:
                cov[k, 0, 0] += reg
            ok = cov[k, 0, 0] > 0
            ridge = max(reg, 1e-12)
            while not ok:
                cov[k, 0, 0] = cov[k, 0, 0] + ridge if ridge <= 1.0 else 1.0
                ok = cov[k, 0, 0] > 0 or ridge > 1.0
                ridge *= 10.0
            sd = math.sqrt(max(cov[k, 0, 0], TINY))
            whiten[k, 0] = 1.0 / sd
            logc[k] = logw[k] - math.log(sd) - 0.5 * LOG_2PI

    # ------------------------------------------------------------ fused E-step + statistics

    @_jit_fast
    def _single_2d(x0, x1, w, mu, whiten, logc, stats, want_stats):  # pragma: no cover
        """:func:`_estep_2d` for K = 1."""
        a = whiten[0, 0]
        b = whiten[0, 1]
        c = whiten[0, 2]
        m0 = mu[0, 0]
        m1 = mu[0, 1]
        quad = 0.0
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        s4 = 0.0
        s5 = 0.0
        for i in range(x0.shape[0]):
            xa = x0[i]
            xb = x1[i]
            dx = xa - m0
            dy = xb - m1
            u = a * dx
            v = b * dx + c * dy
            r = w[i]
            quad += r * (u * u + v * v)
            s0 += r
            s1 += r * xa
            s2 += r * xb
            s3 += r * xa * xa
            s4 += r * xa * xb
            s5 += r * xb * xb
        if want_stats:
            stats[0, 0] = s0
            stats[0, 1] = s1
            stats[0, 2] = s2
            stats[0, 3] = s3
            stats[0, 4] = s4
            stats[0, 5] = s5
        return s0 * logc[0] - 0.5 * quad

    @_jit_fast
    def _single_1d(x0, w, mu, whiten, logc, stats, want_stats):  # pragma: no cover
        """:func:`_estep_1d` for K = 1."""
        a = whiten[0, 0]
        m0 = mu[0, 0]
        quad = 0.0
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        for i in range(x0.shape[0]):
            xa = x0[i]
            u = a * (xa - m0)
            r = w[i]
            quad += r * u * u
            s0 += r
            s1 += r * xa
            s2 += r * xa * xa
        if want_stats:
            stats[0, 0] = s0
            stats[0, 1] = s1
            stats[0, 2] = s2
        return s0 * logc[0] - 0.5 * quad

    @_jit_fast
    def _estep_2d(x0, x1, w, mu, whiten, logc, stats, lp, peak, scale, want_stats):  # pragma: no cover
        """Weighted sum of log p(x_n) over the points; sufficient statistics into ``stats``
        (K, 6): [sum r, sum r x0, sum r x1, sum r x0^2, sum r x0 x1, sum r x1^2] (r already
        times the point weight). lp (K, BLOCK), peak and scale (BLOCK,) are scratch."""
        k_total = mu.shape[0]
        n = x0.shape[0]
        total = 0.0
        if want_stats:
            stats[:, :] = 0.0
        if k_total == 1:  # one component: responsibilities are 1, no log-sum-exp
            return _single_2d(x0, x1, w, mu, whiten, logc, stats, want_stats)
        for start in range(0, n, BLOCK):
            nb = min(BLOCK, n - start)
            for j in range(nb):
                peak[j] = -np.inf
            for k in range(k_total):
                a = whiten[k, 0]
                b = whiten[k, 1]
                c = whiten[k, 2]
                m0 = mu[k, 0]
                m1 = mu[k, 1]
                lc = logc[k]
                for j in range(nb):
                    dx = x0[start + j] - m0
                    dy = x1[start + j] - m1
                    u = a * dx
                    v = b * dx + c * dy
                    t = lc - 0.5 * (u * u + v * v)
                    lp[k, j] = t
                    peak[j] = max(peak[j], t)
            for j in range(nb):
                scale[j] = 0.0
            for k in range(k_total):
                for j in range(nb):
                    e = exp_nonpositive(lp[k, j] - peak[j])
                    lp[k, j] = e
                    scale[j] += e
            for j in range(nb):
                wj = w[start + j]
                total += wj * (peak[j] + log_positive(scale[j]))
                scale[j] = wj / scale[j]
            if want_stats:
                for k in range(k_total):
                    s0 = 0.0
                    s1 = 0.0
                    s2 = 0.0
                    s3 = 0.0
                    s4 = 0.0
                    s5 = 0.0
                    for j in range(nb):
                        r = lp[k, j] * scale[j]
                        xa = x0[start + j]
                        xb = x1[start + j]
                        s0 += r
                        s1 += r * xa
                        s2 += r * xb
                        s3 += r * xa * xa
                        s4 += r * xa * xb
                        s5 += r * xb * xb
                    stats[k, 0] += s0
                    stats[k, 1] += s1
                    stats[k, 2] += s2
                    stats[k, 3] += s3
                    stats[k, 4] += s4
                    stats[k, 5] += s5
        return total

    @_jit_fast
    def _estep_1d(x0, w, mu, whiten, logc, stats, lp, peak, scale, want_stats):  # pragma: no cover
        """1-D version of :func:`_estep_2d`; stats (K, 3): [sum r, sum r x, sum r x^2]."""
        k_total = mu.shape[0]
        n = x0.shape[0]
        total = 0.0
        if want_stats:
            stats[:, :] = 0.0
        if k_total == 1:  # one component: responsibilities are 1, no log-sum-exp
            return _single_1d(x0, w, mu, whiten, logc, stats, want_stats)
        for start in range(0, n, BLOCK):
            nb = min(BLOCK, n - start)
            for j in range(nb):
                peak[j] = -np.inf
            for k in range(k_total):
                a = whiten[k, 0]
                m0 = mu[k, 0]
                lc = logc[k]
                for j in range(nb):
                    u = a * (x0[start + j] - m0)
                    t = lc - 0.5 * u * u
                    lp[k, j] = t
                    peak[j] = max(peak[j], t)
            for j in range(nb):
                scale[j] = 0.0
            for k in range(k_total):
                for j in range(nb):
                    e = exp_nonpositive(lp[k, j] - peak[j])
                    lp[k, j] = e
                    scale[j] += e
            for j in range(nb):
                wj = w[start + j]
                total += wj * (peak[j] + log_positive(scale[j]))
                scale[j] = wj / scale[j]
            if want_stats:
                for k in range(k_total):
                    s0 = 0.0
                    s1 = 0.0
                    s2 = 0.0
                    for j in range(nb):
                        r = lp[k, j] * scale[j]
                        xa = x0[start + j]
                        s0 += r
                        s1 += r * xa
                        s2 += r * xa * xa
                    stats[k, 0] += s0
                    stats[k, 1] += s1
                    stats[k, 2] += s2
        return total

    # ------------------------------------------------------------ M-step

    @_jit
    def _mstep(stats, dim, reg, logw, mu, cov, whiten, logc):  # pragma: no cover - compiled
        """Parameters from sufficient statistics (the formulas of :func:`em.m_step`)."""
        k_total = logw.shape[0]
        mass = 0.0
        for k in range(k_total):
            mass += stats[k, 0] + 10 * EPS
        log_mass = math.log(mass)
        for k in range(k_total):
            nk = stats[k, 0] + 10 * EPS
            logw[k] = math.log(nk) - log_mass
            if dim == 1:
                m0 = stats[k, 1] / nk
                mu[k, 0] = m0
                cov[k, 0, 0] = stats[k, 2] / nk - m0 * m0
            else:
                m0 = stats[k, 1] / nk
                m1 = stats[k, 2] / nk
                mu[k, 0] = m0
                mu[k, 1] = m1
                cov[k, 0, 0] = stats[k, 3] / nk - m0 * m0
                off = stats[k, 4] / nk - m0 * m1
                cov[k, 0, 1] = off
                cov[k, 1, 0] = off
                cov[k, 1, 1] = stats[k, 5] / nk - m1 * m1
        if dim == 1:
            _coefficients_1d(logw, cov, reg, whiten, logc)
        else:
            _coefficients_2d(logw, cov, reg, whiten, logc)

    # ------------------------------------------------------------ elements
