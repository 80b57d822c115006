"""Seeded inputs of the rank screen: tie-broken ranks, null-table shapes and null statistics.

The screen's statistics (:mod:`distmi.kernels.rank_screen`) see only ranks, so everything
random about them is fixed here, from stable ids, and shared by the sweep engine and
:func:`distmi.pairwise_mi`:

- **ties** of a variable are broken by the order of a uniform key vector drawn from
  ``derive_rng(seed, "screen-ties", *variable_id)`` (only for variables that have ties), so a
  unit's ranks do not depend on the batch it is in;
- a **null table** is the statistics of B permutations of one *shape*. Under H0 the rank pair is
  a uniformly random permutation pair, so the table of a shape is that of (0..n-1, pi_b) for a
  continuous partner, and of (pi_b, canonical labels with the same class counts) for a
  categorical one; ``pi_b = derive_rng(seed, "screen-null", null_key, b).permutation(n)``.
  The shape's ``null_key`` names it: ``"continuous|n=2000"`` or
  ``"categorical|n=2000|counts=1000,600,400"`` (class counts in decreasing order: the
  statistics do not depend on which class has which count).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from distmi.core.seeds import derive_rng
from distmi.kernels.rank_screen import rank_rows, screen_statistics

KeyPart = str | int


def continuous_null_key(n: int) -> str:
    """The null-table key of continuous partners at sample size n."""
    return f"continuous|n={int(n)}"


def categorical_null_key(labels: np.ndarray) -> str:
    """The null-table key of a label vector (codes 0..C-1): its class counts, decreasing."""
    counts = np.sort(np.bincount(np.asarray(labels, dtype=np.int64)))[::-1]
    return f"categorical|n={int(counts.sum())}|counts=" + ",".join(str(int(c)) for c in counts)


def parse_null_key(key: str) -> tuple[int, tuple[int, ...] | None]:
    """(n, class counts or None for continuous) of a null key."""
    parts = key.split("|")
    n = int(parts[1].removeprefix("n="))
    if parts[0] == "continuous":
        return n, None
    counts = tuple(int(c) for c in parts[2].removeprefix("counts=").split(","))
    return n, counts


def tie_broken_ranks(values: np.ndarray, seed: int, ids: Sequence[tuple[KeyPart, ...]]) -> np.ndarray:
    """Ranks of each column with ties broken by that column's seeded random key.

    Args:
        values: shape (n, m) finite floats (one variable per column).
        seed: root seed.
        ids: m stable ids, e.g. ``("unit", layer, 17)``; the tie-break key of column c is drawn
            from ``derive_rng(seed, "screen-ties", *ids[c])``.

    Returns:
        shape (m, n) int32 ranks, row c a permutation of 0..n-1.
    """
    vals = np.ascontiguousarray(np.asarray(values, dtype=np.float64).T)
    n = vals.shape[1]

    def key(row: int) -> np.ndarray:
        return derive_rng(seed, "screen-ties", *ids[row]).random(n)

    return rank_rows(vals, tie_source=key)


def permutations(seed: int, null_key: str, start: int, stop: int, n: int) -> np.ndarray:
    """Permutations ``start..stop-1`` of a null table, shape (stop - start, n) int32."""
    out = np.empty((stop - start, n), dtype=np.int32)
    for row, b in enumerate(range(start, stop)):
        out[row] = derive_rng(seed, "screen-null", null_key, b).permutation(n)
    return out


def null_statistics(components: tuple[str, ...], k: int, null_key: str, seed: int, start: int,
                    stop: int, threads: int = 1) -> np.ndarray:
    """Statistics of permutations ``start..stop-1`` of the shape ``null_key``.

    Returns:
        shape (stop - start, len(components)) float64; row b depends only on (seed, key, b).
    """
    n, counts = parse_null_key(null_key)
    perms = permutations(seed, null_key, start, stop, n)
    rows = np.arange(stop - start, dtype=np.int64)
    if counts is None:
        ident = np.arange(n, dtype=np.int32)[None, :]
        pairs = np.stack([np.zeros_like(rows), rows], axis=1)
        return screen_statistics(components, ident, perms, pairs, k=k, threads=threads)
    labels = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    pairs = np.stack([rows, np.zeros_like(rows)], axis=1)
    return screen_statistics(components, perms, labels, pairs, k=k, discrete=True,
                             threads=threads)


def auto_permutations(max_family: int, fdr: float | None, n_statistics: int = 1,
                      fdr_method: str = "bh", floor: int = 2000, cap: int = 100_000) -> int:
    """Permutations per null table so that one pair of the largest family can be discovered.

    BH discovers a lone pair of a family of m tests only if its p-value is <= fdr / m (BY:
    fdr / (m c(m)), c(m) = sum_{i <= m} 1 / i). The smallest permutation p-value is
    1 / (B + 1); combining C statistics by min-P, a pair that beats every permutation in one
    statistic but not in the others gets up to C / (B + 1). So
    B + 1 >= (C + 1) m [c(m)] / fdr, at least ``floor`` and at most ``cap``.
    """
    if fdr is None:
        return floor
    m = max(int(max_family), 1)
    scale = float(np.sum(1.0 / np.arange(1, m + 1))) if fdr_method == "by" else 1.0
    need = int(np.ceil((n_statistics + 1) * m * scale / fdr)) - 1
    return int(min(max(floor, need), cap))
