"""The report's figures: one function per figure, each taking a table and returning a
``matplotlib.figure.Figure`` built with the object API (no pyplot, no global state), so a
test or a notebook can call any of them. All MI values are in nats.

- :func:`layer_target_heatmap` -- layers x targets, the strongest unit's MI in each cell;
- :func:`unit_target_heatmap` -- one layer: targets x units (or units x partner units), with
  significant cells marked;
- :func:`top_units_ci` -- the strongest units per target with their 95% intervals and the
  permutation-null floor;
- :func:`mi_vs_depth` -- per target, the strongest and the median unit MI along the layers;
- :func:`drift_scatter` -- baseline vs new estimates with their intervals, changed rows
  highlighted (an audit or a comparison);
- :func:`drift_by_layer` -- the fraction of each layer's units that changed, against the
  audit's threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from distmi.report.tables import (
    is_unit_target,
    layer_order,
    ok_rows,
    significance,
    strongest,
)

_CMAP = "viridis"
_CHANGED = "#d62728"
_QUIET = "#7f7f7f"


def _empty(message: str, size: tuple[float, float] = (6.0, 2.0)) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def layer_target_heatmap(table: pd.DataFrame, layers: Sequence[str] | None = None) -> Figure:
    """Layers (rows) x targets (columns): the largest MI of any unit of the layer."""
    t = ok_rows(table)
    if t.empty:
        return _empty("no finite estimates in the table")
    layers = list(layers) if layers is not None else layer_order(t)
    idx = t.groupby(["layer", "target"], sort=False)["estimate"].idxmax()
    best = t.loc[idx.to_numpy()]
    mat = best.pivot(index="layer", columns="target", values="estimate").reindex(
        index=[lay for lay in layers if lay in set(best["layer"])])
    units = best.pivot(index="layer", columns="target", values="unit").reindex(mat.index)
    n_l, n_t = mat.shape
    fig = Figure(figsize=(max(4.5, 1.1 * n_t + 3.0), max(2.5, 0.45 * n_l + 1.5)),
                 layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(mat.to_numpy(float), cmap=_CMAP, aspect="auto", vmin=0.0)
    ax.set_xticks(range(n_t), [str(c) for c in mat.columns], rotation=30, ha="right")
    ax.set_yticks(range(n_l), [str(i) for i in mat.index])
    ax.set_xlabel("target")
    ax.set_ylabel("layer")
    if n_l * n_t <= 400:
        top = np.nanmax(mat.to_numpy(float)) if np.isfinite(mat.to_numpy(float)).any() else 1.0
        for i in range(n_l):
            for j in range(n_t):
                v = mat.iat[i, j]
                if np.isfinite(v):
                    u = units.iat[i, j]
                    label = f"{v:.2f}" + ("" if u < 0 else f"\nu{int(u)}")
                    ax.text(j, i, label, ha="center", va="center", fontsize=7,
                            color="black" if v > 0.6 * top else "white")
    fig.colorbar(im, ax=ax, label="strongest unit MI (nats)")
    ax.set_title("Strongest MI per layer and target")
    return fig


def unit_target_heatmap(table: pd.DataFrame, layer: str) -> Figure:
    """One layer: targets x units (unit-target tables) or units x partner units, MI in nats.

    Significant cells (see :func:`distmi.report.tables.significance`) carry a white dot.
    """
    rows = table[table["layer"] == layer]
    if rows.empty:
        return _empty(f"layer {layer!r} has no rows")
    mask, rule = significance(rows)
    if is_unit_target(rows):
        mat = rows.pivot(index="target", columns="unit", values="estimate")
        sig = rows.assign(_sig=mask.to_numpy()).pivot(index="target", columns="unit",
                                                      values="_sig").reindex_like(mat)
        xlabel, ylabel = "unit", "target"
    else:
        mat = rows.pivot_table(index="unit", columns="target_unit", values="estimate",
                               aggfunc="first")
        sig = rows.assign(_sig=mask.to_numpy().astype(float)).pivot_table(
            index="unit", columns="target_unit", values="_sig", aggfunc="first").reindex_like(mat)
        xlabel, ylabel = f"unit of {rows['target'].iloc[0]}", "unit"
    n_y, n_x = mat.shape
    width = float(np.clip(3.0 + 0.05 * n_x, 6.0, 14.0))
    height = float(np.clip(1.9 + 0.35 * n_y, 2.6, 9.0))
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    values = mat.to_numpy(float)
    im = ax.imshow(values, cmap=_CMAP, aspect="auto", interpolation="nearest", vmin=0.0)
    if n_y <= 40:
        ax.set_yticks(range(n_y), [str(v) for v in mat.index])
    step = max(1, int(np.ceil(n_x / (width * 2.2))))  # about two labels per inch
    ax.set_xticks(range(0, n_x, step), [str(mat.columns[k]) for k in range(0, n_x, step)])
    sig_cells = np.argwhere(np.nan_to_num(sig.to_numpy(dtype=float)) > 0.5)
    if len(sig_cells):
        ax.scatter(sig_cells[:, 1], sig_cells[:, 0], s=max(2.0, 60.0 / max(1.0, n_x / 20)),
                   c="white", edgecolors="black", linewidths=0.3, marker="o",
                   label=f"significant: {rule}")
        fig.legend(loc="outside lower left", fontsize=7, frameon=False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{layer}: MI per unit ({int(np.sum(mask))} of {len(rows)} significant)",
                 loc="left")
    fig.colorbar(im, ax=ax, label="MI (nats)", fraction=0.04 if n_x > 40 else 0.08)
    return fig


def top_units_ci(table: pd.DataFrame, k: int = 10, targets: Sequence[str] | None = None,
                 max_panels: int = 6) -> Figure:
    """Per target, the ``k`` units with the largest MI above the null, with 95% intervals."""
    top = strongest(table, k)
    if targets is not None:
        top = top[top["target"].isin(list(targets))]
    names = list(pd.unique(top["target"]))[:max_panels]
    if not names:
        return _empty("no finite estimates in the table")
    ncols = min(3, len(names))
    nrows = int(np.ceil(len(names) / ncols))
    fig = Figure(figsize=(4.2 * ncols, 0.32 * k * nrows + 1.4 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        rows = top[top["target"] == name].iloc[::-1]
        y = np.arange(len(rows))
        est = rows["estimate"].to_numpy(float)
        lo = rows["ci_low"].to_numpy(float) if "ci_low" in rows else est
        hi = rows["ci_high"].to_numpy(float) if "ci_high" in rows else est
        err = np.vstack([np.clip(est - lo, 0, None), np.clip(hi - est, 0, None)])
        err = np.nan_to_num(err)
        ax.errorbar(est, y, xerr=err, fmt="o", color="#1f77b4", ms=4, capsize=2, lw=1,
                    label="MI, 95% interval")
        if "null_mean" in rows and rows["null_mean"].notna().any():
            ax.scatter(rows["null_mean"], y, marker="|", s=80, color=_QUIET, label="null mean")
        labels = [f"{lay}:{u}" if u >= 0 else str(lay)
                  for lay, u in zip(rows["layer"], rows["unit"], strict=True)]
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_xlabel("MI (nats)")
        ax.set_title(str(name), loc="left", fontsize=10)
        ax.set_xlim(left=0.0)
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    for ax in axes[len(names):]:
        ax.axis("off")
    fig.suptitle(f"Top {k} units per target (by MI above the permutation null)")
    return fig


def mi_vs_depth(table: pd.DataFrame, layers: Sequence[str] | None = None) -> Figure:
    """Per target: the strongest unit's MI (solid) and the median unit's MI (dashed) by layer."""
    t = ok_rows(table)
    if t.empty:
        return _empty("no finite estimates in the table")
    layers = list(layers) if layers is not None else layer_order(t)
    layers = [lay for lay in layers if lay in set(t["layer"])]
    fig = Figure(figsize=(max(5.5, 0.9 * len(layers) + 3.0), 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(layers))
    colors = [f"C{i % 10}" for i in range(t["target"].nunique())]
    for color, (name, rows) in zip(colors, t.groupby("target", sort=True), strict=True):
        g = rows.groupby("layer")["estimate"]
        ax.plot(x, g.max().reindex(layers).to_numpy(float), "-o", color=color, ms=4,
                label=f"{name} (max)")
        if rows.groupby("layer").size().max() > 1:
            ax.plot(x, g.median().reindex(layers).to_numpy(float), "--", color=color, lw=1,
                    alpha=0.8)
    ax.set_xticks(x, layers, rotation=30 if len(layers) > 4 else 0, ha="right" if len(layers) > 4 else "center")
    ax.set_xlabel("layer (input to output)")
    ax.set_ylabel("MI (nats)")
    ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=2)
    ax.set_title("MI by layer (solid: strongest unit, dashed: median unit)", loc="left",
                 fontsize=10)
    return fig


def drift_scatter(rows: pd.DataFrame, max_labels: int = 8) -> Figure:
    """Baseline (x) vs new (y) estimate per compared row with both 95% intervals; rows whose
    ``changed`` flag is set are drawn in red and the largest shifts are labelled."""
    both = rows[(rows["side"] == "both") & rows["estimate_base"].notna()
                & rows["estimate_new"].notna()]
    if both.empty:
        return _empty("no rows are present on both sides")
    fig = Figure(figsize=(6.2, 5.6), layout="constrained")
    ax = fig.subplots()
    for changed, color, label, z in ((False, _QUIET, "unchanged", 1), (True, _CHANGED, "changed", 2)):
        part = both[both["changed"] == changed]
        if part.empty:
            continue
        xb, yn = part["estimate_base"].to_numpy(float), part["estimate_new"].to_numpy(float)
        xerr = yerr = None
        if {"ci_low_base", "ci_high_base"} <= set(part.columns):
            xerr = np.nan_to_num(np.vstack([np.clip(xb - part["ci_low_base"], 0, None),
                                            np.clip(part["ci_high_base"] - xb, 0, None)]))
        if {"ci_low_new", "ci_high_new"} <= set(part.columns):
            yerr = np.nan_to_num(np.vstack([np.clip(yn - part["ci_low_new"], 0, None),
                                            np.clip(part["ci_high_new"] - yn, 0, None)]))
        ax.errorbar(xb, yn, xerr=xerr, yerr=yerr, fmt="o", ms=3 if not changed else 4,
                    color=color, ecolor=color, elinewidth=0.5, alpha=0.35 if not changed else 0.9,
                    label=f"{label} ({len(part)})", zorder=z)
    hi = float(np.nanmax(both[["estimate_base", "estimate_new"]].to_numpy(float)))
    lim = (min(0.0, float(np.nanmin(both[["estimate_base", "estimate_new"]].to_numpy(float)))),
           hi * 1.08 + 1e-9)
    ax.plot(lim, lim, color="black", lw=0.8, ls=":", label="no change")
    for rec in both[both["changed"]].nlargest(max_labels, "abs_delta").itertuples(index=False):
        ax.annotate(f"{rec.layer}:{rec.unit} {rec.target}", (rec.estimate_base, rec.estimate_new),
                    fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_xlabel("baseline MI (nats)")
    ax.set_ylabel("new MI (nats)")
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Baseline vs new, 95% intervals", loc="left")
    return fig


def drift_by_layer(layers: pd.DataFrame, threshold: float | None = None,
                   order: Sequence[str] | None = None) -> Figure:
    """Fraction of each layer's units that changed (bars; drifted layers red) and the audit's
    ``max_drift_fraction`` (dashed line)."""
    if layers.empty:
        return _empty("no layers compared")
    frame = layers.set_index("layer")
    names = [n for n in (order or sorted(frame.index, key=str)) if n in frame.index]
    frac = frame.loc[names, "frac_units_changed"].to_numpy(float)
    drifted = (frame.loc[names, "drifted"].to_numpy(bool) if "drifted" in frame.columns
               else np.zeros(len(names), bool))
    fig = Figure(figsize=(max(5.0, 0.8 * len(names) + 2.5), 3.4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x, np.nan_to_num(frac), color=[_CHANGED if d else "#1f77b4" for d in drifted])
    if threshold is not None:
        ax.axhline(threshold, color="black", ls="--", lw=1,
                   label=f"max drifted fraction {threshold:.0%}")
        ax.legend(fontsize=8)
    ax.set_xticks(x, names, rotation=30 if len(names) > 4 else 0,
                  ha="right" if len(names) > 4 else "center")
    ax.set_ylabel("fraction of units changed")
    ax.set_ylim(0.0, max(1e-3, float(np.nanmax(np.append(frac, threshold or 0.0)))) * 1.15)
    ax.set_title("Changed units per layer (red: drifted)", loc="left")
    return fig


__all__ = [
    "drift_by_layer",
    "drift_scatter",
    "layer_target_heatmap",
    "mi_vs_depth",
    "top_units_ci",
    "unit_target_heatmap",
]
