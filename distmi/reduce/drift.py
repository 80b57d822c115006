"""Drift verdicts from a comparison: which layers drifted, in what order, and why.

A compared row has *changed* when its BH q-value is at most ``fdr`` and its estimate moved
by at least ``min_effect`` nats (:func:`distmi.reduce.compare`); a unit has changed when any
of its rows has; a layer has **drifted** when the fraction of its compared units that changed
exceeds ``max_drift_fraction``. Rows present on one side only count as drift when
``missing_rows="drift"`` (a unit, layer or target appeared or vanished).

Layers are ranked by the fraction of units that changed, then by the mean |delta|: the layer
ranked first is where the model's internal information moved most. A change inside one layer
propagates to the layers after it (and can grow there), so the **onset** -- the first drifted
layer in depth order -- is where the change entered; the layers before it are unaffected.

The defaults below were chosen by the false-alarm study in ``benchmarks/bench_audit.py``
(docs/audit.md): an unchanged model audited on re-captured samples of the same distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from distmi.reduce.layers import layer_order

if TYPE_CHECKING:
    import pandas as pd

    from distmi.reduce.compare import Comparison

DEFAULT_MIN_EFFECT = 0.1
DEFAULT_FDR = 0.05
DEFAULT_MAX_DRIFT_FRACTION = 0.1
MISSING_ROWS = ("drift", "ignore")


def judge_layers(comparison: Comparison, max_drift_fraction: float = DEFAULT_MAX_DRIFT_FRACTION,
                 missing_rows: str = "drift", order: Sequence[str] | None = None
                 ) -> tuple[bool, list[str], pd.DataFrame]:
    """The verdict of a comparison (made with the audit's ``fdr`` and ``min_effect``).

    Args:
        comparison: the row-by-row comparison.
        max_drift_fraction: a layer drifts when more than this fraction of its units changed.
        missing_rows: ``"drift"`` (rows on one side only are drift) or ``"ignore"``.
        order: the layers in depth order (default: natural order of their names).

    Returns:
        (drift, reasons, layers): ``layers`` is ``comparison.by_layer`` plus ``drifted``,
        ``rank`` (1 = most drifted) and ``depth`` (position in ``order``), sorted by rank;
        ``reasons`` has one line per drifted layer and one for rows on one side only (when
        they count).
    """
    if missing_rows not in MISSING_ROWS:
        raise ValueError(f"missing_rows must be one of {MISSING_ROWS}, got {missing_rows!r}")
    layers = comparison.by_layer.copy()
    depth_order = list(order) if order is not None else layer_order(layers)
    depth = {name: k for k, name in enumerate(depth_order)}
    layers["depth"] = [depth.get(str(v), len(depth)) for v in layers["layer"]]
    layers["drifted"] = layers["frac_units_changed"].fillna(0.0) > max_drift_fraction
    layers = layers.sort_values(["frac_units_changed", "mean_abs_delta", "layer"],
                                ascending=[False, False, True], kind="mergesort",
                                na_position="last").reset_index(drop=True)
    layers["rank"] = range(1, len(layers) + 1)
    reasons = []
    for rec in layers[layers["drifted"]].itertuples(index=False):
        reasons.append(
            f"layer {rec.layer}: {rec.n_units_changed} of {rec.n_units} units changed "
            f"({rec.frac_units_changed:.1%} > {max_drift_fraction:.1%}); largest shift "
            f"{rec.top_delta:+.3f} nats at unit {rec.top_unit}, target {rec.top_target}"
        )
    rows = comparison.rows
    one = rows[rows["side"] != "both"]
    if len(one) and missing_rows == "drift":
        first = one.iloc[0]
        n_base = int((one["side"] == "base_only").sum())
        reasons.append(
            f"{len(one)} row(s) on one side only ({n_base} only in the baseline, "
            f"{len(one) - n_base} only in the new run; e.g. layer {first['layer']} unit "
            f"{first['unit']} target {first['target']}): units, layers or targets changed"
        )
    return bool(reasons), reasons, layers


def onset_layer(layers: pd.DataFrame) -> str | None:
    """The first drifted layer in depth order (where a change entered), or None."""
    hit = layers[layers["drifted"]]
    return None if hit.empty else str(hit.sort_values("depth", kind="mergesort")["layer"].iloc[0])
