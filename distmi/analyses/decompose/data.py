"""The data a decomposition is fitted on or explains: tensors, arrays, tokenizer output or loaders.

Accepted forms (``loader_or_tensors``):

- ``(inputs, labels)``: inputs a tensor / numpy array (n, ...) or a mapping of tensors (a
  tokenizer's output, every entry (n, ...)); labels integer class ids (n,), or ``None`` to use
  the model's own predictions;
- ``inputs`` alone (labels from the model's predictions; a mapping's ``"labels"`` entry, when
  present, is used as labels);
- any iterable of batches, such as a ``torch.utils.data.DataLoader``, whose batches take one of
  the forms above. It is iterated once per epoch as it is (its own shuffling applies).

In-memory data is batched by distmi in an order drawn from the decomposition's seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from distmi.core.errors import InvalidInputError, LengthMismatchError

Inputs = torch.Tensor | dict[str, torch.Tensor]


def _as_tensor(a: Any, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, np.ndarray):
        if a.dtype.kind not in "biuf":
            raise InvalidInputError(
                f"{name} must be numeric, got a numpy array of dtype {a.dtype}; convert it."
            )
        return torch.from_numpy(np.ascontiguousarray(a))
    raise InvalidInputError(
        f"{name} must be a torch tensor, a numpy array or a mapping of tensors (tokenizer "
        f"output), got {type(a).__name__}."
    )


def _as_inputs(inputs: Any) -> Inputs:
    if isinstance(inputs, Mapping):
        out = {str(k): _as_tensor(v, f"inputs[{k!r}]") for k, v in inputs.items()}
        if not out:
            raise InvalidInputError("inputs is an empty mapping; pass the tokenizer output.")
        return out
    x = _as_tensor(inputs, "inputs")
    if x.dtype == torch.float64:
        x = x.float()
    return x


def n_samples(inputs: Inputs) -> int:
    """Rows of ``inputs``; every entry of a mapping must have the same number."""
    if isinstance(inputs, dict):
        lengths = {k: int(v.shape[0]) if v.ndim else 0 for k, v in inputs.items()}
        if len(set(lengths.values())) != 1:
            raise LengthMismatchError(
                f"the input tensors have different numbers of rows {lengths}; every entry of "
                "the mapping must hold one row per sample."
            )
        return next(iter(lengths.values()))
    if inputs.ndim == 0:
        raise InvalidInputError("inputs is a scalar; pass a batch of samples (n, ...).")
    return int(inputs.shape[0])


def _as_labels(labels: Any, n: int) -> torch.Tensor | None:
    if labels is None:
        return None
    y = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
    if y.ndim != 1:
        raise InvalidInputError(
            f"labels must be one integer class id per sample, shape (n,), got shape "
            f"{tuple(y.shape)}."
        )
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        if y.dtype.is_floating_point and not torch.equal(y, y.round()):
            raise InvalidInputError(
                "labels must be integer class ids, got non-integer values; encode the "
                "classes as 0..n_classes-1."
            )
    if len(y) != n:
        raise LengthMismatchError(
            f"labels have {len(y)} entries but the inputs hold {n} samples; pass one label "
            "per sample (or labels=None to use the model's predictions)."
        )
    if len(y) and int(y.min()) < 0:
        raise InvalidInputError(f"labels must be >= 0, got {int(y.min())}.")
    return y.long()


def index_inputs(inputs: Inputs, idx: torch.Tensor | slice) -> Inputs:
    """Rows ``idx`` of a tensor or of every entry of a mapping."""
    if isinstance(inputs, dict):
        return {k: v[idx] for k, v in inputs.items()}
    return inputs[idx]


def inputs_to(inputs: Inputs, device: torch.device) -> Inputs:
    if isinstance(inputs, dict):
        return {k: v.to(device) for k, v in inputs.items()}
    return inputs.to(device)


def split_batch(batch: Any) -> tuple[Inputs, torch.Tensor | None]:
    """(inputs, labels) from one batch or one in-memory data set (see module docstring)."""
    if isinstance(batch, tuple | list):
        if len(batch) == 1:
            batch = batch[0]
        elif len(batch) == 2:
            inputs = _as_inputs(batch[0])
            return inputs, _as_labels(batch[1], n_samples(inputs))
        else:
            raise InvalidInputError(
                f"a batch must be inputs or (inputs, labels), got a sequence of {len(batch)} "
                "items."
            )
    if isinstance(batch, Mapping):
        batch = dict(batch)
        labels = batch.pop("labels", batch.pop("label", None))
        inputs = _as_inputs(batch)
        return inputs, _as_labels(labels, n_samples(inputs))
    inputs = _as_inputs(batch)
    return inputs, None


@dataclass
class Batch:
    inputs: Inputs
    labels: torch.Tensor | None


class InMemoryData:
    """All samples in memory; batches in a seeded order."""

    def __init__(self, inputs: Inputs, labels: torch.Tensor | None) -> None:
        self.inputs = inputs
        self.labels = labels
        self.n = n_samples(inputs)
        if self.n == 0:
            raise InvalidInputError("the data hold no samples; pass at least a few batches.")

    def batches(self, batch_size: int, order: np.ndarray | None = None) -> Iterator[Batch]:
        idx_all = np.arange(self.n) if order is None else order
        for s in range(0, self.n, batch_size):
            idx = torch.from_numpy(idx_all[s:s + batch_size])
            labels = None if self.labels is None else self.labels[idx]
            yield Batch(index_inputs(self.inputs, idx), labels)


class IterableData:
    """Batches from a loader (any re-iterable of batches)."""

    def __init__(self, loader: Iterable) -> None:
        self.loader = loader
        self.n: int | None = None

    def batches(self, batch_size: int, order: np.ndarray | None = None) -> Iterator[Batch]:
        count = 0
        for raw in self.loader:
            inputs, labels = split_batch(raw)
            count += n_samples(inputs)
            yield Batch(inputs, labels)
        if count == 0:
            raise InvalidInputError("the loader yielded no samples.")
        self.n = count


def as_data(loader_or_tensors: Any) -> InMemoryData | IterableData:
    """Wrap the accepted forms (see module docstring)."""
    obj = loader_or_tensors
    if isinstance(obj, torch.Tensor | np.ndarray | Mapping | tuple | list):
        inputs, labels = split_batch(obj)
        return InMemoryData(inputs, labels)
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        if iter(obj) is obj:
            raise InvalidInputError(
                "the data is a one-shot iterator; fitting iterates once per epoch, so pass a "
                "DataLoader (or another re-iterable) or in-memory tensors."
            )
        return IterableData(obj)
    raise InvalidInputError(
        f"cannot read samples from a {type(obj).__name__}; pass (inputs, labels), inputs, or a "
        "torch DataLoader."
    )
