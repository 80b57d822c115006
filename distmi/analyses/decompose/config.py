"""Parameters of a decomposition, validated once (pydantic); unknown names are rejected."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from distmi.analyses.decompose.locals import LOCAL_MODES
from distmi.core.errors import InvalidParameterError
from distmi.estimators.ksg_config import parse_model


class DecomposeConfig(BaseModel):
    """Settings of :func:`distmi.decompose.fit` (see its docstring for each one's meaning)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layer: str = Field(min_length=1)
    local: Literal["conv", "tokens"]
    representation: str = "auto"
    bound: Literal["jsd", "dv"] = "jsd"
    fill: Literal["auto", "noise", "mean", "zero"] = "auto"
    c: float = Field(0.5, ge=0.0, description="weight of the sparsity term c * mean(lambda)")
    epochs: int = Field(30, ge=1, le=100_000)
    batch_size: int = Field(64, ge=2, le=65_536)
    lr: float = Field(2e-3, gt=0.0, le=1.0)
    hidden: int = Field(128, ge=4, le=8192)
    embed: int = Field(64, ge=2, le=4096)
    mask_hidden: int = Field(32, ge=2, le=4096)
    n_reference: int = Field(256, ge=2, le=1_000_000)
    device: str = "auto"
    threads: int | None = Field(1, ge=1, le=1024)
    random_state: int = Field(0, ge=0)

    @property
    def resolved_fill(self) -> str:
        """``fill="auto"``: ``"noise"`` for feature maps, ``"mean"`` for tokens (measured best
        on the planted tasks; see docs/decompose.md)."""
        if self.fill != "auto":
            return self.fill
        return "noise" if self.local == "conv" else "mean"

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in ("auto", "cpu", "cuda") and not value.startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")
        return value


def parse_config(**params: object) -> DecomposeConfig:
    """Validate parameters; a wrong ``local`` or ``bound`` gets a message with the fix."""
    local = params.get("local")
    if local not in LOCAL_MODES:
        raise InvalidParameterError(
            f"local must be one of {list(LOCAL_MODES)}, got {local!r}; use 'conv' for the "
            "positions of a feature map (batch, channels, H, W) or 'tokens' for the tokens of "
            "hidden states (batch, tokens, dim)."
        )
    bound = params.get("bound", "jsd")
    if bound not in ("jsd", "dv"):
        raise InvalidParameterError(
            f"bound must be 'jsd' (Jensen-Shannon, the default) or 'dv' (Donsker-Varadhan with "
            f"MINE's gradient correction), got {bound!r}."
        )
    return parse_model(DecomposeConfig, "decomposition", params)  # type: ignore[return-value]


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op CPU threads (None: leave torch's setting); restored after.

    The critic, the mask and small models are latency-bound: extra intra-op threads only add
    synchronisation, and on a busy machine OpenMP spin-waits made a 2-thread fit of the digits
    CNN many times slower than a 1-thread one. Hence the default of 1.
    """
    import torch

    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(device: str):
    """A torch.device: ``"auto"`` is CUDA when available, else CPU; CUDA asked but absent errors."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidParameterError(
            f"device={device!r} but torch sees no CUDA device; use device='auto' or 'cpu'."
        )
    return torch.device(device)
