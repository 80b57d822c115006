"""Significance and interval arithmetic shared by sweeps, comparisons and analyses (pure numpy).

Everything here works on arrays of many tests at once and never looks at where the numbers came
from, so the screen stage of a sweep, ``distmi compare`` and the analyses share one
implementation.

- **Permutation p-values** (Phipson & Smyth 2010): with B null statistics drawn under H0,

      p = (1 + #{b : T_b >= T_obs}) / (B + 1),

  which is exact-valid (P(p <= u) <= u) and never 0. A null table may be shared by every test
  of the same shape (a rank statistic's null depends only on n and the class counts), shape
  (B,), or be per test, shape (P, B). Several statistics per test drawn on the same
  permutations combine by the min-P rule (Westfall & Young 1993) at no extra cost.
- **Multiple testing**: Benjamini-Hochberg (1995) step-up q-values control the false discovery
  rate for independent or positively dependent tests; Benjamini-Yekutieli (2001) multiply by
  c(m) = sum_{i<=m} 1/i and hold under any dependence. Both are applied per group when groups
  are given (e.g. per layer and target).
- **Bootstrap intervals that correct resampling bias** (Efron 1987; Efron & Tibshirani 1993,
  ch. 14): resampling duplicates points and biases MI replicates upward, so the percentile
  interval can exclude its own point estimate. The *basic* interval (2 theta - q_hi,
  2 theta - q_lo) and the *BCa* interval (bias-correction z0 from the share of replicates below
  the estimate, acceleration a from jackknife values) both centre on the estimate's bias.
- **Two-sample z tests** for the difference of two independent estimates with standard errors.

All functions are NaN-aware: a NaN statistic gives a NaN p-value/q-value and is not counted in
the number of tests m.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

FDR_METHODS = ("bh", "by")


def permutation_pvalues(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided (large statistic = evidence) permutation p-values.

    Args:
        observed: shape (P,) statistics of P tests.
        null: shape (B,) one null table shared by all tests, or (P, B) one per test.

    Returns:
        shape (P,) p-values in [1 / (B + 1), 1]; NaN where ``observed`` is NaN. NaN entries of
        the null are dropped (B counts only the finite ones).
    """
    obs = np.asarray(observed, dtype=np.float64)
    tab = np.asarray(null, dtype=np.float64)
    if tab.ndim == 1:
        finite = np.sort(tab[np.isfinite(tab)])
        b = finite.size
        if b == 0:
            raise ValueError("the null table holds no finite values; draw at least one permutation")
        # number of null values >= obs = b - (number strictly below obs)
        ge = b - np.searchsorted(finite, obs, side="left")
        p = (1.0 + ge) / (b + 1.0)
    elif tab.ndim == 2:
        if tab.shape[0] != obs.shape[0]:
            raise ValueError(
                f"a per-test null table needs one row per test: observed has {obs.shape[0]} "
                f"tests, null has {tab.shape[0]} rows"
            )
        valid = np.isfinite(tab)
        b = valid.sum(axis=1)
        ge = (valid & (tab >= obs[:, None])).sum(axis=1)
        p = (1.0 + ge) / (b + 1.0)
    else:
        raise ValueError(f"null must have shape (B,) or (P, B), got {tab.shape}")
    return np.where(np.isfinite(obs), p, np.nan)


def min_p_pvalues(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Permutation p-values of several statistics per test combined by the min-P rule.

    Each test has C statistics (e.g. one for monotone and one for non-monotone dependence)
    whose null values come from the *same* B permutations. The combined statistic is the
    smallest marginal p-value, and its null distribution is that of the same minimum over the
    permutations (Westfall & Young 1993, "Resampling-Based Multiple Testing", sec. 2.6), so the
    combination needs no extra permutations. Exactly: pool the observed row with the B null
    rows, give every row the marginal p-values R_c / (B + 1) with R_c = #{pooled rows whose
    statistic c is >= its own}, and let t = min_c R_c / (B + 1); then

        p = (1 + #{null rows b : t_b <= t_obs}) / (B + 1),

    which is valid (P(p <= u) <= u under H0) and equals :func:`permutation_pvalues` for C = 1.
    Computed per test in O(C log B): null rows with min_c r_bc <= g + 1 (r: ranks within the
    null table, g + 1: the observed row's rank) are counted, less those whose only marginal of
    rank g + 1 lies at or below the observed statistic (the observed row pushes them down).

    Args:
        observed: shape (P, C) statistics (large = evidence).
        null: shape (B, C), row b the C statistics of permutation b (rows holding a NaN are
            dropped).

    Returns:
        shape (P,) p-values in [1 / (B + 1), 1]; NaN where any observed statistic is NaN.
    """
    obs = np.asarray(observed, dtype=np.float64)
    tab = np.asarray(null, dtype=np.float64)
    if obs.ndim != 2 or tab.ndim != 2 or obs.shape[1] != tab.shape[1]:
        raise ValueError(
            f"observed must be (P, C) and null (B, C) with the same C, got {obs.shape} and "
            f"{tab.shape}"
        )
    tab = tab[np.isfinite(tab).all(axis=1)]
    if tab.shape[0] == 0:
        raise ValueError("the null table holds no finite rows; draw at least one permutation")
    if obs.shape[1] == 1:
        return permutation_pvalues(obs[:, 0], tab[:, 0])
    b, c_count = tab.shape
    finite = np.isfinite(obs).all(axis=1)
    obs_f = np.where(finite[:, None], obs, 0.0)
    sorted_cols = np.sort(tab, axis=0)
    # r[b, c] = #{b' : T[b', c] >= T[b, c]} (ties share the larger rank), g_c = the same count
    # of null values >= the observed statistic
    rank = np.stack([b - np.searchsorted(sorted_cols[:, c], tab[:, c], side="left")
                     for c in range(c_count)], axis=1)
    above = np.stack([b - np.searchsorted(sorted_cols[:, c], obs_f[:, c], side="left")
                      for c in range(c_count)], axis=1)
    g = above.min(axis=1)  # the observed row's min-P rank is g + 1
    row_min = rank.min(axis=1)
    order = np.argsort(row_min, kind="stable")
    sorted_min = row_min[order]
    counted = np.searchsorted(sorted_min, g + 1, side="right")  # min_c r_bc <= g + 1
    lo = np.searchsorted(sorted_min, g + 1, side="left")
    width = counted - lo  # null rows whose smallest rank is exactly g + 1
    excess = np.zeros(len(obs), dtype=np.int64)
    for off in range(int(width.max()) if width.size else 0):
        live = off < width
        rows = order[np.minimum(lo + off, b - 1)]
        at_edge = rank[rows] == (g + 1)[:, None]  # (P, C): marginals of rank g + 1
        pushed = ~at_edge | (tab[rows] <= obs_f)  # the observed row lies at or above them
        excess += live & pushed.all(axis=1)
    p = (1.0 + counted - excess) / (b + 1.0)
    return np.where(finite, p, np.nan)


def _step_up(p: np.ndarray, method: str) -> np.ndarray:
    """BH/BY adjusted p-values of the finite entries of a 1-D array (NaN elsewhere)."""
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="mergesort")]
    ranks = np.arange(1, m + 1, dtype=np.float64)
    scale = float(np.sum(1.0 / ranks)) if method == "by" else 1.0
    adj = p[order] * m * scale / ranks
    adj = np.minimum.accumulate(adj[::-1])[::-1]  # q_(i) = min_{j >= i} p_(j) m c / j
    out[order] = np.minimum(adj, 1.0)
    return out


def adjust_pvalues(p: np.ndarray, method: str = "bh", groups: np.ndarray | None = None) -> np.ndarray:
    """Benjamini-Hochberg or Benjamini-Yekutieli q-values, optionally within groups.

    Args:
        p: shape (P,) p-values in [0, 1] (NaN allowed: not a test).
        method: ``"bh"`` (independent / positively dependent tests) or ``"by"`` (any dependence).
        groups: shape (P,) group labels (any hashable dtype); each group is corrected on its
            own (its m is its own number of finite p-values). ``None``: one family.

    Returns:
        shape (P,) q-values; a test is discovered at FDR level alpha when q <= alpha.
    """
    if method not in FDR_METHODS:
        raise ValueError(f"method must be one of {FDR_METHODS}, got {method!r}")
    pv = np.asarray(p, dtype=np.float64)
    if pv.ndim != 1:
        raise ValueError(f"p must have shape (P,), got {pv.shape}")
    bad = np.isfinite(pv) & ((pv < 0) | (pv > 1))
    if bad.any():
        raise ValueError(f"p-values must lie in [0, 1], got {pv[bad][:3].tolist()}")
    if groups is None:
        return _step_up(pv, method)
    g = np.asarray(groups)
    if g.shape != pv.shape:
        raise ValueError(f"groups must have the shape of p {pv.shape}, got {g.shape}")
    out = np.full(pv.shape, np.nan)
    _, inverse = np.unique(g, return_inverse=True)
    for k in range(int(inverse.max()) + 1 if inverse.size else 0):
        idx = np.flatnonzero(inverse == k)
        out[idx] = _step_up(pv[idx], method)
    return out


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return float(level)


def basic_interval(estimate: np.ndarray, replicates: np.ndarray,
                   level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Basic (reverse-percentile) bootstrap interval: (2 theta - q_{1-a/2}, 2 theta - q_{a/2}).

    Args:
        estimate: shape (P,) point estimates theta.
        replicates: shape (P, B) bootstrap replicates (NaN ignored).
        level: coverage level.

    Returns:
        (low, high), each shape (P,); NaN where fewer than 2 finite replicates exist.
    """
    level = _check_level(level)
    theta = np.asarray(estimate, dtype=np.float64)
    reps = np.asarray(replicates, dtype=np.float64)
    alpha = (1.0 - level) / 2.0
    with np.errstate(all="ignore"):
        lo_q = np.nanquantile(reps, alpha, axis=1) if reps.size else np.full(theta.shape, np.nan)
        hi_q = np.nanquantile(reps, 1.0 - alpha, axis=1) if reps.size else np.full(theta.shape, np.nan)
    few = np.isfinite(reps).sum(axis=1) < 2 if reps.size else np.ones(theta.shape, bool)
    low = np.where(few, np.nan, 2.0 * theta - hi_q)
    high = np.where(few, np.nan, 2.0 * theta - lo_q)
    return low, high


def jackknife_acceleration(jackknife: np.ndarray) -> np.ndarray:
    """BCa acceleration a = sum (m - J_i)^3 / (6 (sum (m - J_i)^2)^{3/2}) from jackknife values.

    Args:
        jackknife: shape (P, G) leave-one-out (or delete-a-group) estimates.

    Returns:
        shape (P,); 0 where the jackknife values do not vary.
    """
    jk = np.asarray(jackknife, dtype=np.float64)
    dev = np.nanmean(jk, axis=1, keepdims=True) - jk
    num = np.nansum(dev**3, axis=1)
    den = 6.0 * np.nansum(dev**2, axis=1) ** 1.5
    with np.errstate(all="ignore"):
        a = np.where(den > 0, num / den, 0.0)
    return a


def influence_acceleration(influence: np.ndarray) -> np.ndarray:
    """BCa acceleration a = sum U_i^3 / (6 (sum U_i^2)^{3/2}) from influence values.

    U_i is the (empirical) influence of observation i on the statistic (Efron 1987; DiCiccio &
    Efron 1996). For a plug-in MI estimate it is the pointwise log ratio
    log p(x_i, y_i) / (p(x_i) p(y_i)) minus its mean, the influence function of
    I = E[log p(x, y) / (p(x) p(y))]: no refits are needed, unlike the jackknife.

    Args:
        influence: shape (P, N), influence values of N observations for P statistics (they
            are centred here; NaN ignored).

    Returns:
        shape (P,); 0 where the values do not vary.
    """
    u = np.asarray(influence, dtype=np.float64)
    u = u - np.nanmean(u, axis=1, keepdims=True)
    num = np.nansum(u**3, axis=1)
    den = 6.0 * np.nansum(u**2, axis=1) ** 1.5
    with np.errstate(all="ignore"):
        return np.where(den > 0, num / den, 0.0)


def bca_interval(estimate: np.ndarray, replicates: np.ndarray, level: float = 0.95,
                 acceleration: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected and accelerated (BCa) bootstrap interval, batched over P estimates.

    z0 = Phi^{-1}(#{theta*_b < theta} / B + 0.5 #{theta*_b = theta} / B) measures how far the
    replicates sit from the estimate (resampling bias); the interval is the
    (alpha_1, alpha_2) quantiles of the replicates with

        alpha_j = Phi(z0 + (z0 + z_j) / (1 - a (z0 + z_j))),  z_j = Phi^{-1}(a/2), Phi^{-1}(1-a/2).

    With ``acceleration=None`` a = 0 (the bias-corrected "BC" interval). When every replicate
    lies on one side of the estimate z0 is infinite; it is clipped to +-Phi^{-1}(1 - 1/(2B)),
    so the interval ends at the extreme replicate rather than becoming empty.

    Args:
        estimate: shape (P,).
        replicates: shape (P, B) (NaN ignored).
        level: coverage level.
        acceleration: shape (P,) from :func:`influence_acceleration` or
            :func:`jackknife_acceleration`, or None.

    Returns:
        (low, high), each shape (P,); NaN where fewer than 2 finite replicates exist.
    """
    level = _check_level(level)
    theta = np.asarray(estimate, dtype=np.float64)
    reps = np.asarray(replicates, dtype=np.float64)
    p_count = theta.shape[0]
    low = np.full(p_count, np.nan)
    high = np.full(p_count, np.nan)
    a_all = np.zeros(p_count) if acceleration is None else np.asarray(acceleration, np.float64)
    z_lo, z_hi = ndtri((1.0 - level) / 2.0), ndtri(1.0 - (1.0 - level) / 2.0)
    for i in range(p_count):
        r = reps[i][np.isfinite(reps[i])]
        b = r.size
        if b < 2 or not np.isfinite(theta[i]):
            continue
        share = (np.sum(r < theta[i]) + 0.5 * np.sum(r == theta[i])) / b
        cap = ndtri(1.0 - 0.5 / b)
        z0 = float(np.clip(ndtri(share) if 0 < share < 1 else np.sign(share - 0.5) * cap,
                           -cap, cap))
        a = float(a_all[i]) if np.isfinite(a_all[i]) else 0.0
        qs = []
        for z in (z_lo, z_hi):
            w = z0 + z
            denom = 1.0 - a * w
            qs.append(float(ndtr(z0 + w / denom)) if denom > 0 else (0.0 if z < 0 else 1.0))
        low[i], high[i] = np.quantile(r, qs)
    return low, high


def difference_z_test(delta: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided z test of H0: difference = 0 for independent estimates.

    Args:
        delta: shape (P,) differences (new - base).
        se: shape (P,) standard errors of the differences, e.g. sqrt(se_a^2 + se_b^2).

    Returns:
        (z, p) each shape (P,); p = 2 (1 - Phi(|z|)). NaN where ``se`` is not positive/finite.
    """
    d = np.asarray(delta, dtype=np.float64)
    s = np.asarray(se, dtype=np.float64)
    with np.errstate(all="ignore"):
        z = np.where((s > 0) & np.isfinite(s), d / s, np.nan)
    p = 2.0 * ndtr(-np.abs(z))
    return z, np.where(np.isfinite(z), p, np.nan)
