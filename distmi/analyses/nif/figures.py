"""Figures of a flow, one function per figure, each taking a table and returning a Figure.

Matplotlib's object API only (no pyplot state); the Agg backend is used, so nothing needs a
display. Save with ``fig.savefig(path, dpi=150)``.

* :func:`flow_graph` (links and neurons tables): layers as columns, nodes as dots, link
  width proportional to the link's NIF value, zero-flow nodes marked with a red cross;
* :func:`attribution_heatmap` (attribution matrix): features x outputs;
* :func:`pruning_curve_figure` (pruning curve table): accuracy vs fraction pruned per order;
* :func:`deletion_curve_figure` (deletion curve table): accuracy vs features deleted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def flow_graph(links: pd.DataFrame, neurons: pd.DataFrame, value: str = "nif",
               max_width: float = 6.0, title: str | None = None) -> Any:
    """The NIF graph: columns of nodes in layer order, links drawn with width ~ ``value``.

    Args:
        links: ``Flow.links`` (src_layer, src_unit, dst_layer, dst_unit and ``value``).
        neurons: ``Flow.neurons`` (layer, unit, name, zero_flow), in layer order.
        value: link column setting the width (``"nif"`` or ``"mi"``).
        max_width: line width of the strongest link, in points.
    """
    layers = list(dict.fromkeys(neurons["layer"]))
    sizes = neurons.groupby("layer", sort=False)["unit"].count().to_dict()
    tallest = max(sizes.values())
    fig, ax = _figure(max(5.0, 2.2 * len(layers)), max(3.5, 0.22 * tallest + 1.5))

    def pos(layer: str, unit: int) -> tuple[float, float]:
        n = sizes[layer]
        return float(layers.index(layer)), ((n - 1) / 2.0 - unit) / max(tallest - 1, 1)

    vals = links[value].to_numpy(dtype=np.float64)
    top = float(np.nanmax(vals)) if len(vals) and np.nanmax(vals) > 0 else 1.0
    for (sl, su, dl, du), v in zip(links[["src_layer", "src_unit", "dst_layer", "dst_unit"]]
                                   .itertuples(index=False, name=None), vals, strict=True):
        if not np.isfinite(v) or v <= 0:
            continue
        (x0, y0), (x1, y1) = pos(sl, int(su)), pos(dl, int(du))
        ax.plot([x0, x1], [y0, y1], color="tab:blue", alpha=0.15 + 0.6 * v / top,
                linewidth=max_width * v / top, solid_capstyle="round", zorder=1)
    zero = neurons["zero_flow"].astype(bool).to_numpy() if "zero_flow" in neurons else \
        np.zeros(len(neurons), bool)
    xy = np.array([pos(layer, int(u)) for layer, u in zip(neurons["layer"], neurons["unit"],
                                                           strict=True)])
    ax.scatter(xy[~zero, 0], xy[~zero, 1], s=30, color="black", zorder=2, label="node")
    if zero.any():
        ax.scatter(xy[zero, 0], xy[zero, 1], s=60, color="tab:red", marker="x", zorder=3,
                   label="zero flow")
    for k, layer in enumerate(layers):
        ax.text(k, 0.58, f"{layer}\n({sizes[layer]})", ha="center", va="bottom", fontsize=9)
    for end, ha in ((0, "right"), (len(layers) - 1, "left")):
        sub = neurons[neurons["layer"] == layers[end]]
        if len(sub) <= 16:
            for u, name in zip(sub["unit"], sub["name"], strict=True):
                x, y = pos(layers[end], int(u))
                ax.text(x + (-0.08 if ha == "right" else 0.08), y, str(name), ha=ha,
                        va="center", fontsize=7)
    ax.set_xlim(-0.8, len(layers) - 0.2)
    ax.set_ylim(-0.62, 0.75)
    ax.set_axis_off()
    ax.legend(loc="lower center", ncol=2, fontsize=8, frameon=False)
    ax.set_title(title or f"information flow (link width ~ {value}, nats)")
    return fig


def attribution_heatmap(attribution: pd.DataFrame, title: str | None = None,
                        annotate: bool | None = None) -> Any:
    """Heatmap of a features x outputs attribution matrix (``Flow.attribution``)."""
    values = attribution.to_numpy(dtype=np.float64)
    d, c = values.shape
    fig, ax = _figure(max(3.5, 0.9 * c + 2.5), max(2.5, 0.28 * d + 1.2))
    im = ax.imshow(values, aspect="auto", cmap="viridis")
    ax.set_xticks(range(c), [str(v) for v in attribution.columns], rotation=45, ha="right",
                  fontsize=8)
    step = max(1, d // 40)
    ax.set_yticks(range(0, d, step), [str(v) for v in attribution.index[::step]], fontsize=7)
    if annotate if annotate is not None else d * c <= 60:
        top = np.nanmax(values) if values.size else 0.0
        for i in range(d):
            for j in range(c):
                ax.text(j, i, f"{values[i, j]:.2g}", ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] < 0.6 * top else "black")
    fig.colorbar(im, ax=ax, label="attribution (eq. 4)")
    ax.set_title(title or "NIF attribution")
    return fig


def pruning_curve_figure(curve: pd.DataFrame, title: str | None = None) -> Any:
    """Accuracy vs fraction of hidden neurons pruned, one line per order (with random sd)."""
    fig, ax = _figure(5.0, 3.5)
    for name, g in curve.groupby("order", sort=False):
        g = g.sort_values("fraction")
        ax.plot(g["fraction"], g["accuracy"], marker="o", markersize=3, label=name)
        if (g["accuracy_sd"] > 0).any():
            ax.fill_between(g["fraction"], g["accuracy"] - g["accuracy_sd"],
                            g["accuracy"] + g["accuracy_sd"], alpha=0.2)
    ax.set_xlabel("fraction of hidden neurons pruned")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title(title or "pruning curve")
    return fig


def deletion_curve_figure(deletion: pd.DataFrame, title: str | None = None) -> Any:
    """Accuracy vs number of most important features replaced by their mean, per method."""
    fig, ax = _figure(5.0, 3.5)
    for name, g in deletion.groupby("method", sort=False):
        ax.plot(g["n_deleted"], g["accuracy"], marker="o", markersize=3, label=name)
    ax.set_xlabel("most important features deleted (replaced by the mean)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title(title or "deletion curve (lower is better)")
    return fig
