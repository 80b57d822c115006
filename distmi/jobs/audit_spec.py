"""The ``audit:`` section of a job file: how a run is compared with a baseline and judged.

::

    audit:
      baseline: results/minilm-baseline   # committed results to compare with (or --baseline)
      min_effect: 0.1                     # nats: smaller shifts never count as changes
      fdr: 0.05                           # Benjamini-Hochberg level over all compared rows
      max_drift_fraction: 0.1             # a layer drifts when more of its units changed
      missing_rows: drift                 # rows on one side only: drift | ignore

A row (unit, target) has *changed* when its difference z test is significant at ``fdr`` after
BH correction and its estimate moved by at least ``min_effect`` nats; a unit has changed when
any of its rows has; a layer has *drifted* when the fraction of its units that changed
exceeds ``max_drift_fraction``. The audit reports drift when any layer drifted (or, with
``missing_rows: drift``, when rows appear or vanish). The section never changes the numbers,
so it is not part of the job's spec hash: adding or tuning it keeps the committed results.
The defaults (:mod:`distmi.reduce.drift`) were set by measuring false alarms of an unchanged
model on re-captured samples (docs/audit.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from distmi.reduce.drift import DEFAULT_FDR, DEFAULT_MAX_DRIFT_FRACTION, DEFAULT_MIN_EFFECT


class AuditSpec(BaseModel):
    """Thresholds of an audit (see module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline: str | None = Field(None, min_length=1)
    min_effect: float = Field(DEFAULT_MIN_EFFECT, ge=0.0, le=100.0)
    fdr: float = Field(DEFAULT_FDR, gt=0.0, lt=1.0)
    fdr_method: Literal["bh", "by"] = "bh"
    max_drift_fraction: float = Field(DEFAULT_MAX_DRIFT_FRACTION, ge=0.0, lt=1.0)
    missing_rows: Literal["drift", "ignore"] = "drift"
