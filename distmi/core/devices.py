"""The one device vocabulary of distmi: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` and ``"auto"``.

Every estimator parameter ``device`` (and every job's ``estimator.params.device``) is checked
here, by :func:`check_device` (a string check, no torch) or through the pydantic field type
:data:`Device`; :func:`resolve_device` turns the name into the device a kernel runs on:

- ``"cpu"``: the CPU;
- ``"cuda"``: the current CUDA device; an error if torch sees none;
- ``"cuda:N"``: CUDA device N; an error if torch sees N devices or fewer;
- ``"auto"``: ``"cuda"`` when torch sees a CUDA device, else ``"cpu"``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator

from distmi.core.errors import InvalidParameterError

DEVICE_NAMES = ("cpu", "cuda", "cuda:N", "auto")
_CUDA_INDEX = re.compile(r"cuda:(0|[1-9][0-9]*)")


def check_device(value: Any, name: str = "device") -> str:
    """Validate a device name against the vocabulary; returns it unchanged."""
    if isinstance(value, str) and (
        value in ("cpu", "cuda", "auto") or _CUDA_INDEX.fullmatch(value)
    ):
        return value
    raise InvalidParameterError(
        f"{name} must be 'cpu', 'cuda', 'cuda:N' (N = 0, 1, ...) or 'auto', got {value!r}; "
        "'auto' takes a CUDA device when there is one, else the CPU."
    )


def resolve_device(value: Any, name: str = "device") -> str:
    """The device a kernel runs on (``"cpu"``, ``"cuda"`` or ``"cuda:N"``); imports torch.

    Raises:
        InvalidParameterError: for a name outside the vocabulary, or a CUDA device torch
            cannot see (with the fix: ``device='cpu'`` or ``device='auto'``).
    """
    device = check_device(value, name)
    if device == "cpu":
        return device
    import torch

    available = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if available else "cpu"
    count = torch.cuda.device_count() if available else 0
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= count:
        seen = f"{count} CUDA device(s)" if count else "no CUDA device"
        raise InvalidParameterError(
            f"{name}={device!r} was requested but torch {torch.__version__} sees {seen}; "
            "use device='cpu', device='auto' (CUDA when present, else CPU)"
            + (f" or an index below {count}" if count else "")
            + "."
        )
    return device


def _pydantic_device(value: str) -> str:
    return check_device(value)


Device = Annotated[str, AfterValidator(_pydantic_device)]
"""A pydantic field type for ``device`` parameters (see :func:`check_device`)."""
