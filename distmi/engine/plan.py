"""Planner: a job spec and a dataset become work units (pairs) grouped into kernel-sized batches.

Terms:

- a **pair** is one MI problem ``I(x; y)``: x is a unit (or, for ``layer-target``, all selected
  units of a layer as one vector), y is a target column or another unit;
- a **seed group** is the set of pairs that share one random seed,
  ``derive_seed(root, "pairs", layer, partner)``. Registry methods solve a batch of pairs with
  one seed, and each pair's result equals its one-at-a-time estimate with that seed (the
  ``estimate_pairs`` contract), so the numbers do not depend on how a group is cut into batches,
  on the executor or on scheduling order;
- a **batch** (work unit) is up to ``batch_size`` pairs of one seed group whose x units lie in
  one shard of ``units_per_shard`` units, so a worker reads each Parquet shard once. Its
  ``batch_id`` is a pure function of its content (layer, partner, unit list).

Pair modes (``JobSpec.pairs``):

==================  ==========================================================================
``unit-target``     every selected unit of every layer vs every target (attribution table)
``unit-unit``       every unordered pair ``i < j`` of selected units within each layer
``adjacent-layers`` every (unit of layer k, unit of layer k+1), layers in the listed order
``layer-target``    all selected units of a layer as one multivariate x vs every target
==================  ==========================================================================
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from distmi.core.errors import SpecError
from distmi.core.seeds import derive_seed
from distmi.engine.requests import (
    AllUnits,
    LayerRequest,
    PlanRequest,
    TopVarianceUnits,
    UnitIndices,
    UnitRange,
    UnitSelection,
)

if TYPE_CHECKING:
    from distmi.store.reader import ActivationDataset

PAIR_MODES = ("unit-target", "unit-unit", "adjacent-layers", "layer-target")


@dataclass(frozen=True)
class Partner:
    """The y side of a batch: a target column (``unit`` -1) or units of a layer."""

    kind: str  # "target" | "layer"
    name: str


@dataclass(frozen=True)
class WorkBatch:
    """One work unit: pairs ``(x_units[k], y_units[k])`` of one seed group.

    Attributes:
        batch_id: stable id, e.g. ``"unit-target|act1|species|u0-15|n16|3fa2c1d0"``.
        layer: the x layer.
        partner: the y side (target or layer).
        x_units: shape (P,) int64, flat unit indices of ``layer`` (-1 for ``layer-target``).
        y_units: shape (P,) int64, unit indices of the partner layer (-1 for targets).
        shard: ``(start, stop)`` unit range of ``layer`` that holds every x unit.
        seed: the seed group's seed.
        layer_units: for ``layer-target`` the units forming the x vector, else empty.
    """

    batch_id: str
    layer: str
    partner: Partner
    x_units: np.ndarray
    y_units: np.ndarray
    shard: tuple[int, int]
    seed: int
    layer_units: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @property
    def n_pairs(self) -> int:
        return len(self.x_units)

    @property
    def key(self) -> str:
        """Short filesystem-safe key of ``batch_id`` (part file name)."""
        return batch_key(self.batch_id)


@dataclass(frozen=True)
class Plan:
    """All batches of a job plus the resolved selection (for the summary and provenance)."""

    batches: list[WorkBatch]
    layers: dict[str, np.ndarray]  # layer -> selected unit indices (sorted)
    targets: list[str]
    mode: str

    @property
    def n_pairs(self) -> int:
        return sum(b.n_pairs for b in self.batches)


def batch_key(batch_id: str) -> str:
    """Filesystem-safe key of a batch id: the first 20 hex digits of its sha1."""
    return hashlib.sha1(batch_id.encode("utf-8")).hexdigest()[:20]


def _units_hash(units: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(units, dtype=np.int64).tobytes()).hexdigest()[:8]


def _top_k_variance(ds: ActivationDataset, layer: str, k: int) -> np.ndarray:
    """Indices of the k units with the largest variance (streamed, float64 sums; ties: lower index)."""
    n_units = ds.layer_shape(layer)[1]
    total = np.zeros(n_units)
    total_sq = np.zeros(n_units)
    n = 0
    for _, block in ds.iter_layer(layer):
        b = block.astype(np.float64)
        b = np.where(np.isfinite(b), b, 0.0)
        total += b.sum(0)
        total_sq += (b * b).sum(0)
        n += len(b)
    var = total_sq / max(n, 1) - (total / max(n, 1)) ** 2
    order = np.lexsort((np.arange(n_units), -var))  # largest variance first, then lower index
    return np.sort(order[: min(k, n_units)]).astype(np.int64)


def select_units(ds: ActivationDataset, entry: LayerRequest, default: UnitSelection) -> np.ndarray:
    """Resolve a unit selection (all, range, indices, top-k by variance) to sorted indices."""
    n_units = ds.layer_shape(entry.name)[1]
    sel = entry.units if entry.units is not None else default
    if isinstance(sel, AllUnits):
        return np.arange(n_units, dtype=np.int64)
    if isinstance(sel, UnitRange):
        start, stop = sel.start, sel.stop
        if stop > n_units:
            raise SpecError(
                f"units range [{start}, {stop}) of layer {entry.name!r} exceeds its {n_units} units; "
                f"use a stop <= {n_units}."
            )
        return np.arange(start, stop, dtype=np.int64)
    if isinstance(sel, UnitIndices):
        idx = np.unique(np.asarray(sel.indices, dtype=np.int64))
        if idx[-1] >= n_units:
            raise SpecError(
                f"unit index {int(idx[-1])} of layer {entry.name!r} is out of range: the layer has "
                f"{n_units} units (indices 0..{n_units - 1})."
            )
        return idx
    if isinstance(sel, TopVarianceUnits):
        return _top_k_variance(ds, entry.name, sel.k)
    raise SpecError(f"unsupported unit selection {sel!r}")  # pragma: no cover - schema prevents it


def _chunks(x: np.ndarray, y: np.ndarray, shard_of: np.ndarray, size: int) -> Iterator[tuple]:
    """Cut pairs (sorted by x shard) into runs of <= size pairs that stay within one shard."""
    for s in np.unique(shard_of):
        idx = np.flatnonzero(shard_of == s)
        for k in range(0, len(idx), size):
            part = idx[k : k + size]
            yield int(s), x[part], y[part]


def _group_batches(mode: str, layer: str, partner: Partner, x: np.ndarray, y: np.ndarray,
                   seed: int, batch_size: int, units_per_shard: int, n_units: int) -> list[WorkBatch]:
    out = []
    shard_of = x // units_per_shard
    for s, xb, yb in _chunks(x, y, shard_of, batch_size):
        shard = (s * units_per_shard, min((s + 1) * units_per_shard, n_units))
        pair_hash = _units_hash(np.concatenate([xb, yb]))
        bid = (f"{mode}|{layer}|{partner.kind}:{partner.name}|u{int(xb[0])}-{int(xb[-1])}"
               f"|n{len(xb)}|{pair_hash}")
        out.append(WorkBatch(bid, layer, partner, xb.astype(np.int64), yb.astype(np.int64),
                             shard, seed))
    return out


def make_plan(request: PlanRequest, ds: ActivationDataset) -> Plan:
    """Turn a plan request into batches, checking layer and target names against the dataset.

    Raises:
        SpecError: unknown layer/target (with the available names), too many pairs, or a mode
            that needs two layers.
    """
    from distmi.store.reader import unknown_name_error

    if request.mode not in PAIR_MODES:
        raise SpecError(f"pairs: got {request.mode!r}, allowed values: {list(PAIR_MODES)}")
    entries = (list(request.layers) if request.layers is not None
               else [LayerRequest(name) for name in ds.layers])
    for e in entries:
        if e.name not in ds.layers:
            err = unknown_name_error("layer", e.name, ds.layers, f"dataset {ds.path}")
            raise SpecError(f"layers: {err}")
    kinds = ds.target_kinds
    for t in request.targets:
        if t not in kinds:
            err = unknown_name_error("target", t, list(kinds), f"dataset {ds.path}")
            raise SpecError(f"targets: {err}")
    layers = {e.name: select_units(ds, e, request.default_units) for e in entries}
    mode, root = request.mode, request.seed
    batch_size, units_per_shard = request.batch_size, request.units_per_shard
    batches: list[WorkBatch] = []
    n_pairs = 0

    def count(n: int) -> None:
        nonlocal n_pairs
        n_pairs += n
        if n_pairs > request.max_pairs:
            raise SpecError(
                f"the job has more than max_pairs={request.max_pairs} pairs (pairs={mode!r} over "
                f"{ {k: len(v) for k, v in layers.items()} } units); select fewer units "
                "(units: {top_k_variance: K}) or raise max_pairs."
            )

    for name, units in layers.items():
        n_units = ds.layer_shape(name)[1]
        if mode == "unit-target":
            for t in request.targets:
                count(len(units))
                partner = Partner("target", t)
                seed = derive_seed(root, "pairs", name, "target", t)
                batches += _group_batches(mode, name, partner, units, np.full_like(units, -1),
                                          seed, batch_size, units_per_shard, n_units)
        elif mode == "layer-target":
            for t in request.targets:
                count(1)
                bid = f"{mode}|{name}|target:{t}|n{len(units)}|{_units_hash(units)}"
                batches.append(WorkBatch(bid, name, Partner("target", t),
                                         np.array([-1], np.int64), np.array([-1], np.int64),
                                         (int(units[0]), int(units[-1]) + 1),
                                         derive_seed(root, "pairs", name, "target", t), units))
        elif mode == "unit-unit":
            if len(units) < 2:
                raise SpecError(f"pairs='unit-unit' needs >= 2 units in layer {name!r}, got {len(units)}.")
            i, j = np.triu_indices(len(units), k=1)
            count(len(i))
            seed = derive_seed(root, "pairs", name, "layer", name)
            batches += _group_batches(mode, name, Partner("layer", name), units[i], units[j],
                                      seed, batch_size, units_per_shard, n_units)
    if mode == "adjacent-layers":
        names = list(layers)
        if len(names) < 2:
            raise SpecError(
                f"pairs='adjacent-layers' needs at least two layers, got {names}; list the "
                "layers in network order, e.g. layers: [act1, act2]."
            )
        for a, b in itertools.pairwise(names):
            ua, ub = layers[a], layers[b]
            count(len(ua) * len(ub))
            xa, yb = np.repeat(ua, len(ub)), np.tile(ub, len(ua))
            seed = derive_seed(root, "pairs", a, "layer", b)
            batches += _group_batches(mode, a, Partner("layer", b), xa, yb, seed,
                                      batch_size, units_per_shard, ds.layer_shape(a)[1])
    return Plan(batches, layers, list(request.targets), mode)
