"""NIF: neuron-level information flow, attribution matrices and pruning (``distmi.nif``).

    import distmi
    flow = distmi.nif.information_flow(model, X, y)        # links, eq. 2, eq. 4, zero flow
    flow.links; flow.attribution; flow.attribution_ci; flow.zero_flow
    pruned = flow.prune(model)                             # zero-flow neurons removed
    flow.save("out/flow"); flow = distmi.nif.load("out/flow")

Method, choices and measured comparisons: ``docs/nif.md``. Torch is imported when a model is
captured, not on ``import distmi``.
"""

from __future__ import annotations

from distmi.analyses.nif.api import (
    DEFAULT_ESTIMATOR,
    flow_from_activations,
    information_flow,
)
from distmi.analyses.nif.flow import Flow
from distmi.analyses.nif.graph import FlowGraph, NodeLayer, build_graph
from distmi.analyses.nif.io import load_flow as load
from distmi.analyses.nif.links import EngineSettings

__all__ = [
    "DEFAULT_ESTIMATOR",
    "EngineSettings",
    "Flow",
    "FlowGraph",
    "NodeLayer",
    "build_graph",
    "flow_from_activations",
    "information_flow",
    "load",
]
