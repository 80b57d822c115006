"""Plain request types the engine understands: what to plan and how to run it.

The engine does not know job files. :mod:`distmi.jobs` validates YAML into its pydantic spec and
converts it into these frozen dataclasses (``JobSpec.plan_request()``,
``ScalingSpec.executor_settings()``); notebooks and other front ends may build them directly.

Unit selections (which units of a layer take part):

==========================  ===================================================================
:class:`AllUnits`           every unit of the layer
:class:`UnitRange`          units ``[start, stop)`` (flat indices, C order of the unit shape)
:class:`UnitIndices`        an explicit list of unit indices
:class:`TopVarianceUnits`   the ``k`` units with the largest variance (ties: lower index)
==========================  ===================================================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AllUnits:
    """Every unit of a layer."""


@dataclass(frozen=True)
class UnitRange:
    """Units ``[start, stop)`` of a layer."""

    start: int
    stop: int


@dataclass(frozen=True)
class UnitIndices:
    """An explicit list of unit indices."""

    indices: tuple[int, ...]


@dataclass(frozen=True)
class TopVarianceUnits:
    """The ``k`` units with the largest variance over the samples (ties: lower index)."""

    k: int


UnitSelection = AllUnits | UnitRange | UnitIndices | TopVarianceUnits


@dataclass(frozen=True)
class LayerRequest:
    """A layer and its own unit selection (``None``: the request's default selection)."""

    name: str
    units: UnitSelection | None = None


@dataclass(frozen=True)
class PlanRequest:
    """What a plan covers.

    Attributes:
        mode: pair mode, one of :data:`distmi.engine.plan.PAIR_MODES`.
        layers: the layers in order, or ``None`` for every layer of the dataset.
        default_units: unit selection of layers that do not set their own.
        targets: target columns (``unit-target`` and ``layer-target`` modes).
        seed: root seed; every pair group's seed derives from it and the group's id.
        batch_size: pairs per work unit.
        units_per_shard: a work unit's x units lie within one shard of this many units.
        max_pairs: refuse plans with more pairs (guards against accidental quadratic sweeps).
    """

    mode: str
    layers: tuple[LayerRequest, ...] | None
    default_units: UnitSelection
    targets: tuple[str, ...]
    seed: int
    batch_size: int = 64
    units_per_shard: int = 256
    max_pairs: int = 1_000_000


@dataclass(frozen=True)
class ExecutorSettings:
    """How to run work units (never changes the numbers).

    Attributes:
        executor: ``"local"`` (in this process) or ``"ray"``.
        address: Ray address to attach to; ``None`` starts an embedded local Ray.
        workers: number of Ray actors.
        cpus_per_worker: CPUs each actor reserves (fractions allowed).
        gpus_per_worker: GPUs each actor reserves (ignored, with a warning, without GPUs).
        max_in_flight: work units queued per actor.
        spread: place actors on different nodes (Ray "SPREAD" scheduling).
        retries: re-runs of a work unit that failed for a non-distmi reason.
    """

    executor: str = "ray"
    address: str | None = None
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_in_flight: int = 2
    spread: bool = False
    retries: int = 3
