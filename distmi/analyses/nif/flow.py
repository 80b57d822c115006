"""The result of :func:`distmi.nif.information_flow`: links, attribution, zero flow, pruning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distmi.analyses.nif.graph import FlowGraph


@dataclass
class Flow:
    """Neuron-level information flow of one classifier on one data set (values in nats).

    Attributes:
        graph: the node columns (input, hidden..., outputs) and their modules.
        links: one row per link: ``src_layer, src_unit, dst_layer, dst_unit, mi, std, ci_low,
            ci_high`` (the link MI and its half-sample interval), ``redundancy`` (sum of
            the source unit's MI with earlier units of its layer), ``beta``, ``nif`` (eq. 2,
            >= 0) with ``nif_ci_low/high``, ``status`` (``constant``: an end is constant, MI
            exactly 0), ``flag`` (why an estimate is not used, '' if used), ``rank_mi`` and
            ``p_value`` (the link's permutation test).
        neurons: one row per node: ``layer, unit, name, kind, constant, mean, inflow, outflow,
            flow`` (information through the node: sum over all input-to-output paths that
            visit it; eq. 2 link values), ``flow_mi`` (the same with the raw link MI),
            ``redundancy_rank`` (position in eq. 2's order), ``p_in, p_out, p_value, q_value,
            zero_flow``.
        attribution: eq. 4, features x outputs (DataFrame).
        attribution_ci: long table ``feature, output, attribution, std, ci_low, ci_high``
            from the propagated half-sample replicates.
        raw_mi: I(feature; 1[y = c]), features x classes (the seed's "raw mutual information").
        raw_table: the same with std, interval, status.
        settings: estimator, parameters, beta, bound, seeds, test settings.
        info: provenance: versions, data hash, engine jobs, timings.
        nif_replicates: (n_links, B) eq. 2 link values on each half-sample.
        attribution_replicates: (B, d, C).
    """

    graph: FlowGraph
    links: pd.DataFrame
    neurons: pd.DataFrame
    attribution: pd.DataFrame
    attribution_ci: pd.DataFrame
    raw_mi: pd.DataFrame
    raw_table: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    nif_replicates: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    attribution_replicates: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))

    @property
    def zero_flow(self) -> list[tuple[str, int]]:
        """(layer, unit) of the input and hidden nodes whose flow is not distinguishable
        from 0 at FDR ``settings['alpha']`` (see :mod:`distmi.analyses.nif.zeroflow`)."""
        z = self.neurons[self.neurons["zero_flow"].astype(bool)]
        return [(str(a), int(b)) for a, b in zip(z["layer"], z["unit"], strict=True)]

    @property
    def flagged(self) -> pd.DataFrame:
        """Links whose estimate is not used (neural bounds: negative, unstable, diverged)."""
        return self.links[self.links["flag"] != ""]

    def link_matrix(self, src_layer: str, column: str = "nif") -> np.ndarray:
        """The (n_src, n_dst) matrix of ``column`` between ``src_layer`` and the next layer."""
        names = self.graph.names
        if src_layer not in names[:-1]:
            raise KeyError(f"{src_layer!r} is not a source layer; source layers are {names[:-1]}.")
        a = self.graph.layer(src_layer)
        b = self.graph.layers[names.index(src_layer) + 1]
        sel = self.links[(self.links["src_layer"] == a.name) & (self.links["dst_layer"] == b.name)]
        m = np.zeros((a.n_units, b.n_units))
        m[sel["src_unit"].to_numpy(int), sel["dst_unit"].to_numpy(int)] = sel[column].to_numpy()
        return m

    def prune(self, model: Any, units: list[tuple[str, int]] | None = None) -> Any:
        """A copy of ``model`` with the zero-flow hidden neurons (or ``units``) removed.

        Incoming weights and bias are zeroed, outgoing weights zeroed after folding the
        neuron's (constant) output into the next layer's bias; see
        :mod:`distmi.analyses.nif.pruning`. The report of the last call is ``self.last_prune``.
        """
        from distmi.analyses.nif.pruning import prune_neurons

        todo = self.zero_flow if units is None else list(units)
        values = {(str(a), int(u)): float(m) for a, u, m in
                  zip(self.neurons["layer"], self.neurons["unit"], self.neurons["mean"],
                      strict=True)}
        pruned, report = prune_neurons(model, self.graph, todo, values)
        self.last_prune = report
        return pruned

    def save(self, path: str | Path) -> Path:
        """Write Parquet tables and ``summary.json`` to the folder ``path`` (see :func:`load`)."""
        from distmi.analyses.nif.io import save_flow

        return save_flow(self, path)

    def summary(self) -> dict[str, Any]:
        """Counts and top features, JSON-ready."""
        hidden = self.neurons[self.neurons["kind"] == "hidden"]
        top = self.attribution.sum(axis=1).sort_values(ascending=False)
        return {
            "layers": {layer.name: layer.n_units for layer in self.graph.layers},
            "n_links": len(self.links),
            "n_flagged_links": int((self.links["flag"] != "").sum()),
            "n_zero_flow": len(self.zero_flow),
            "n_zero_flow_hidden": int(hidden["zero_flow"].sum()),
            "n_constant_hidden": int(hidden["constant"].sum()),
            "zero_flow": [list(z) for z in self.zero_flow],
            "top_features": [str(f) for f in top.index[:5]],
            "estimator": self.settings.get("estimator"),
            "beta": self.settings.get("beta"),
            "unit": "nat",
        }

    def __repr__(self) -> str:
        cols = " -> ".join(f"{layer.name}({layer.n_units})" for layer in self.graph.layers)
        return (f"Flow({cols}; {len(self.links)} links by {self.settings.get('estimator')!r}, "
                f"beta={self.settings.get('beta')!r}, {len(self.zero_flow)} zero-flow nodes)")
