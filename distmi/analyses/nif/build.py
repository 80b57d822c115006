"""From link estimates to the flow tables: flags, eq. 2, eq. 4, node flows and the zero-flow test.

Pure table and array work on the output of :mod:`distmi.analyses.nif.links`; no estimation
happens here except the shared permutation null tables of the zero-flow test.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from distmi.analyses.nif import attribution as attr
from distmi.analyses.nif import redundancy as red
from distmi.analyses.nif import zeroflow
from distmi.analyses.nif.graph import CLASSES, FlowGraph
from distmi.analyses.nif.linkmethod import _constant, half_sample_intervals
from distmi.analyses.nif.links import LinkEstimates

NEURAL = ("mine", "nwj", "smile", "infonce")


@dataclass
class FlowTables:
    """Everything a :class:`~distmi.analyses.nif.flow.Flow` holds besides its settings."""

    links: pd.DataFrame
    neurons: pd.DataFrame
    attribution: pd.DataFrame
    attribution_ci: pd.DataFrame
    raw_mi: pd.DataFrame
    raw_table: pd.DataFrame
    nif_replicates: np.ndarray
    attribution_replicates: np.ndarray


def flag_links(links: pd.DataFrame, base: str) -> np.ndarray:
    """Why a link estimate is not used ('' = used), shape (P,).

    ``diverged``: a neural critic diverged or the estimate is not finite; ``negative``: a
    neural lower bound below 0 (no evidence of information); ``unstable``: a neural estimate
    whose half-sample spread (std) exceeds its size. Non-neural estimates are flagged only
    when not finite.
    """
    mi = links["mi"].to_numpy(dtype=np.float64)
    std = links["std"].to_numpy(dtype=np.float64)
    ok = (links["status"] == "ok").to_numpy()
    flag = np.full(len(links), "", dtype=object)
    bad = ok & (~np.isfinite(mi) | links["diverged"].to_numpy(dtype=bool))
    flag[bad] = "diverged"
    if base in NEURAL:
        rest = ok & ~bad
        flag[rest & (mi < 0)] = "negative"
        unstable = rest & (mi >= 0) & np.isfinite(std) & (std > np.abs(mi))
        flag[unstable] = "unstable"
    return flag


def _redundancy(est: LinkEstimates, links: pd.DataFrame, mi: np.ndarray, graph: FlowGraph,
                beta: str | float, order: str
                ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """layer -> (beta_i (n,), redundancy (n,), replicates (n, B), order position (n,))."""
    b = est.link_reps.shape[1]
    out = {}
    for layer in graph.layers:
        if layer.kind not in ("input", "hidden"):
            continue
        n = layer.n_units
        sel_links = (links["src_layer"] == layer.name).to_numpy()
        relevance = np.zeros(n)
        np.add.at(relevance, links.loc[sel_links, "src_unit"].to_numpy(int),
                  np.clip(mi[sel_links], 0.0, None))
        ranks = red.unit_ranks(relevance, order)
        weights = red.beta_weights(beta, n, ranks)
        sums, reps = np.zeros(n), np.zeros((n, b))
        if beta != "none" and len(est.pairs):
            sel = (est.pairs["layer"] == layer.name).to_numpy()
            ui = est.pairs.loc[sel, "unit_i"].to_numpy()
            uj = est.pairs.loc[sel, "unit_j"].to_numpy()
            sums = red.redundancy_sums(ui, uj, est.pairs.loc[sel, "mi"].to_numpy(), n, ranks)
            reps = red.redundancy_sums(ui, uj, est.pair_reps[sel], n, ranks)
        out[layer.name] = (weights, sums, reps, ranks)
    return out


def _complete(links: pd.DataFrame, reps: np.ndarray, graph: FlowGraph
              ) -> tuple[pd.DataFrame, np.ndarray]:
    """Add the links to absent classes (no samples): exactly 0, status 'constant'."""
    if graph.outputs != CLASSES:
        return links, reps
    last = graph.layers[-2]
    have = set(zip(links.loc[links["dst_layer"] == CLASSES, "src_unit"],
                   links.loc[links["dst_layer"] == CLASSES, "dst_unit"], strict=True))
    rows = [{"src_layer": last.name, "src_unit": u, "dst_layer": CLASSES, "dst_unit": c,
             "mi": 0.0, "std": 0.0, "ci_low": 0.0, "ci_high": 0.0, "status": "constant",
             "rank_mi": 0.0, "stop_reason": "", "diverged": False}
            for u in range(last.n_units) for c in range(graph.layers[-1].n_units)
            if (u, c) not in have]
    if not rows:
        return links, reps
    extra = pd.DataFrame(rows)
    links = pd.concat([links, extra], ignore_index=True)
    reps = np.concatenate([reps, np.zeros((len(extra), reps.shape[1]))])
    order = {name: k for k, name in enumerate(graph.names)}
    key = np.lexsort((links["dst_unit"].to_numpy(), links["src_unit"].to_numpy(),
                      links["dst_layer"].map(order).to_numpy(),
                      links["src_layer"].map(order).to_numpy()))
    return links.iloc[key].reset_index(drop=True), reps[key]


def _matrices(links: pd.DataFrame, values: np.ndarray, graph: FlowGraph) -> list[np.ndarray]:
    """Link matrices N^l (n_l, n_{l+1}) or (..., n_l, n_{l+1}) from per-link values (P, ...)."""
    mats = []
    for a, b in zip(graph.layers[:-1], graph.layers[1:], strict=True):
        sel = ((links["src_layer"] == a.name) & (links["dst_layer"] == b.name)).to_numpy()
        m = np.zeros((a.n_units, b.n_units, *values.shape[1:]))
        m[links.loc[sel, "src_unit"].to_numpy(), links.loc[sel, "dst_unit"].to_numpy()] = values[sel]
        mats.append(m)
    return mats


def build_tables(est: LinkEstimates, acts: dict[str, np.ndarray], labels: np.ndarray | None,
                 graph: FlowGraph, *, base: str, beta: str | float, alpha: float,
                 n_permutations: int, tie_seed: int, seed: int, fdr: str = "bh",
                 order: str = "relevance", shared_critic: Callable[..., np.ndarray] | None = None
                 ) -> FlowTables:
    """The flow tables (see module docstring).

    ``shared_critic(links, ranks, betas) -> (P,)`` replaces eq. 2's link values by eq. 3's
    (ranks and betas: per source layer, from the redundancy order); those have no replicates.
    """
    n_rows = next(iter(acts.values())).shape[0]
    links, reps = _complete(est.links.copy(), est.link_reps, graph)
    links["flag"] = flag_links(links, base)
    used = links["flag"].to_numpy() == ""
    mi = np.where(used, np.nan_to_num(links["mi"].to_numpy(dtype=np.float64), nan=0.0), 0.0)
    mi_reps = np.where(used[:, None], np.nan_to_num(reps, nan=0.0), 0.0)
    if (~used).any():
        counts = links.loc[~used, "flag"].value_counts().to_dict()
        warnings.warn(
            f"{int((~used).sum())} of {len(links)} {base} link estimates are flagged {counts} and "
            "enter the flow as 0; see flow.links['flag'] (diverged: non-finite, negative: a lower "
            "bound below 0, unstable: half-sample spread larger than the estimate).",
            RuntimeWarning, stacklevel=3,
        )
    rdn = _redundancy(est, links, mi, graph, beta, order)
    src_idx = links["src_unit"].to_numpy()
    beta_src = np.zeros(len(links))
    red_src = np.zeros(len(links))
    red_src_reps = np.zeros_like(mi_reps)
    for name, (w, s, r, _) in rdn.items():
        sel = (links["src_layer"] == name).to_numpy()
        beta_src[sel], red_src[sel] = w[src_idx[sel]], s[src_idx[sel]]
        red_src_reps[sel] = r[src_idx[sel]]
    nif = red.nif_values(mi, beta_src, red_src)
    nif_reps = red.nif_values(mi_reps, beta_src[:, None], red_src_reps)
    if shared_critic is not None:
        ranks = {name: v[3] for name, v in rdn.items()}
        betas = {name: v[0] for name, v in rdn.items()}
        nif = np.clip(np.nan_to_num(shared_critic(links, ranks, betas), nan=0.0), 0.0, None)
        nif = np.where(used, nif, 0.0)
        nif_reps = np.full_like(nif_reps, np.nan)
    links["redundancy"], links["beta"], links["nif"] = red_src, beta_src, nif
    has_reps = nif_reps.shape[1] >= 2 and np.isfinite(nif_reps).all()
    if has_reps:
        _, lo, hi = half_sample_intervals(nif, nif_reps, n_rows)
        lo = np.maximum(lo, 0.0)  # eq. 2 values are >= 0 by construction
    else:
        lo = hi = np.full(len(nif), np.nan)
    links["nif_ci_low"], links["nif_ci_high"] = lo, hi

    mats = _matrices(links, nif, graph)
    a_mat = attr.chain(mats)
    a_reps = (attr.chain([np.moveaxis(m, 2, 0) for m in _matrices(links, nif_reps, graph)])
              if has_reps else np.zeros((0, *a_mat.shape)))  # (B, d, C)
    features = list(graph.layers[0].unit_names)
    outputs = list(graph.layers[-1].unit_names)
    attribution = pd.DataFrame(a_mat, index=pd.Index(features, name="feature"),
                               columns=pd.Index(outputs, name="output"))
    if has_reps:
        flat_reps = a_reps.reshape(a_reps.shape[0], -1).T
        a_std, a_lo, a_hi = half_sample_intervals(a_mat.ravel(), flat_reps, n_rows)
        a_lo = np.maximum(a_lo, 0.0)
    else:
        a_lo = a_hi = a_std = np.full(a_mat.size, np.nan)
    fi, ci = np.meshgrid(np.arange(len(features)), np.arange(len(outputs)), indexing="ij")
    attribution_ci = pd.DataFrame({
        "feature": np.array(features, dtype=object)[fi.ravel()],
        "output": np.array(outputs, dtype=object)[ci.ravel()],
        "attribution": a_mat.ravel(), "std": a_std, "ci_low": a_lo, "ci_high": a_hi,
    })

    n = next(iter(acts.values())).shape[0]
    link_p = zeroflow.link_pvalues(links, n, n_permutations, tie_seed, seed, labels)
    links["p_value"] = link_p
    nodes = _nodes(acts, graph, mats)
    mi_flows = attr.throughflow(_matrices(links, np.clip(mi, 0.0, None), graph))
    nodes["flow_mi"] = np.concatenate([i * o for i, o in mi_flows])
    nodes["redundancy_rank"] = np.concatenate(
        [rdn[layer.name][3] if layer.name in rdn else np.full(layer.n_units, -1)
         for layer in graph.layers])
    nodes = zeroflow.node_tests(links, link_p, nodes, alpha, fdr)
    raw = est.raw.copy()
    raw_mi = pd.DataFrame(0.0, index=pd.Index(features, name="feature"),
                          columns=pd.Index(outputs, name="class"))
    for f, c, v in zip(raw["feature"], raw["class"], raw["mi"], strict=True):
        raw_mi.iat[int(f), int(c)] = v
    return FlowTables(links, nodes, attribution, attribution_ci, raw_mi, raw, nif_reps, a_reps)


def _nodes(acts: dict[str, np.ndarray], graph: FlowGraph, mats: list[np.ndarray]
           ) -> pd.DataFrame:
    flows = attr.throughflow(mats)
    rows: list[dict[str, Any]] = []
    for k, layer in enumerate(graph.layers):
        inflow, outflow = flows[k]
        values = acts.get(layer.name)
        for u in range(layer.n_units):
            const = bool(values is not None and _constant(values[:, u].astype(np.float64)))
            rows.append({
                "layer": layer.name, "unit": u, "name": layer.unit_names[u], "kind": layer.kind,
                "constant": const,
                "mean": float(values[:, u].astype(np.float64).mean()) if values is not None
                else np.nan,
                "inflow": float(inflow[u]), "outflow": float(outflow[u]),
                "flow": float(inflow[u] * outflow[u]),
            })
    return pd.DataFrame(rows)
