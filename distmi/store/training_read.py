"""Reading training datasets: activation datasets indexed by an epoch-like value.

The index ``training.json`` (written by :class:`distmi.store.training.TrainingCapture`) lists
the entries (value, folder, manifest sha256); :func:`open_training` opens it and checks every
entry's manifest hash, or indexes existing activation datasets given as ``{value: folder}``.
:class:`TrainingDataset` reads a layer at a value and checks that layers exist at every value
(clear errors name the captured values and layers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distmi.core.errors import InvalidParameterError, StoreError, UnknownLayerError
from distmi.store.reader import ActivationDataset, open_dataset

INDEX = "training.json"
FORMAT = "distmi-training-activations"
FORMAT_VERSION = 1
DIMENSIONS = ("epoch", "step", "checkpoint")


def check_value(value: Any, dimension: str) -> int:
    """A captured value must be a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise InvalidParameterError(
            f"{dimension} must be a non-negative integer, got {value!r}; pass e.g. {dimension}=3."
        )
    return int(value)


def load_index(root: Path) -> dict[str, Any]:
    path = root / INDEX
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path} cannot be read as a training index ({exc}).") from None
    if index.get("format") != FORMAT:
        raise StoreError(f"{path} is not a distmi training index (format {index.get('format')!r}).")
    return index


@dataclass
class TrainingDataset:
    """Activation datasets indexed by an epoch-like value, read as one dataset.

    Attributes:
        dimension: ``"epoch"``, ``"step"`` or ``"checkpoint"``.
        entries: ``{value: dataset folder}`` in ascending order.
    """

    dimension: str
    entries: dict[int, Path]
    path: Path | None = None

    def __post_init__(self) -> None:
        self._open: dict[int, ActivationDataset] = {}

    @property
    def values(self) -> list[int]:
        """The captured values of the dimension (e.g. the epochs), ascending."""
        return sorted(self.entries)

    def dataset(self, value: int) -> ActivationDataset:
        """The activation dataset of one epoch (clear error if it was not captured)."""
        if value not in self.entries:
            raise StoreError(
                f"{self.dimension} {value} was not captured; captured {self.dimension}s: "
                f"{_ranges(self.values)}. Choose among those or capture it first."
            )
        if value not in self._open:
            self._open[value] = open_dataset(self.entries[value])
        return self._open[value]

    @property
    def layers(self) -> list[str]:
        """Layers present at every captured value."""
        common = None
        for v in self.values:
            names = self.dataset(v).layers
            common = names if common is None else [n for n in common if n in names]
        return common or []

    @property
    def n_samples(self) -> int:
        return self.dataset(self.values[0]).n_samples

    def read_layer(self, layer: str, value: int, **kwargs: Any) -> np.ndarray:
        """``(n_samples, n_units)`` of ``layer`` at ``value`` (kwargs as ``read_layer``)."""
        ds = self.dataset(value)
        if layer not in ds.layers:
            self._missing(layer, [value])
        return ds.read_layer(layer, **kwargs)

    def read_targets(self, columns: list[str] | None = None):
        """The probe samples' targets (the same table at every value)."""
        return self.dataset(self.values[0]).read_targets(columns)

    @property
    def target_kinds(self) -> dict[str, str]:
        return self.dataset(self.values[0]).target_kinds

    def check(self, layers: Sequence[str], values: Sequence[int] | None = None) -> list[int]:
        """Check that every layer exists at every requested value and that all values hold the
        same samples; return the values (all captured ones by default)."""
        values = self.values if values is None else list(values)
        if not values:
            raise StoreError("no captured values to analyse; capture at least one epoch first.")
        for v in values:
            self.dataset(v)  # raises for values not captured
        for layer in layers:
            missing = [v for v in values if layer not in self.dataset(v).layers]
            if missing:
                self._missing(layer, missing)
        first = self.dataset(values[0])
        for v in values[1:]:
            ds = self.dataset(v)
            if ds.n_samples != first.n_samples or not np.array_equal(ds.sample_ids,
                                                                     first.sample_ids):
                raise StoreError(
                    f"{self.dimension} {v} holds other samples than {self.dimension} {values[0]} "
                    f"({ds.n_samples} vs {first.n_samples} samples or different sample ids); every "
                    "epoch must be captured on the same probe set."
                )
        return values

    def _missing(self, layer: str, values: Sequence[int]) -> None:
        have = self.dataset(values[0]).layers
        raise UnknownLayerError(
            f"layer {layer!r} is missing at {self.dimension} {_ranges(list(values))} (the dataset "
            f"{self.entries[values[0]]} has layers {have}); capture it at every {self.dimension} "
            "or leave it out."
        )


def _ranges(values: list[int]) -> str:
    """Compact list, e.g. [0, 1, 2, 5] -> '0-2, 5'."""
    if not values:
        return "none"
    parts, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


def open_training(source: str | Path | Mapping[int, str | Path], dimension: str = "epoch"
                  ) -> TrainingDataset:
    """Open a training dataset folder (with ``training.json``), or index existing activation
    datasets by value: ``open_training({0: "out/e0", 5: "out/e5"})``."""
    if isinstance(source, Mapping):
        if not source:
            raise StoreError("no datasets given; pass {epoch: dataset folder, ...}.")
        entries = {check_value(k, dimension): Path(v) for k, v in source.items()}
        return TrainingDataset(dimension, dict(sorted(entries.items())))
    root = Path(source)
    if not (root / INDEX).is_file():
        hint = ("it is a single activation dataset: pass {epoch: folder, ...} to combine several"
                if (root / "manifest.json").is_file() else "capture one with TrainingCapture or "
                "`distmi capture-checkpoints`")
        raise StoreError(f"{root} has no {INDEX}; {hint}.")
    index = load_index(root)
    dim = index["settings"]["dimension"]
    entries = {int(e["value"]): root / e["dir"] for e in index["entries"]}
    ds = TrainingDataset(dim, dict(sorted(entries.items())), root)
    for e in index["entries"]:  # an entry must be the dataset the index committed
        got = ds.dataset(int(e["value"])).manifest_hash
        if got != e["manifest_sha256"]:
            raise StoreError(
                f"{root / e['dir']} changed after it was indexed (manifest sha256 {got[:12]}... "
                f"!= {e['manifest_sha256'][:12]}...); recapture that {dim}."
            )
    return ds
