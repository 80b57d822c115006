"""Turning what users pass as ``data`` into a deterministic stream of batches.

Accepted ``data``:

- a tensor or numpy array (n, ...): sliced into batches, the model is called as ``model(x)``;
- a mapping of equal-length tensors/arrays (e.g. a tokenizer's output): sliced, called as
  ``model(**batch)``; its ``attention_mask`` is used for token pooling;
- a ``torch.utils.data.DataLoader`` (must not shuffle) or a map-style ``Dataset``; batches may
  be tensors, mappings, or tuples ``(inputs, *targets)`` whose extra items are recorded as
  targets;
- any other iterable of such batches (its length is then unknown until the end).

Order must be deterministic: sample ids and the resume of an interrupted capture rely on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distmi.core.errors import InvalidInputError, LengthMismatchError


@dataclass
class Batch:
    """One batch: model inputs, its row count, targets carried by the batch, attention mask."""

    inputs: Any
    n_rows: int
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    mask: Any = None


def _as_tensor(x: Any):
    import torch

    if isinstance(x, torch.Tensor):
        return x
    arr = np.asarray(x)
    if arr.dtype.kind in "OUS":
        raise InvalidInputError(
            f"model inputs must be numeric, got dtype {arr.dtype}; tokenize text first "
            "(e.g. tokenizer(texts, return_tensors='pt', padding=True))."
        )
    return torch.from_numpy(np.ascontiguousarray(arr))


def _targets_np(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def call_model(model: Any, inputs: Any, forward: Callable | None) -> Any:
    """Run the model on one batch (``forward(model, inputs)`` when given)."""
    if forward is not None:
        return forward(model, inputs)
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def to_device(obj: Any, device: Any) -> Any:
    if hasattr(obj, "to") and hasattr(obj, "device"):
        return obj.to(device)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


class _SliceSource:
    """A tensor or a mapping of tensors, sliced by row."""

    def __init__(self, data: Any, batch_size: int, target_keys: Sequence[str]) -> None:
        self.batch_size = batch_size
        if isinstance(data, Mapping):
            self.fields = {str(k): v for k, v in data.items()}
            missing = [k for k in target_keys if k not in self.fields]
            if missing:
                raise InvalidInputError(
                    f"target_keys {missing} are not in the data; its keys are {list(self.fields)}."
                )
            lengths = {k: len(v) for k, v in self.fields.items()}
            if len(set(lengths.values())) != 1:
                raise LengthMismatchError(
                    f"data fields have different lengths {lengths}; every field needs one row "
                    "per sample."
                )
            self.n = next(iter(lengths.values()))
        else:
            self.fields = None
            self.n = len(data)
        self.data = data
        self.target_keys = tuple(target_keys)

    def iter_from(self, row: int) -> Iterator[Batch]:
        for start in range(row, self.n, self.batch_size):
            stop = min(start + self.batch_size, self.n)
            if self.fields is None:
                yield Batch(_as_tensor(self.data[start:stop]), stop - start)
                continue
            inputs, targets = {}, {}
            for key, value in self.fields.items():
                part = value[start:stop]
                if key in self.target_keys:
                    targets[key] = _targets_np(part)
                else:
                    inputs[key] = _as_tensor(part)
            yield Batch(inputs, stop - start, targets, inputs.get("attention_mask"))


class _IterSource:
    """A DataLoader or another iterable of batches (skips whole batches to resume)."""

    def __init__(self, data: Any, target_keys: Sequence[str], target_names: Sequence[str] | None):
        self.data = data
        self.target_keys = tuple(target_keys)
        self.target_names = tuple(target_names) if target_names is not None else None
        try:
            self.n = len(data.dataset) if hasattr(data, "dataset") else None
        except TypeError:
            self.n = None

    def _convert(self, raw: Any) -> Batch:
        targets: dict[str, np.ndarray] = {}
        if isinstance(raw, list | tuple):
            if not raw:
                raise InvalidInputError("a batch is an empty tuple; yield (inputs, *targets).")
            names = self.target_names or (
                ("target",) if len(raw) == 2 else tuple(f"target_{i}" for i in range(len(raw) - 1))
            )
            if len(names) != len(raw) - 1:
                raise InvalidInputError(
                    f"batches are tuples of {len(raw)} items but target_names has {len(names)} "
                    f"names; give one name per item after the inputs."
                )
            targets = {n: _targets_np(v) for n, v in zip(names, raw[1:], strict=True)}
            raw = raw[0]
        if isinstance(raw, Mapping):
            inputs = {}
            for key, value in raw.items():
                if key in self.target_keys:
                    targets[key] = _targets_np(value)
                else:
                    inputs[key] = _as_tensor(value) if not hasattr(value, "shape") else value
            n_rows = len(next(iter(inputs.values())))
            return Batch(inputs, n_rows, targets, inputs.get("attention_mask"))
        tensor = _as_tensor(raw)
        return Batch(tensor, len(tensor), targets)

    def iter_from(self, row: int) -> Iterator[Batch]:
        seen = 0
        for raw in self.data:
            batch = self._convert(raw)
            if seen < row:
                seen += batch.n_rows
                if seen > row:
                    raise InvalidInputError(
                        f"cannot resume at sample {row}: a batch spans samples "
                        f"{seen - batch.n_rows}..{seen - 1}; the data yields different batches "
                        "than in the interrupted run (same data, batch size and order needed), "
                        "or pass overwrite=True to start over."
                    )
                continue
            yield batch


def make_source(
    data: Any,
    batch_size: int,
    target_keys: Sequence[str] = (),
    target_names: Sequence[str] | None = None,
) -> _SliceSource | _IterSource:
    """Wrap ``data`` (see module docstring) into a source with ``.n`` and ``.iter_from(row)``."""
    import torch
    from torch.utils.data import DataLoader, Dataset, RandomSampler

    if isinstance(data, torch.Tensor | np.ndarray | Mapping):
        return _SliceSource(data, batch_size, target_keys)
    if isinstance(data, list) and data and not hasattr(data[0], "__len__"):
        return _SliceSource(np.asarray(data), batch_size, target_keys)
    if isinstance(data, Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    if isinstance(data, DataLoader) and isinstance(data.sampler, RandomSampler):
        raise InvalidInputError(
            "the DataLoader shuffles (shuffle=True); capture needs a fixed order so that sample "
            "ids, targets and resume line up: pass a DataLoader with shuffle=False."
        )
    if not hasattr(data, "__iter__"):
        raise InvalidInputError(
            f"data must be a tensor/array, a dict of tensors, a DataLoader/Dataset or an iterable "
            f"of batches, got {type(data).__name__}."
        )
    return _IterSource(data, target_keys, target_names)


def fingerprint_batch(batch: Batch) -> str:
    """sha256 of a batch's input tensors (detects different data on resume)."""
    h = hashlib.sha256()
    items = batch.inputs.items() if isinstance(batch.inputs, Mapping) else [("x", batch.inputs)]
    for key, value in sorted(items, key=lambda kv: kv[0]):
        arr = value.detach().cpu().contiguous().numpy() if hasattr(value, "detach") else np.asarray(value)
        h.update(f"{key}:{arr.dtype}:{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()
