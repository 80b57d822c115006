"""Activations over training: chosen layers at chosen epochs (or steps, or checkpoints) in one
dataset with an ``epoch`` (or ``step``) dimension.

A training dataset is a folder::

    training.json            index, written last and atomically after every committed epoch
    epoch-000000/            a complete activation dataset (:func:`distmi.store.capture`)
    epoch-000001/            ... one per captured value of the dimension

Each entry is an ordinary dataset of the same probe samples (same data, same targets, same
layers and pooling), captured with the model's weights at that epoch; the index lists the
entries with their manifest hashes, the dimension's name and the capture settings. Because an
entry is committed (its manifest written last) before the index names it, a reader never sees a
half-written epoch, and an interrupted training run resumes: reopening the same folder with the
same settings skips the committed epochs (:meth:`TrainingCapture.done`), and an epoch whose
capture was cut off resumes inside :func:`~distmi.store.capture` itself. Capture is
deterministic, so the same weights and data give byte-identical entries, resumed or not.

Use it as a training-loop callback::

    cap = TrainingCapture("out/plane", probe_x, ["act1", "act2"], targets={"digit": y})
    for epoch in range(30):
        train_one_epoch(model)
        cap(model, epoch)                    # captures when epoch is chosen, else does nothing
    ds = open_training("out/plane")
    ds.read_layer("act1", epoch=3)           # (n_samples, n_units)

or over saved checkpoints (:func:`capture_checkpoints`, ``distmi capture-checkpoints``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distmi.core.errors import InvalidParameterError, StoreError
from distmi.core.storage import store_path
from distmi.store.files import atomic_write_json
from distmi.store.reader import ActivationDataset, open_dataset
from distmi.store.training_read import (
    DIMENSIONS,
    FORMAT,
    FORMAT_VERSION,
    INDEX,
    TrainingDataset,
    check_value,
    load_index,
    open_training,
)


def _entry_dir(dimension: str, value: int) -> str:
    return f"{dimension}-{value:06d}"


def _data_digest(data: Any, targets: Any, batch_size: int) -> str:
    """sha256 of the probe data's first batch and the targets (detects a different probe set)."""
    from distmi.store.batches import fingerprint_batch, make_source
    from distmi.store.capture import CaptureSource

    h = hashlib.sha256()
    if isinstance(data, CaptureSource):
        targets = data.targets if targets is None else targets
        data = data.data
    first = next(iter(make_source(data, batch_size).iter_from(0)), None)
    if first is not None:
        h.update(fingerprint_batch(first).encode())
    if targets is not None:
        items = targets.items() if isinstance(targets, Mapping) else targets.to_dict("list").items()
        for name, col in sorted(items, key=lambda kv: str(kv[0])):
            arr = np.asarray(col.detach().cpu() if hasattr(col, "detach") else col)
            h.update(f"{name}:{arr.dtype}:{arr.shape}".encode())
            h.update(np.ascontiguousarray(arr).tobytes() if arr.dtype.kind != "O"
                     else repr(arr.tolist()).encode())
    return h.hexdigest()


class TrainingCapture:
    """Capture chosen layers at chosen epochs into one training dataset (see module docstring).

    Args:
        output: the training dataset folder.
        data: probe inputs, as for :func:`distmi.store.capture` (fixed order), or a
            ``CaptureSource``.
        layers: ``named_modules()`` paths to record at every chosen epoch.
        targets, target_kinds, pooling, batch_size, dtype, forward: as for ``capture``.
        dimension: ``"epoch"`` (default), ``"step"`` or ``"checkpoint"``.
        every: capture values divisible by ``every`` (default 1: every value)...
        values: ...or exactly these values (overrides ``every``).
        model_id: recorded in every entry's manifest.
        overwrite: start the folder over instead of resuming it.
        capture_options: further keyword arguments of ``capture`` (e.g. ``rows_per_part``).
    """

    def __init__(
        self,
        output: str | Path,
        data: Any,
        layers: str | Sequence[str],
        *,
        targets: Any = None,
        target_kinds: Mapping[str, str] | None = None,
        pooling: str | Mapping[str, str] = "none",
        batch_size: int = 256,
        dtype: str = "float32",
        forward: Callable[[Any, Any], Any] | None = None,
        dimension: str = "epoch",
        every: int = 1,
        values: Iterable[int] | None = None,
        model_id: str | None = None,
        overwrite: bool = False,
        **capture_options: Any,
    ) -> None:
        if dimension not in DIMENSIONS:
            raise InvalidParameterError(
                f"dimension must be one of {list(DIMENSIONS)}, got {dimension!r}."
            )
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InvalidParameterError(f"every must be a positive integer, got {every!r}.")
        self.root = Path(output)
        self.data = data
        self.layers = [layers] if isinstance(layers, str) else list(layers)
        if not self.layers:
            raise InvalidParameterError("layers is empty; name at least one layer to capture.")
        self.targets = targets
        self.target_kinds = target_kinds
        self.pooling = pooling
        self.batch_size = batch_size
        self.dtype = dtype
        self.forward = forward
        self.dimension = dimension
        self.every = every
        self.values = (None if values is None
                       else sorted({check_value(v, dimension) for v in values}))
        self.model_id = model_id
        self.capture_options = capture_options
        self.settings = {
            "dimension": dimension,
            "layers": self.layers,
            "pooling": pooling if isinstance(pooling, str) else dict(pooling),
            "dtype": dtype,
            "probe_sha256": _data_digest(data, targets, batch_size),
        }
        self.index = self._open(overwrite)

    # ---- the index ----------------------------------------------------------------------
    def _open(self, overwrite: bool) -> dict[str, Any]:
        path = self.root / INDEX
        if path.is_file() and not overwrite:
            index = load_index(self.root)
            if index["settings"] != self.settings:
                differ = sorted(k for k in self.settings if index["settings"].get(k) !=
                                self.settings[k])
                raise StoreError(
                    f"{self.root} holds a training capture with other settings ({differ} differ); "
                    "reopen it with the same layers, pooling, dtype, dimension and probe data to "
                    "resume, or pass overwrite=True to start over."
                )
            return index
        if self.root.exists() and any(self.root.iterdir()) and not overwrite:
            raise StoreError(
                f"{self.root} is not empty and holds no {INDEX}; choose an empty or new folder."
            )
        if overwrite and self.root.exists():
            _remove_entries(self.root, self.dimension)
        self.root.mkdir(parents=True, exist_ok=True)
        index = {"format": FORMAT, "format_version": FORMAT_VERSION, "settings": self.settings,
                 "entries": []}
        atomic_write_json(store_path(path), index)
        return index

    def wants(self, value: int) -> bool:
        """Whether ``value`` of the dimension is one to capture."""
        value = check_value(value, self.dimension)
        return value in self.values if self.values is not None else value % self.every == 0

    def done(self, value: int) -> bool:
        """Whether ``value`` is already committed (a resumed run skips it)."""
        return any(e["value"] == value for e in self.index["entries"])

    @property
    def captured(self) -> list[int]:
        return sorted(e["value"] for e in self.index["entries"])

    # ---- capturing ----------------------------------------------------------------------
    def capture(self, model: Any, value: int, info: Mapping[str, Any] | None = None
                ) -> ActivationDataset:
        """Capture the layers of ``model`` as the entry for ``value`` (chosen or not).

        An entry already committed with the same weights is returned as it is; one committed
        with other weights is refused (pass ``overwrite=True`` to the constructor to start over).
        """
        from distmi.store.capture import capture, weights_sha256

        value = check_value(value, self.dimension)
        entry_dir = _entry_dir(self.dimension, value)
        weights = weights_sha256(model)
        for e in self.index["entries"]:
            if e["value"] == value:
                if e["weights_sha256"] != weights:
                    raise StoreError(
                        f"{self.dimension} {value} is already captured in {self.root} with other "
                        "weights; a resumed run must reach the same weights (same seeds and "
                        "checkpoints), or start over with overwrite=True."
                    )
                return open_dataset(self.root / entry_dir)
        model_info = {self.dimension: value, **dict(info or {})}
        ds = capture(model, self.data, self.layers, self.root / entry_dir, pooling=self.pooling,
                     targets=self.targets, target_kinds=self.target_kinds,
                     batch_size=self.batch_size, dtype=self.dtype, forward=self.forward,
                     model_id=self.model_id, model_info=_jsonable(model_info),
                     **self.capture_options)
        self.index["entries"].append({
            "value": value, "dir": entry_dir, "manifest_sha256": ds.manifest_hash,
            "weights_sha256": weights, "info": _jsonable(dict(info or {})),
        })
        self.index["entries"].sort(key=lambda e: e["value"])
        atomic_write_json(store_path(self.root / INDEX), self.index)
        return ds

    def __call__(self, model: Any, value: int, **info: Any) -> ActivationDataset | None:
        """Training-loop callback: capture when ``value`` is chosen and not yet committed."""
        if not self.wants(value):
            return None
        return self.capture(model, value, info)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _remove_entries(root: Path, dimension: str) -> None:
    """Delete what a training capture wrote (the index and entry folders), nothing else."""
    import shutil

    (root / INDEX).unlink(missing_ok=True)
    for child in root.iterdir():
        if child.is_dir() and re.fullmatch(rf"({'|'.join(DIMENSIONS)})-\d{{6}}", child.name):
            shutil.rmtree(child)


def checkpoint_value(path: str | Path) -> int:
    """The last integer in a checkpoint's file name (``epoch-07.pt`` -> 7)."""
    found = re.findall(r"\d+", Path(path).stem)
    if not found:
        raise InvalidParameterError(
            f"cannot read an epoch number from {Path(path).name!r}; name checkpoints like "
            "'epoch-7.pt' or pass the values explicitly."
        )
    return int(found[-1])


def capture_checkpoints(
    model: Any,
    checkpoints: Sequence[str | Path],
    output: str | Path,
    data: Any,
    layers: str | Sequence[str],
    *,
    values: Sequence[int] | None = None,
    state_key: str | None = None,
    **options: Any,
) -> TrainingDataset:
    """Capture ``layers`` of ``model`` with the weights of each checkpoint file.

    Args:
        model: the architecture (a ``torch.nn.Module``); each checkpoint's state dict is loaded
            into it (``torch.load(weights_only=True)``).
        checkpoints: state-dict files (``torch.save(model.state_dict(), path)``), or dicts
            holding one under ``state_key`` (e.g. ``"model_state_dict"``).
        values: the epoch (step) of each checkpoint; default: the last integer of each name.
        options: :class:`TrainingCapture` keywords (``targets``, ``dimension``, ``pooling``...).
    Resumes like :class:`TrainingCapture`: committed checkpoints are skipped.
    """
    import torch

    if not checkpoints:
        raise InvalidParameterError("no checkpoints given; pass at least one checkpoint file.")
    vals = [checkpoint_value(p) for p in checkpoints] if values is None else list(values)
    if len(vals) != len(checkpoints):
        raise InvalidParameterError(
            f"{len(checkpoints)} checkpoints but {len(vals)} values; give one value per file."
        )
    if len(set(vals)) != len(vals):
        raise InvalidParameterError(f"checkpoint values repeat: {vals}; give each its own value.")
    cap = TrainingCapture(output, data, layers, values=vals, **options)
    for path, value in zip(checkpoints, vals, strict=True):
        if cap.done(value):
            continue
        path = Path(path)
        if not path.is_file():
            raise InvalidParameterError(f"checkpoint {path} does not exist.")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state_key is not None:
            state = state[state_key]
        if not isinstance(state, Mapping):
            raise InvalidParameterError(
                f"{path} holds a {type(state).__name__}, not a state dict; save checkpoints with "
                "torch.save(model.state_dict(), path) or pass state_key."
            )
        model.load_state_dict(state)
        cap.capture(model, value, {"checkpoint": path.name})
    return open_training(output)


__all__ = [
    "DIMENSIONS",
    "FORMAT",
    "FORMAT_VERSION",
    "INDEX",
    "TrainingCapture",
    "TrainingDataset",
    "capture_checkpoints",
    "checkpoint_value",
    "open_training",
]
