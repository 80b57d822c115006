"""Eq. 4 of NIF: the attribution matrix as a chain of link matrices.

With N^l the (n_l, n_{l+1}) matrix of link values between node columns l and l + 1, the
seed's attribution

    A_ij = sum over directed paths p from input i to output j of prod_{links in p} I(link)

factorises layer by layer: the paths from i to j through layer l + 1 are the paths to each
unit k of layer l + 1 followed by the link k -> j, so

    A = N^1 N^2 ... N^L,          shape (d, C).

The same factorisation gives the information flowing *through* a node u of layer l: the sum
over all input-to-output paths that visit u is in_l[u] * out_l[u], with
in_l = 1^T N^1 ... N^l (information arriving from all inputs) and
out_l = N^{l+1} ... N^L 1 (information reaching all outputs). Products of nats have unit
nat^L; only comparisons within one network are meaningful.

Replicates propagate the same way: replicate b of every link comes from the same half-sample
of rows (:mod:`distmi.analyses.nif.linkmethod`), so A^(b) = N^1(b) ... N^L(b) is a replicate
of A, and the interval of A is A plus the centred percentiles of its replicates (the
half-sample interval of :func:`distmi.analyses.nif.linkmethod.half_sample_intervals`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def chain(mats: Sequence[np.ndarray]) -> np.ndarray:
    """N^1 N^2 ... N^L for matrices (n_l, n_{l+1}), or batched (B, n_l, n_{l+1}) stacks."""
    out = mats[0]
    for m in mats[1:]:
        out = out @ m
    return out


def throughflow(mats: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(in_l, out_l) for node columns l = 0..L (inputs ... outputs), each shape (n_l,).

    ``in_0`` is all ones (a feature is its own source) and ``out_L`` all ones.
    """
    n_cols = len(mats) + 1
    inflow = [np.ones(mats[0].shape[0])]
    for m in mats:
        inflow.append(inflow[-1] @ m)
    outflow = [np.ones(mats[-1].shape[1])]
    for m in reversed(mats):
        outflow.insert(0, m @ outflow[0])
    return [(inflow[k], outflow[k]) for k in range(n_cols)]


def path_sum(mats: Sequence[np.ndarray]) -> np.ndarray:
    """Eq. 4 literally: enumerate every path and add the products (for checking; O(prod n_l))."""
    d, c = mats[0].shape[0], mats[-1].shape[1]
    out = np.zeros((d, c))

    def walk(layer: int, unit: int, prod: float, start: int) -> None:
        if layer == len(mats):
            out[start, unit] += prod
            return
        for nxt in range(mats[layer].shape[1]):
            walk(layer + 1, nxt, prod * mats[layer][unit, nxt], start)

    for i in range(d):
        walk(0, i, 1.0, i)
    return out
