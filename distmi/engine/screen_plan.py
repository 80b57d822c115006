"""Planning of two-stage sweeps: screen and null-table work units, then refine work units.

A two-stage sweep (``ScreenRequest``) runs in two executor passes:

1. **screen pass**: every pair of the plan in *screen batches* (the plan's batches re-cut to
   ``screen.batch_size`` pairs, ids prefixed ``screen|``), plus *null batches*
   (:class:`NullBatch`), each ``null_batch_size`` permutations of one null-table shape
   (``null|<null_key>|<start>-<stop>``). The shapes are the sample size for continuous
   partners (targets or units) and the class counts of each categorical target.
2. **refine pass**: the pairs the screen selects, cut into batches of the plan's
   ``batch_size`` within one seed group and one shard, ids prefixed ``refine|``. A refined pair
   uses its seed group's seed, so its numbers equal those of a one-stage job.

Every id is a function of content, so a resumed job finds the work it already committed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from distmi.core.errors import SpecError
from distmi.core.seeds import derive_seed
from distmi.engine.plan import Partner, Plan, WorkBatch, group_batches, make_batch
from distmi.engine.requests import PlanRequest, ScreenRequest

if TYPE_CHECKING:
    import pandas as pd

    from distmi.store.reader import ActivationDataset


@dataclass(frozen=True)
class NullBatch:
    """Permutations ``start..stop-1`` of the null table ``null_key`` (one work unit)."""

    batch_id: str
    null_key: str
    start: int
    stop: int
    stage: str = "null"
    layer: str = ""  # executors group work by (layer, shard): null batches read no shard
    shard: tuple[int, int] = (0, 0)

    @property
    def n_pairs(self) -> int:
        return 0

    @property
    def key(self) -> str:
        from distmi.engine.plan import batch_key

        return batch_key(self.batch_id)


@dataclass(frozen=True)
class ScreenPlan:
    """The screen pass of a two-stage sweep.

    Attributes:
        screen_batches: the plan's pairs in screen work units.
        null_batches: the null-table work units (empty when ``n_permutations`` is 0).
        null_keys: partner name (target or layer) -> its null-table key.
        n_permutations: permutations per null table (resolved from ``auto``).
        families: FDR family -> number of pairs in it.
    """

    screen_batches: list[WorkBatch]
    null_batches: list[NullBatch]
    null_keys: dict[str, str]
    n_permutations: int
    families: dict[str, int]

    @property
    def batches(self) -> list:
        return [*self.null_batches, *self.screen_batches]

    @property
    def max_family(self) -> int:
        return max(self.families.values(), default=0)


def _families(plan: Plan, scope: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for b in plan.batches:
        fam = "job" if scope == "job" else f"{b.layer}|{b.partner.name}"
        sizes[fam] = sizes.get(fam, 0) + b.n_pairs
    return sizes


def partner_null_keys(plan: Plan, ds: ActivationDataset) -> dict[str, str]:
    """Null-table key of every partner of the plan (categorical targets: their class counts)."""
    from distmi.core.validation import as_labels
    from distmi.reduce.screen_stats import categorical_null_key, continuous_null_key

    keys: dict[str, str] = {}
    n = ds.n_samples
    categorical = [t for t in plan.targets if ds.target_kinds[t] == "categorical"]
    frame = ds.read_targets(categorical) if categorical else None
    for b in plan.batches:
        name = b.partner.name
        if name in keys:
            continue
        if b.partner.kind == "target" and name in categorical:
            codes = as_labels(frame[name].to_numpy(), f"target {name!r}")[0]
            keys[name] = categorical_null_key(codes)
        else:
            keys[name] = continuous_null_key(n)
    return keys


def check_screen(plan: Plan, screen: ScreenRequest, n_samples: int) -> None:
    """Refuse plans the screen cannot serve (see :func:`plan_screen`)."""
    if plan.mode == "layer-target":
        raise SpecError(
            "screen: needs pairs of single units, but pairs='layer-target' makes x a whole "
            "layer; remove the screen section or use pairs: unit-target."
        )
    if "ksg" in screen.components and screen.k >= n_samples:
        raise SpecError(
            f"screen.k={screen.k} neighbours needs more than {screen.k} samples, the dataset has "
            f"{n_samples}; lower screen.k."
        )


def plan_screen(plan: Plan, screen: ScreenRequest, ds: ActivationDataset) -> ScreenPlan:
    """The screen pass of ``plan`` (see module docstring).

    Raises:
        SpecError: a plan the screen cannot serve (``layer-target``: x is a whole layer), or
            a neighbour count k >= n.
    """
    from distmi.reduce.screen_stats import auto_permutations

    check_screen(plan, screen, ds.n_samples)
    screen_batches = _recut(plan, screen.batch_size)
    families = _families(plan, screen.fdr_scope)
    if screen.n_permutations is None:
        n_perm = auto_permutations(max(families.values(), default=1), screen.fdr,
                                   len(screen.components), screen.fdr_method)
    else:
        n_perm = screen.n_permutations
    null_keys = partner_null_keys(plan, ds)
    null_batches = []
    if n_perm > 0:
        for key in sorted(set(null_keys.values())):
            for start in range(0, n_perm, screen.null_batch_size):
                stop = min(start + screen.null_batch_size, n_perm)
                null_batches.append(NullBatch(f"null|{key}|{start}-{stop}", key, start, stop))
    return ScreenPlan(screen_batches, null_batches, null_keys, n_perm, families)


def _recut(plan: Plan, batch_size: int) -> list[WorkBatch]:
    """The plan's pairs cut into screen batches of up to ``batch_size`` pairs (same shards)."""
    groups: dict[tuple, list[WorkBatch]] = {}
    for b in plan.batches:
        groups.setdefault((b.layer, b.partner, b.seed, b.shard), []).append(b)
    out = []
    for (layer, partner, seed, shard), members in groups.items():
        x = np.concatenate([m.x_units for m in members])
        y = np.concatenate([m.y_units for m in members])
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            b = make_batch(plan.mode, layer, partner, xb, yb, seed, shard)
            out.append(dataclasses.replace(b, batch_id="screen|" + b.batch_id, stage="screen"))
    return out


def plan_refine(request: PlanRequest, selected: pd.DataFrame,
                ds: ActivationDataset) -> list[WorkBatch]:
    """Refine batches of the selected screen rows (columns layer, unit, target, target_unit).

    Pairs are grouped by seed group (layer, partner), sorted, and cut like a one-stage plan
    (``request.batch_size`` pairs within one shard of ``request.units_per_shard`` units).
    """
    out: list[WorkBatch] = []
    if selected.empty:
        return out
    frame = selected.sort_values(["layer", "target", "unit", "target_unit"], kind="mergesort")
    for (layer, target), g in frame.groupby(["layer", "target"], sort=True):
        is_target = bool((g["target_unit"] < 0).all())
        partner = Partner("target" if is_target else "layer", str(target))
        seed = derive_seed(request.seed, "pairs", layer, partner.kind, partner.name)
        x = g["unit"].to_numpy(np.int64)
        y = g["target_unit"].to_numpy(np.int64)
        order = np.lexsort((y, x))
        sub = group_batches(request.mode, str(layer), partner, x[order], y[order], seed,
                            request.batch_size, request.units_per_shard,
                            ds.layer_shape(str(layer))[1])
        out += [dataclasses.replace(s, batch_id="refine|" + s.batch_id, stage="refine")
                for s in sub]
    return out
