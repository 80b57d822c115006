"""Tensors reused across the steps of a grouped training loop (see :class:`Workspace`)."""

from __future__ import annotations

import torch


class Workspace:
    """Buffers reused from one training step to the next, keyed by name.

    A step of a group of scalar pairs handles several (P, M, width) activations of 1-20 MB.
    Allocated fresh every step they are returned to the operating system and faulted back in
    page by page (on a VM that cost more than the arithmetic); reused, they stay mapped and
    warm in cache. A buffer is handed out as the leading rows of the largest one allocated
    under its name, so the working set shrinking as pairs stop costs nothing.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` (dtype and device of ``like``)."""
        buf = self._buffers.get(name)
        if (buf is None or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0]
                or buf.dtype != like.dtype or buf.device != like.device):
            buf = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._buffers[name] = buf
        return buf[: shape[0]]


def buffer(ws: Workspace | None, name: str, shape: tuple[int, ...], like: torch.Tensor
           ) -> torch.Tensor:
    """``ws.get(name, shape, like)``, or a fresh tensor when there is no workspace."""
    if ws is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    return ws.get(name, shape, like)
