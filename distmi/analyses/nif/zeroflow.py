"""Which neurons carry no information flow? A permutation test per node, then BH.

H0 for a node u: *no information flows through u*, i.e. u is independent of every node of the
layer before it (nothing flows in) **or** of every node of the layer after it (nothing flows
out). The test is built from per-link tests:

1. **Link test.** The statistic of link a -> b is KSG (Ross's estimator for a class indicator)
   on the ranks of both columns, ties broken in a random order drawn per column
   (:func:`distmi.analyses.nif.linkmethod.rank_statistics`). Under independence the two rank
   vectors are independent uniform permutations whatever the columns' distributions (a ReLU's
   mass at 0 included), so B statistics of random permutation pairs form a null table that is
   exact for every link at this sample size (one table per class indicator, whose label
   vector is kept). p-values: :func:`distmi.kernels.significance.permutation_pvalues`
   (Phipson & Smyth), never below 1 / (B + 1).
2. **In / out.** "Nothing flows in" is the intersection of the in-link nulls; its p-value is
   the Bonferroni min-p, p_in = min(1, m_in * min_a p(a -> u)), valid under any dependence
   between the links (they share u). Likewise p_out over the out-links. Links from or to a
   constant node are exactly 0 and not tested; a node with no testable in-links has p_in = 1.
   Input features have no in-links and are tested on p_out only.
3. **Node.** H0 is the union "in = 0 or out = 0", so the intersection-union test rejects it
   only if both are rejected: p = max(p_in, p_out) (Berger 1982).
4. **Many nodes.** Benjamini-Hochberg q-values over all input and hidden nodes
   (:func:`distmi.kernels.significance.adjust_pvalues`); a node whose H0 is not rejected at
   FDR ``alpha`` is reported as zero flow.

A constant node (a dead ReLU, a neuron whose inputs are all zero or dead) has MI exactly 0
with everything: p = 1, always zero flow. The resolution is p >= m / (B + 1) for a node with
m links, so B (``n_permutations``) should exceed m * (number of nodes) / alpha for strongly
informative nodes to be discovered; the default 9999 covers the bundled networks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from distmi.core.seeds import derive_rng
from distmi.kernels.significance import adjust_pvalues, permutation_pvalues

_RANK_K = 3
_CHUNK = 512


def null_table(n: int, n_permutations: int, tie_seed: int, seed: int,
               labels: np.ndarray | None = None) -> np.ndarray:
    """Rank statistics of ``n_permutations`` independent pairs, shape (B,).

    Every entry is computed exactly like an observed link statistic (same k, same jitter seed):
    x and y are independent uniform random permutations of 0..n-1 (with ``labels``, y is that
    label vector and only x is permuted).
    """
    from distmi.estimators.registry import get_method

    ksg = get_method("ksg")
    key = ("continuous",) if labels is None else ("labels", int(labels.sum()), len(labels))
    rng = derive_rng(seed, "nif", "rank-null", *key)
    out = np.empty(n_permutations)
    base = np.arange(n, dtype=np.float64)
    for start in range(0, n_permutations, _CHUNK):
        b = min(_CHUNK, n_permutations - start)
        xs = np.stack([rng.permutation(base) for _ in range(b)], axis=1)  # (n, b)
        if labels is None:
            ys = np.stack([rng.permutation(base) for _ in range(b)], axis=1)
            pairs = np.stack([np.arange(b)] * 2, axis=1)
            res = ksg.estimate_pairs(xs, ys, pairs, discrete_y=False, n_bootstrap=0,
                                     random_state=tie_seed, k=_RANK_K)
        else:
            pairs = np.stack([np.arange(b), np.zeros(b, np.int64)], axis=1)
            res = ksg.estimate_pairs(xs, labels, pairs, discrete_y=True, n_bootstrap=0,
                                     random_state=tie_seed, k=_RANK_K)
        out[start:start + b] = [r.value for r in res]
    return out


def link_pvalues(links: pd.DataFrame, n: int, n_permutations: int, tie_seed: int, seed: int,
                 labels: np.ndarray | None) -> np.ndarray:
    """p-value of every link (NaN for links with a constant end), shape (P,)."""
    p = np.full(len(links), np.nan)
    ok = (links["status"] == "ok").to_numpy()
    is_class = (links["dst_layer"] == "classes").to_numpy()
    cont = ok & ~is_class
    if cont.any():
        table = null_table(n, n_permutations, tie_seed, seed)
        p[cont] = permutation_pvalues(links["rank_mi"].to_numpy()[cont], table)
    if labels is not None:
        for c in np.unique(links.loc[ok & is_class, "dst_unit"]):
            sel = ok & is_class & (links["dst_unit"] == c).to_numpy()
            table = null_table(n, n_permutations, tie_seed, seed,
                               (labels == c).astype(np.int64))
            p[sel] = permutation_pvalues(links["rank_mi"].to_numpy()[sel], table)
    return p


def _minp(pvals: np.ndarray) -> float:
    finite = pvals[np.isfinite(pvals)]
    if finite.size == 0:
        return 1.0
    return float(min(1.0, finite.size * finite.min()))


def node_tests(links: pd.DataFrame, link_p: np.ndarray, nodes: pd.DataFrame, alpha: float,
               fdr: str = "bh") -> pd.DataFrame:
    """Per-node p_in, p_out, p, q and ``zero_flow`` for the input and hidden nodes.

    Args:
        links: link table (src_layer, src_unit, dst_layer, dst_unit, status).
        link_p: (P,) link p-values (NaN = not tested).
        nodes: one row per node with layer, unit, kind, constant.
        alpha: FDR level.
        fdr: ``"bh"`` or ``"by"``.
    """
    src = list(zip(links["src_layer"], links["src_unit"], strict=True))
    dst = list(zip(links["dst_layer"], links["dst_unit"], strict=True))
    by_src: dict[tuple, list[int]] = {}
    by_dst: dict[tuple, list[int]] = {}
    for k, (s, d) in enumerate(zip(src, dst, strict=True)):
        by_src.setdefault(s, []).append(k)
        by_dst.setdefault(d, []).append(k)
    out = nodes.copy()
    p_in = np.full(len(nodes), np.nan)
    p_out = np.full(len(nodes), np.nan)
    p = np.full(len(nodes), np.nan)
    tested = out["kind"].isin(["input", "hidden"]).to_numpy()
    for r, (layer, unit, kind, const) in enumerate(zip(
            out["layer"], out["unit"], out["kind"], out["constant"], strict=True)):
        if not tested[r]:
            continue
        key = (layer, int(unit))
        if const:
            p_in[r] = p_out[r] = p[r] = 1.0
            continue
        p_in[r] = 0.0 if kind == "input" else _minp(link_p[by_dst.get(key, [])])
        p_out[r] = _minp(link_p[by_src.get(key, [])])
        p[r] = max(p_in[r], p_out[r])
    q = adjust_pvalues(np.where(tested, p, np.nan), method=fdr)
    out["p_in"], out["p_out"], out["p_value"], out["q_value"] = p_in, p_out, p, q
    out["zero_flow"] = tested & ~(q <= alpha)
    return out

