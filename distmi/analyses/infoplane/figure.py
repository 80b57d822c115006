"""The information-plane figure: I(L; Y) against I(X; L), one trajectory per layer over epochs.

Made with matplotlib's object API only (no global state), from a plane table, so tests and
reports can call it: points are coloured by epoch (one colour bar), each layer is a line with
its own marker and line colour, and every point carries its interval as whiskers in both directions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINE_COLORS = ("tab:red", "tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink",
               "tab:gray", "tab:olive", "tab:cyan", "black")


def plane_figure(table: Any, *, title: str | None = None, layers: list[str] | None = None,
                 cmap: str = "viridis", figsize: tuple[float, float] = (7.0, 5.2)):
    """Draw the information plane of ``table`` (columns ``epoch``, ``layer``, ``i_xl``,
    ``i_ly`` and their ``_ci_low`` / ``_ci_high``); return the matplotlib ``Figure``.

    Args:
        layers: order of the trajectories (default: the table's order of first appearance).
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    frame = table.sort_values("epoch")
    layers = layers or list(dict.fromkeys(table["layer"]))
    norm = Normalize(vmin=float(frame["epoch"].min()), vmax=max(float(frame["epoch"].max()),
                                                               float(frame["epoch"].min()) + 1))
    mapper = ScalarMappable(norm=norm, cmap=cmap)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    for i, layer in enumerate(layers):
        rows = frame[frame["layer"] == layer]
        if rows.empty:
            continue
        x, y = rows["i_xl"].to_numpy(float), rows["i_ly"].to_numpy(float)
        ax.plot(x, y, color=LINE_COLORS[i % len(LINE_COLORS)], linewidth=1.2, alpha=0.8,
                zorder=1)
        colors = mapper.to_rgba(rows["epoch"].to_numpy(float))
        xerr = np.abs(np.vstack([x - rows["i_xl_ci_low"], rows["i_xl_ci_high"] - x]))
        yerr = np.abs(np.vstack([y - rows["i_ly_ci_low"], rows["i_ly_ci_high"] - y]))
        for k in range(len(x)):
            ax.errorbar(x[k], y[k], xerr=np.nan_to_num(xerr[:, k : k + 1]),
                        yerr=np.nan_to_num(yerr[:, k : k + 1]), fmt="none", ecolor=colors[k],
                        elinewidth=0.8, alpha=0.8, zorder=2)
        ax.scatter(x, y, c=colors, marker=MARKERS[i % len(MARKERS)], s=34, edgecolors="black",
                   linewidths=0.4, zorder=3, label=f"{layer}")
    ax.set_xlabel("I(X; L)  [nats]")
    ax.set_ylabel("I(L; Y)  [nats]")
    if title:
        ax.set_title(title)
    legend = ax.legend(title="layer", loc="best", fontsize=8)
    for i, handle in enumerate(legend.legend_handles):
        handle.set_facecolor("white")
        handle.set_edgecolor(LINE_COLORS[i % len(LINE_COLORS)])
    fig.colorbar(mapper, ax=ax, label=str(table.attrs.get("dimension", "epoch")))
    return fig


def save_figure(fig: Any, path: Any, dpi: int = 130) -> None:
    """Write ``fig`` as PNG (or any format matplotlib knows from the suffix)."""
    fig.savefig(path, dpi=dpi)
