"""Eq. 2 of NIF: relevance minus beta times redundancy, per link.

The seed writes the information a layer X passes to a neuron Q_k as (Bollacker & Ghosh 1996;
the MIFS criterion of Battiti 1994)

    I(X; Q_k) = sum_i I(X_i; Q_k | X_1..X_{i-1}),
    I(X_i; Q_k | X_<i) ~ I(X_i; Q_k) - beta_i * sum_{j<i} I(X_i; X_j)          (eq. 2)

so the link X_i -> Q_k carries its *relevance* I(X_i; Q_k) minus beta_i times its
*redundancy* with the units that come before it. Which units come first is a choice:

=============  =======================================================================
``relevance``  (default) units in decreasing order of their relevance to the next layer,
               sum_k I(X_i; Q_k), ties by index: the greedy order of MIFS/mRMR, in which
               the most relevant unit keeps all its information and a unit loses what it
               shares with more relevant ones. The result does not depend on how units
               happen to be numbered.
``index``      units in index order, the seed's literal sum over j = 1..i-1 (the first
               feature or neuron of every layer is never penalised).
=============  =======================================================================

The order is fixed from the point estimates and reused for every replicate. The link value
used downstream is ``nif = max(relevance - beta_i * redundancy_i, 0)``: a link
cannot carry negative information, and a clipped link means "everything it carries was
already carried by earlier units".

``beta`` choices:

==========  =====================================================================
``"mean"``  beta_i = 1 / (i - 1): the mean redundancy, as in mRMR (Peng, Long & Ding
            2005); the default. The first unit has no redundancy term.
``"none"``  beta = 0: links are the raw pairwise MI (no redundancy jobs run).
a float     a fixed beta >= 0 for every unit (Battiti's MIFS; he suggests 0.5-1).
==========  =====================================================================

The redundancy sums of units are computed from the ``unit-unit`` pair estimates, clipped at
0 (MI is non-negative; k-NN estimates of independent pairs scatter around 0), on the point
estimates and on every half-sample replicate alike.
"""

from __future__ import annotations

import numbers

import numpy as np

from distmi.core.errors import InvalidParameterError

BETA_NAMES = ("mean", "none")
ORDERS = ("relevance", "index")


def check_beta(beta: object) -> str | float:
    """Validate ``beta``: ``"mean"``, ``"none"`` (or None / 0) or a float >= 0."""
    if beta is None:
        return "none"
    if isinstance(beta, str):
        key = beta.lower()
        if key in BETA_NAMES:
            return key
    elif isinstance(beta, numbers.Real) and not isinstance(beta, bool):
        value = float(beta)
        if np.isfinite(value) and value >= 0:
            return "none" if value == 0 else value
    raise InvalidParameterError(
        f"beta must be 'mean' (1/(i-1), mRMR), 'none' (no redundancy term) or a number >= 0, "
        f"got {beta!r}."
    )


def beta_weights(beta: str | float, n_units: int, ranks: np.ndarray | None = None
                 ) -> np.ndarray:
    """beta_i per unit, shape (n,): unit at position r (0-based) has r earlier units."""
    i = (np.arange(n_units) if ranks is None else np.asarray(ranks)).astype(np.float64)
    if beta == "none":
        return np.zeros(n_units)
    if beta == "mean":
        return np.where(i > 0, 1.0 / np.maximum(i, 1.0), 0.0)
    return np.where(i > 0, float(beta), 0.0)


def check_order(order: object) -> str:
    """Validate the redundancy order: ``"relevance"`` or ``"index"``."""
    if order not in ORDERS:
        raise InvalidParameterError(
            f"redundancy_order must be one of {list(ORDERS)}, got {order!r}: 'relevance' ranks "
            "units by their MI with the next layer (MIFS/mRMR), 'index' is the seed's order."
        )
    return str(order)


def unit_ranks(relevance: np.ndarray, order: str) -> np.ndarray:
    """Position of each unit in the redundancy order (0 = first), shape (n,).

    Args:
        relevance: shape (n,) total relevance sum_k I(X_i; Q_k) of each unit.
        order: ``"relevance"`` (decreasing relevance, ties by index) or ``"index"``.
    """
    n = len(relevance)
    if order == "index":
        return np.arange(n)
    first = np.lexsort((np.arange(n), -np.nan_to_num(np.asarray(relevance, np.float64))))
    ranks = np.empty(n, dtype=np.int64)
    ranks[first] = np.arange(n)
    return ranks


def redundancy_sums(unit_i: np.ndarray, unit_j: np.ndarray, mi: np.ndarray, n_units: int,
                    ranks: np.ndarray | None = None) -> np.ndarray:
    """sum over earlier units j of max(I(X_i; X_j), 0), per unit, from unordered pairs.

    Args:
        unit_i, unit_j: shape (P,) unit indices of the pairs (either order).
        mi: shape (P,) or (P, B) estimates (replicates in columns).
        n_units: units of the layer.
        ranks: shape (n_units,) position of each unit in the order (default: index order).

    Returns:
        shape (n_units,) or (n_units, B).
    """
    r = np.arange(n_units) if ranks is None else np.asarray(ranks)
    ui, uj = np.asarray(unit_i, np.int64), np.asarray(unit_j, np.int64)
    later = np.where(r[ui] > r[uj], ui, uj)
    vals = np.clip(np.nan_to_num(np.asarray(mi, dtype=np.float64), nan=0.0), 0.0, None)
    out = np.zeros((n_units, *vals.shape[1:]))
    np.add.at(out, later, vals)
    return out


def nif_values(relevance: np.ndarray, beta_src: np.ndarray, redundancy_src: np.ndarray
               ) -> np.ndarray:
    """Eq. 2 link values max(relevance - beta_i * redundancy_i, 0); any matching shapes."""
    return np.clip(relevance - beta_src * redundancy_src, 0.0, None)
