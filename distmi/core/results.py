"""Result types shared by every estimator."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

STATUSES = {
    "ok": "nothing known to be wrong",
    "diverged": "training produced a non-finite loss; the value is NaN",
    "negative": "a lower bound held out far below zero: the critic does not generalise",
    "capped": "the value sits at the bound's ceiling (InfoNCE: log of the batch size); "
              "the MI may be much larger",
}
"""The documented values of ``MIResult.status`` (the engine's ``status`` column adds
``"constant"`` and ``"nonfinite"`` for units it could not estimate)."""


@dataclass(frozen=True)
class MIResult:
    """One mutual-information estimate.

    Attributes:
        value: point estimate in nats.
        std: standard error of ``value`` (bootstrap std, ddof=1), ``nan`` when not computed.
        ci: (low, high) confidence interval in nats (95% by default), ``(nan, nan)`` when absent.
        n_samples: number of joint samples the estimate used.
        method: registry name of the estimator (``"gmm"``, ``"ksg"``, ...).
        params: the estimator parameters that produced it (seed included).
        diagnostics: method-specific extras (e.g. ``n_components``, ``converged``). A result
            that is not to be trusted says why in ``diagnostics["status"]`` (see
            :attr:`status`).
        unit: always ``"nat"``.
    """

    value: float
    std: float
    ci: tuple[float, float]
    n_samples: int
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    unit: str = "nat"

    @property
    def status(self) -> str:
        """``"ok"``, or why the value is not to be trusted (see :data:`STATUSES`)."""
        return str(self.diagnostics.get("status", "ok"))

    @property
    def ci_low(self) -> float:
        return self.ci[0]

    @property
    def ci_high(self) -> float:
        return self.ci[1]

    def to_bits(self) -> float:
        """The estimate in bits."""
        return self.value / math.log(2.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary (numpy values converted to Python scalars/lists)."""
        return _jsonable(asdict(self))

    def __repr__(self) -> str:
        return (
            f"MIResult(value={self.value:.4f} nat, std={self.std:.4f}, "
            f"ci=({self.ci[0]:.4f}, {self.ci[1]:.4f}), n_samples={self.n_samples}, "
            f"method={self.method!r})"
        )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates.

    Args:
        samples: shape (B,) replicate estimates.
        level: coverage level in (0, 1).
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size < 2:
        return (math.nan, math.nan)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return (float(low), float(high))
