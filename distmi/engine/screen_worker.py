"""The screen pass inside a :class:`~distmi.engine.worker.BatchWorker`: null tables and screen
statistics of batches of pairs.

- A **null batch** returns rows ``(null_key, permutation, null_<statistic>...)``: the rank
  statistics of permutations ``start..stop-1`` of its shape
  (:func:`distmi.reduce.screen_stats.null_statistics`).
- A **screen batch** returns one row per pair: ``screen_<statistic>`` values of the rank
  statistics, the ``null_key`` of the pair's null table, ``status`` (``ok``, ``constant``:
  statistics 0, or ``nonfinite``: NaN) and ``n_samples``.

Ranks are computed once per unit and per target and kept in the worker's LRU cache (a unit's
ranks are shared by all its targets; the float values they come from are not kept); ties are broken by the unit's seeded key
(``("unit", layer, index)`` or ``("target", name)``), so they do not depend on batching.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from distmi.reduce.screen_stats import (
    categorical_null_key,
    continuous_null_key,
    null_statistics,
    tie_broken_ranks,
)
from distmi.reduce.screen_table import null_columns, statistic_columns

if TYPE_CHECKING:
    from distmi.engine.plan import WorkBatch
    from distmi.engine.screen_plan import NullBatch
    from distmi.engine.worker import BatchWorker


def run_null(worker: BatchWorker, batch: NullBatch) -> dict[str, list[Any]]:
    """Null statistics of one null batch (see module docstring)."""
    screen = worker.task.screen
    stats = null_statistics(screen.components, screen.k, batch.null_key, worker.task.root_seed,
                            batch.start, batch.stop, threads=worker.task.threads)
    cols: dict[str, list[Any]] = {
        "null_key": [batch.null_key] * (batch.stop - batch.start),
        "permutation": list(range(batch.start, batch.stop)),
    }
    for c, name in enumerate(null_columns(screen.components)):
        cols[name] = stats[:, c].tolist()
    return cols


def unit_ranks(worker: BatchWorker, layer: str, units: np.ndarray,
               shard: tuple[int, int] | None = None) -> tuple[np.ndarray, list[str]]:
    """Ranks (len(units), n) int32 and status of units of ``layer`` (cached per unit).

    ``shard`` is the unit range to read when some units are not cached yet (default: the span
    of the missing units).
    """
    from distmi.engine.worker import _usable

    found: dict[int, tuple[np.ndarray, str]] = {}
    missing = []
    for u in units:
        key = ("rank", layer, int(u))
        if key in worker._cache:
            found[int(u)] = worker._cached(key, _unreachable)
        else:
            missing.append(int(u))
    if missing:
        lo, hi = shard if shard is not None else (min(missing), max(missing) + 1)
        lo, hi = min(lo, min(missing)), max(hi, max(missing) + 1)
        # the float block is read without caching it: once ranked, only the ranks are needed
        key = ("units", layer, lo, hi)
        block = (worker._cache[key] if key in worker._cache
                 else worker.dataset.read_layer(layer, units=slice(lo, hi)))
        values = np.asarray(block[:, np.array(missing) - lo], dtype=np.float64)  # (n, missing)
        status = [_usable(values[:, k]) for k in range(len(missing))]
        good = [k for k, st in enumerate(status) if st == "ok"]
        ranks = tie_broken_ranks(values[:, good], worker.task.root_seed,
                                 [("unit", layer, missing[k]) for k in good])
        row_of = {k: r for r, k in enumerate(good)}
        for k, u in enumerate(missing):
            entry = (ranks[row_of[k]].copy() if k in row_of else np.empty(0, np.int32), status[k])
            found[u] = worker._cached(("rank", layer, u), lambda e=entry: e)
    out = np.zeros((len(units), worker.dataset.n_samples), dtype=np.int32)
    states = []
    for r, u in enumerate(units):
        value, st = found[int(u)]
        if st == "ok":
            out[r] = value
        states.append(st)
    return out, states


def _unreachable() -> Any:  # pragma: no cover - the key is known to be cached
    raise RuntimeError("rank cache entry vanished")


def target_ranks(worker: BatchWorker, name: str) -> tuple[np.ndarray, bool, str, str]:
    """(ranks (1, n) int32 or label codes (n,), discrete, status, null_key) of a target."""
    from distmi.engine.worker import _usable

    def load():
        y, discrete = worker._target(name)
        if discrete:
            return y, True, "ok", categorical_null_key(y)
        col = y[:, 0]
        status = _usable(col)
        key = continuous_null_key(len(col))
        if status != "ok":
            return np.zeros((1, len(col)), np.int32), False, status, key
        ranks = tie_broken_ranks(y[:, :1], worker.task.root_seed, [("target", name)])
        return ranks, False, "ok", key

    return worker._cached(("target-rank", name), load)


def run_screen(worker: BatchWorker, batch: WorkBatch) -> dict[str, list[Any]]:
    """Screen statistics of every pair of a screen batch (rows in the batch's pair order)."""
    from distmi.kernels.rank_screen import screen_statistics

    screen = worker.task.screen
    xu = np.unique(batch.x_units)
    rx, x_status = unit_ranks(worker, batch.layer, xu, batch.shard)
    if batch.partner.kind == "target":
        partner, discrete, t_status, key = target_ranks(worker, batch.partner.name)
        yu = np.array([-1], np.int64)
        y_status = [t_status]
    else:
        discrete = False
        yu = np.unique(batch.y_units)
        partner, y_status = unit_ranks(worker, batch.partner.name, yu)
        key = continuous_null_key(worker.dataset.n_samples)
    xi = np.searchsorted(xu, batch.x_units)
    yi = np.searchsorted(yu, batch.y_units)
    status = []
    for a, b in zip(xi, yi, strict=True):
        pair = (x_status[a], y_status[b])
        status.append("nonfinite" if "nonfinite" in pair else "constant" if "constant" in pair
                      else "ok")
    ok = np.array([s == "ok" for s in status], dtype=bool)
    n_comp = len(screen.components)
    values = np.where(np.array([s == "constant" for s in status])[:, None], 0.0, np.nan)
    values = np.repeat(values, n_comp, axis=1)
    if ok.any():
        pairs = np.stack([xi[ok], yi[ok]], axis=1).astype(np.int64)
        values[ok] = screen_statistics(screen.components, rx, partner, pairs, k=screen.k,
                                       discrete=discrete, threads=worker.task.threads)
    n_pairs = batch.n_pairs
    cols: dict[str, list[Any]] = {
        "layer": [batch.layer] * n_pairs,
        "unit": [int(u) for u in batch.x_units],
        "target": [batch.partner.name] * n_pairs,
        "target_unit": [int(u) for u in batch.y_units],
    }
    for c, name in enumerate(statistic_columns(screen.components)):
        cols[name] = values[:, c].tolist()
    cols["null_key"] = [key] * n_pairs
    cols["n_samples"] = [int(worker.dataset.n_samples)] * n_pairs
    cols["status"] = status
    return cols
