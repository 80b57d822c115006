"""Figures of information maps (matplotlib's object API; one function per figure, no pyplot).

Each function takes arrays and returns a :class:`matplotlib.figure.Figure`; :func:`save_png`
writes one. Maps at a layer's resolution are drawn over the whole image extent with bilinear
interpolation, so they line up with the input they explain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

MAP_CMAP = "magma"
TITLES = {"total": "total I(Z; X_i)", "decision": "decision-related I(Z; X'_i)",
          "redundant": "redundant", "mask": "mask lambda"}


def _extent(image: np.ndarray) -> tuple[float, float, float, float]:
    h, w = image.shape[:2]
    return (-0.5, w - 0.5, h - 0.5, -0.5)


def _image2d(image: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) or (H, W, 3) -> something imshow draws."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = np.moveaxis(image, 0, -1)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return image


def _norm(values: Sequence[np.ndarray]) -> Normalize:
    """One colour scale for maps compared side by side (0 to the largest value, in nats)."""
    top = max(float(np.nanmax(v)) for v in values) if values else 1.0
    return Normalize(vmin=0.0, vmax=top if top > 0 else 1.0)


def heatmap_figure(values: np.ndarray, title: str = "", *, unit: str = "nats") -> Figure:
    """One map alone, with a colour bar."""
    fig = Figure(figsize=(3.2, 2.8), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(values, cmap=MAP_CMAP, norm=_norm([values]), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.85, label=unit)
    return fig


def overlay_figure(image: np.ndarray, values: np.ndarray, title: str = "", *,
                   alpha: float = 0.55) -> Figure:
    """A map over the image it explains (the map stretched over the image, bilinear)."""
    img = _image2d(image)
    fig = Figure(figsize=(3.2, 2.8), layout="constrained")
    ax = fig.subplots()
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
    im = ax.imshow(values, cmap=MAP_CMAP, norm=_norm([values]), alpha=alpha,
                   extent=_extent(img), interpolation="bilinear")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.85, label="nats")
    return fig


def decomposition_figure(image: np.ndarray, maps: Mapping[str, np.ndarray], title: str = "",
                         *, alpha: float = 0.55) -> Figure:
    """One sample: the image, then each map alone (top row) and over the image (bottom row).
    ``maps`` e.g. {"total": ..., "decision": ..., "redundant": ...}; one colour scale for all."""
    img = _image2d(image)
    names = list(maps)
    norm = _norm([maps[k] for k in names])
    fig = Figure(figsize=(2.2 * (len(names) + 1), 4.4), layout="constrained")
    axes = fig.subplots(2, len(names) + 1, squeeze=False)
    for row in range(2):
        axes[row, 0].imshow(img, cmap="gray" if img.ndim == 2 else None)
        axes[row, 0].set_title("input" if row == 0 else "", fontsize=9)
    im = None
    for j, name in enumerate(names, start=1):
        im = axes[0, j].imshow(maps[name], cmap=MAP_CMAP, norm=norm, interpolation="nearest")
        axes[0, j].set_title(TITLES.get(name, name), fontsize=9)
        axes[1, j].imshow(img, cmap="gray" if img.ndim == 2 else None)
        axes[1, j].imshow(maps[name], cmap=MAP_CMAP, norm=norm, alpha=alpha,
                          extent=_extent(img), interpolation="bilinear")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes[:, 1:].ravel().tolist(), shrink=0.8, label="nats")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def class_means_figure(class_maps: Mapping[int, Mapping[str, np.ndarray]],
                       names: Sequence[str] = ("total", "decision", "redundant"),
                       class_names: Sequence[str] | None = None) -> Figure:
    """Per-class mean maps (``Explanation.class_means()``): one row per map, one column per class,
    one colour scale per row."""
    classes = sorted(class_maps)
    fig = Figure(figsize=(1.3 * len(classes) + 1.2, 1.5 * len(names) + 0.4), layout="constrained")
    axes = fig.subplots(len(names), len(classes), squeeze=False)
    for i, name in enumerate(names):
        norm = _norm([class_maps[c][name] for c in classes])
        im = None
        for j, cls in enumerate(classes):
            ax = axes[i, j]
            im = ax.imshow(class_maps[cls][name], cmap=MAP_CMAP, norm=norm,
                           interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                label = class_names[cls] if class_names is not None else str(cls)
                ax.set_title(f"{label} (n={int(class_maps[cls].get('count', 0))})", fontsize=8)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
        fig.colorbar(im, ax=axes[i, :].tolist(), shrink=0.9, label="nats")
    return fig


def token_figure(tokens: Sequence[str], maps: Mapping[str, np.ndarray], title: str = ""
                 ) -> Figure:
    """Tokens of one text coloured by each map (one row per map, shared colour scale)."""
    names = list(maps)
    values = [np.nan_to_num(np.asarray(maps[k], dtype=np.float64)[:len(tokens)], nan=0.0)
              for k in names]
    norm = _norm(values)
    cmap = colormaps[MAP_CMAP]
    width = max(6.0, 0.11 * sum(len(t) + 1 for t in tokens) + 1.5)
    fig = Figure(figsize=(width, 0.55 * len(names) + 0.5), layout="constrained")
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name, vals in zip(axes, names, values, strict=True):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.axis("off")
        ax.text(0.0, 0.5, TITLES.get(name, name), fontsize=8, ha="left", va="center")
        x = 0.2
        span = 0.8 / max(1, sum(len(t) + 1 for t in tokens))
        for tok, v in zip(tokens, vals, strict=True):
            shade = norm(v)
            ax.text(x, 0.5, tok, fontsize=8, ha="left", va="center", family="monospace",
                    color="white" if shade < 0.55 else "black",
                    bbox={"facecolor": cmap(shade), "edgecolor": "none", "pad": 1.5})
            x += span * (len(tok) + 1)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def curves_figure(curves: Sequence, title: str = "", metric: str = "accuracy") -> Figure:
    """Deletion (left) and insertion (right) curves of several methods, AUCs in the legend."""
    fig = Figure(figsize=(7.5, 3.0), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=True):
        for curve in (c for c in curves if c.kind == kind):
            auc = curve.auc_accuracy if metric == "accuracy" else curve.auc_probability
            ax.plot(curve.fraction, getattr(curve, metric), label=f"{curve.method} ({auc:.3f})")
        ax.set_title(f"{kind} (AUC)", fontsize=9)
        ax.set_xlabel("fraction of positions " + ("removed" if kind == "deletion" else "kept"))
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_png(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG (folders created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, format="png")
    return out
