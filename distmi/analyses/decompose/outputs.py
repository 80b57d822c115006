"""Writing one layer's explanation to a folder: arrays, tables, figures and checks.

Layout of ``<folder>``::

    decomposition/         the saved decomposition (distmi.decompose.load)
    maps.npz               total, decision, redundant, mask (n, H, W) or (n, T) in nats,
                           predictions, masked_predictions, labels[, valid]
    per_position.csv       sample means per position/token: I(Z; X_i), I(Z; X'_i), redundant
    class_means.csv        per class: mean total / decision / redundant information per sample
    class_tokens.csv       tokens only: per class and token string, mean maps and counts
    figures/*.png          per-sample maps alone and over the image (or coloured tokens),
                           per-class mean maps, deletion/insertion curves
    evaluation.json        deletion/insertion AUCs vs the attribution baselines (if evaluated)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from distmi.analyses.decompose import figures
from distmi.analyses.decompose.explain import MAP_NAMES, Explanation


def _sum_per_sample(values: np.ndarray) -> np.ndarray:
    return np.nansum(np.clip(values.reshape(len(values), -1), 0.0, None), axis=1)


def class_table(expl: Explanation, class_names: tuple[str, ...]) -> Any:
    """Per class (true label): samples, accuracy on X and X', and the mean per-sample sums of
    the positive parts of each map (nats)."""
    import pandas as pd

    labels = expl.labels if expl.labels is not None else expl.predictions
    rows = []
    for cls in np.unique(labels):
        sel = labels == cls
        row = {"class": class_names[cls] if cls < len(class_names) else str(cls),
               "n": int(sel.sum()),
               "accuracy": float((expl.predictions[sel] == cls).mean()),
               "masked_accuracy": float((expl.masked_predictions[sel] == cls).mean())}
        for name in (*MAP_NAMES, "mask"):
            row[f"{name}_sum"] = float(_sum_per_sample(expl.map(name)[sel]).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def class_token_table(expl: Explanation, tokens: list[list[str]],
                      class_names: tuple[str, ...]) -> Any:
    """Tokens only: mean total/decision/redundant/mask per (class, token string)."""
    import pandas as pd

    labels = expl.labels if expl.labels is not None else expl.predictions
    records = []
    for i, toks in enumerate(tokens):
        for t, tok in enumerate(toks):
            records.append({"class": class_names[labels[i]], "token": tok,
                            **{name: float(expl.map(name)[i, t])
                               for name in (*MAP_NAMES, "mask")}})
    frame = pd.DataFrame(records)
    grouped = frame.groupby(["class", "token"], sort=True)
    out = grouped[[*MAP_NAMES, "mask"]].mean()
    out["count"] = grouped.size()
    return out.reset_index().sort_values(["class", "decision"], ascending=[True, False])


def write_figures(folder: Path, expl: Explanation, bundle: Any, n_figures: int) -> list[str]:
    """Per-sample and per-class figures; returns the file names written."""
    written = []
    names = bundle.class_names
    for i in range(min(n_figures, len(expl))):
        label = names[expl.labels[i]] if expl.labels is not None else "?"
        title = (f"sample {i}: label {label}, predicted {names[expl.predictions[i]]}, "
                 f"on X' {names[expl.masked_predictions[i]]}")
        if expl.local == "conv":
            maps = {k: expl.map(k)[i] for k in MAP_NAMES}
            fig = figures.decomposition_figure(bundle.images[i], maps, title)
            written.append(figures.save_png(fig, folder / f"sample_{i}.png").name)
            fig = figures.overlay_figure(bundle.images[i], expl.decision[i],
                                         f"decision-related, sample {i}")
            written.append(figures.save_png(fig, folder / f"overlay_decision_{i}.png").name)
        else:
            toks = bundle.tokens[i]
            maps = {k: expl.map(k)[i][:len(toks)] for k in (*MAP_NAMES, "mask")}
            fig = figures.token_figure(toks, maps, title)
            written.append(figures.save_png(fig, folder / f"tokens_{i}.png").name)
    if expl.local == "conv":
        by = "label" if expl.labels is not None else "prediction"
        fig = figures.class_means_figure(expl.class_means(by=by), class_names=names)
        written.append(figures.save_png(fig, folder / "class_means.png").name)
    return written


def write_layer(folder: Path, dec: Any, expl: Explanation, bundle: Any, *, n_figures: int,
                evaluation: tuple[Any, list] | None) -> dict[str, Any]:
    """Write everything of one layer into ``folder``; returns the summary row."""
    folder.mkdir(parents=True, exist_ok=True)
    dec.save(folder / "decomposition", include_model=bundle.name == "digits")
    arrays = {name: expl.map(name) for name in (*MAP_NAMES, "mask")}
    arrays.update(predictions=expl.predictions, masked_predictions=expl.masked_predictions)
    if expl.labels is not None:
        arrays["labels"] = expl.labels
    if expl.valid is not None:
        arrays["valid"] = expl.valid
    np.savez_compressed(folder / "maps.npz", **arrays)
    expl.per_position().to_csv(folder / "per_position.csv", index=False)
    class_table(expl, bundle.class_names).to_csv(folder / "class_means.csv", index=False)
    if expl.local == "tokens" and bundle.tokens is not None:
        class_token_table(expl, bundle.tokens, bundle.class_names).to_csv(
            folder / "class_tokens.csv", index=False)
    fig_dir = folder / "figures"
    write_figures(fig_dir, expl, bundle, n_figures)
    summary: dict[str, Any] = {
        "layer": dec.layer,
        "local": dec.local,
        "n_explained": len(expl),
        "accuracy": float((expl.predictions == expl.labels).mean())
        if expl.labels is not None else float("nan"),
        "masked_accuracy": float((expl.masked_predictions == expl.labels).mean())
        if expl.labels is not None else float("nan"),
        "i_zx": float(np.nanmean(expl.total)),
        "i_zx_masked": float(np.nanmean(expl.decision)),
        "mean_lambda": float(np.nanmean(expl.mask)),
        "fit_seconds": float(dec.fit_seconds_),
    }
    if evaluation is not None:
        table, curves = evaluation
        (folder / "evaluation.json").write_text(
            json.dumps(table.to_dict(orient="records"), indent=1))
        fig = figures.curves_figure(curves, f"{bundle.name} {dec.layer}")
        figures.save_png(fig, fig_dir / "curves.png")
        for row in table.to_dict(orient="records"):
            summary[f"deletion_auc[{row['method']}]"] = row["deletion_auc"]
            summary[f"insertion_auc[{row['method']}]"] = row["insertion_auc"]
    return summary
