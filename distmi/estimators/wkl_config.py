"""Settings of the weighted Kozachenko-Leonenko estimator (``method="wkl"``, ``base="wkl"``).

The number of neighbours and the weights depend on the dimension of each entropy term
(H(X) in d_x, H(Y) in d_y, H(X, Y) in d_x + d_y), so they are resolved per term by
:meth:`WKLConfig.plan`:

- ``k=None`` (default): 5 for d <= 3, where the weights are e_k (the unweighted estimator, as
  the SMI experiments used it on slices), and max(5, 2 d) for d >= 4, where the weights cancel
  floor(d/4) bias terms and larger k keeps their variance down (measured, docs/infoplane.md);
- an integer ``k`` is used for every term (clipped to n - 1 for small samples such as small
  classes of a label, with the weights recomputed for the clipped k).

``bias_orders=None`` (default) cancels the paper's floor(d/4) bias terms, but fewer where
their weights would have a Euclidean norm above 100 (from d ~ 12 on): the full cancellation's
weights grow like 10^2-10^10 with d, and the estimate's variance with their square (in the
SMI experiments' synthetic study WKL MI in 30 + 30 dimensions came out at +-10^4 nats with
the full cancellation). An explicit ``bias_orders`` is used as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import Field

from distmi.core.devices import Device, resolve_device
from distmi.core.errors import InvalidParameterError, TooFewSamplesError
from distmi.core.params import StrictParams, parse_params


class WKLConfig(StrictParams):
    """Settings of the WKL estimator."""

    k: int | None = Field(None, ge=1, description="neighbours (None: 5 for d <= 3, else 2 d)")
    weights: Literal["min-variance", "paper"] = "min-variance"
    bias_orders: int | None = Field(
        None, ge=0, description="bias terms cancelled (None: floor(d/4) while ||w|| <= 100)")
    metric: Literal["chebyshev", "euclidean"] = "chebyshev"
    jitter: float = Field(1e-10, ge=0.0, le=1e-3, description="noise in standard deviations")
    backend: Literal["auto", "compiled", "sorted", "kdtree", "brute"] = "auto"
    device: Device = "cpu"
    workers: int = Field(1, ge=-1, description="k-d tree query threads (-1: all cores)")
    n_jobs: int = Field(1, ge=1, le=256, description="threads for batched 1-D/2-D problems")
    ci_level: float = Field(0.95, gt=0.0, lt=1.0)
    memory_budget: float = Field(256e6, gt=1e6, description="bytes per brute-force block")

    def resolved(self) -> WKLConfig:
        """This config with ``device`` resolved (``"auto"`` -> ``"cuda"`` or ``"cpu"``)."""
        device = resolve_device(self.device)
        return self if device == self.device else self.model_copy(update={"device": device})

    def k_for(self, d: int) -> int:
        """Neighbours for an entropy term in dimension d (before clipping to the sample)."""
        if self.k is not None:
            return self.k
        return 5 if d <= 3 else max(5, 2 * d)

    def plan(self, d: int, n: int) -> EntropyPlan:
        """Neighbour orders and weights of one entropy term of n samples in R^d."""
        if n < 2:
            raise TooFewSamplesError(
                f"an entropy term needs at least 2 samples, got {n}; pass more samples."
            )
        k = min(self.k_for(d), n - 1)
        orders = self.bias_orders
        if orders is None:  # the paper's floor(d/4), fewer where the weights would explode
            orders = d // 4
            while orders > 0 and _norm(d, k, orders, self.weights) > MAX_AUTO_NORM:
                orders -= 1
        try:
            w = _weights(d, k, orders, self.weights)
        except ValueError as exc:
            raise InvalidParameterError(
                f"WKL weights for d={d} with k={k}: {exc}. Raise k, pass more samples, or set "
                "bias_orders lower (0 is the unweighted estimator)."
            ) from None
        orders = np.flatnonzero(w) + 1
        return EntropyPlan(d, k, orders, w[orders - 1], float(np.linalg.norm(w)))


@dataclass(frozen=True)
class EntropyPlan:
    """Resolved neighbour orders (J,) and their weights (J,) for one entropy term."""

    d: int
    k: int
    orders: np.ndarray
    weights: np.ndarray
    weight_norm: float


MAX_AUTO_NORM = 100.0  # largest ||w|| bias_orders=None accepts before cancelling fewer terms


def _norm(d: int, k: int, orders: int, scheme: str) -> float:
    try:
        return float(np.linalg.norm(_weights(d, k, orders, scheme)))
    except ValueError:  # too few orders for the constraints: treat as unusable
        return float("inf")


@lru_cache(maxsize=256)
def _weights(d: int, k: int, orders: int | None, scheme: str) -> np.ndarray:
    from distmi.kernels.wkl import wkl_weights

    w = wkl_weights(d, k, orders, scheme)
    w.setflags(write=False)
    return w


def parse_wkl_config(**params: object) -> WKLConfig:
    """Validate WKL parameters (unknown names are rejected with the allowed list)."""
    return parse_params(WKLConfig, "WKL", params)


def validate_wkl_params(params: dict) -> None:
    """``MethodSpec.validate_params`` of ``method="wkl"``."""
    parse_wkl_config(**params)
