"""Information planes over training: I(X; L) and I(L; Y) per layer per epoch, with error bars.

    from distmi.analyses.infoplane import information_plane
    result = information_plane("out/digits-train", ["act1", "act2", "act3", "out"],
                               target="digit")            # sliced WKL, 1000 slices
    result.table                                          # one row per (epoch, layer)
    result.figure().savefig("plane.png")

The training dataset comes from :class:`distmi.store.training.TrainingCapture` (or
``distmi capture-checkpoints``); the job runs as epoch x layer work units on the engine
(:mod:`.run`); ``docs/infoplane.md`` has the method, the error bars and the measurements.
"""

from __future__ import annotations

from typing import Any

from distmi.analyses.infoplane.figure import plane_figure
from distmi.analyses.infoplane.run import PlaneResult, run_plane
from distmi.analyses.infoplane.spec import (
    PlaneSpec,
    PlaneUnit,
    load_plane_spec,
    parse_plane_spec,
    plan_units,
)


def information_plane(source: Any, layers: list[str], target: str, **settings: Any
                      ) -> PlaneResult:
    """Estimate the information plane of the training dataset ``source``.

    Args:
        source: training dataset folder (``training.json``).
        layers: layers L (plot order); the input X is ``x_layer`` (default ``"input"``).
        target: categorical target Y.
        settings: further :class:`PlaneSpec` fields (``method``, ``base``, ``n_slices``,
            ``epochs``, ``output``, ``executor``, ...); ``executor_instance`` passes a
            ready executor.
    """
    executor = settings.pop("executor_instance", None)
    spec = parse_plane_spec({"source": str(source), "layers": list(layers), "target": target,
                             **settings})
    return run_plane(spec, executor=executor)


__all__ = [
    "PlaneResult",
    "PlaneSpec",
    "PlaneUnit",
    "information_plane",
    "load_plane_spec",
    "parse_plane_spec",
    "plan_units",
    "plane_figure",
    "run_plane",
]
