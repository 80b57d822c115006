"""Forward hooks that record one pooled output per layer per batch.

A :class:`Recorder` registers a forward hook on every captured module. For each batch it runs
the model once, takes each hooked module's output tensor (:func:`~distmi.store.modules.first_tensor`),
pools it (:func:`~distmi.store.modules.pool`, honouring the batch's attention mask), copies it
to the CPU and checks that every layer ran exactly once and returned one row per input (or,
with pooling ``"tokens"``, one row per unmasked token).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from distmi.core.errors import InvalidInputError
from distmi.store.batches import Batch, call_model, to_device
from distmi.store.modules import first_tensor, pool


class Recorder:
    """Hooks on ``layers`` of ``model``; :meth:`run` returns ``{layer: ndarray}`` per batch.

    Args:
        model: the ``torch.nn.Module``.
        layers: ``named_modules()`` paths.
        pooling: pooling per layer (already resolved).
        out_dtype: torch dtype of the recorded CPU copies (float32, or float64 to store float64).
    """

    def __init__(self, model: Any, layers: list[str], pooling: dict[str, str], out_dtype: Any):
        self.pooling = pooling
        self.out_dtype = out_dtype
        self.mask = None
        self.outputs: dict[str, Any] = {}
        self.applied: dict[str, str] = {}
        self.calls = dict.fromkeys(layers, 0)
        mods = dict(model.named_modules())
        self.handles = [mods[n].register_forward_hook(self._hook(n)) for n in layers]

    def _hook(self, name: str) -> Callable:
        def hook(_module: Any, _args: Any, output: Any) -> None:
            self.calls[name] += 1
            x = first_tensor(output, name).detach()
            pooled, applied = pool(x, self.pooling[name], self.mask, name)
            self.applied[name] = applied
            # copy: later in-place ops (e.g. ReLU(inplace=True)) must not change what we record
            self.outputs[name] = pooled.to("cpu", self.out_dtype, copy=True).numpy()

        return hook

    def expected_rows(self, batch: Batch) -> int:
        """Rows every layer must return for ``batch``: inputs, or unmasked tokens."""
        if "tokens" in self.pooling.values():
            if batch.mask is None:
                raise InvalidInputError(
                    "pooling 'tokens' needs the attention mask of the inputs (a dict batch with "
                    "'attention_mask'), to know which positions are real tokens."
                )
            return int((batch.mask != 0).sum())
        return batch.n_rows

    def run(self, model: Any, batch: Batch, device: Any, forward: Callable | None) -> dict:
        self.outputs, self.calls = {}, dict.fromkeys(self.calls, 0)
        self.mask = batch.mask.to(device) if batch.mask is not None else None
        call_model(model, to_device(batch.inputs, device), forward)
        want = self.expected_rows(batch)
        for name, count in self.calls.items():
            if count != 1:
                what = "did not run" if count == 0 else f"ran {count} times"
                raise InvalidInputError(
                    f"layer {name!r} {what} in one forward pass; capture modules that run "
                    "exactly once per batch (a reused module records ambiguous activations)."
                )
            if len(self.outputs[name]) != want:
                unit = "tokens" if want != batch.n_rows else "samples"
                raise InvalidInputError(
                    f"layer {name!r} returned {len(self.outputs[name])} rows for a batch of "
                    f"{want} {unit}; its output must have the batch as first axis."
                )
        return self.outputs

    def close(self) -> None:
        for h in self.handles:
            h.remove()
