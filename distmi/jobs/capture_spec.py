"""The ``capture:`` stage of a job: which model, inputs and layers make the dataset.

Inside ``dataset:``, a ``capture:`` section says how to build the dataset when it is missing
or was captured with another capture section (its *capture spec hash*, recorded in the
dataset's manifest, differs): ``distmi run`` then captures first (sharded over the job's
workers, :func:`distmi.engine.capture_run.run_capture`) and sweeps after::

    dataset:
      path: out/minilm-20k
      capture:
        model: minilm                      # registered | module:factory | folder | cached HF id
        inputs: {set: concept_texts, params: {n: 20000, seed: 0}}
        layers: "encoder.layer.*"          # names, globs, or all
        pooling: mean                      # none | mean | cls | max | last, or per layer/glob
        batch_size: 64
        dtype: float32                     # float32 | float16 | bfloat16
        device: auto                       # auto | cpu | cuda | cuda:N

Everything is validated here (the model reference resolved without loading it, the input set
registered, exactly one kind of inputs); layer names and globs are checked against the model
when it is loaded (``distmi validate`` lists them for HuggingFace models without loading
weights). :meth:`CaptureSpec.request` converts the section into the store's plain
:class:`~distmi.store.capture_session.CaptureRequest`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from distmi.core.errors import DistmiError

POOLING_NAMES = ("none", "mean", "cls", "first", "last", "max", "tokens", "spatial_mean")
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class InputsSpec(_Strict):
    """Where the inputs come from: exactly one of ``set``, ``path`` or ``factory``."""

    set: str | None = None  # a registered input set (distmi.store.capture_input_sets())
    path: str | None = None  # .parquet / .csv / .jsonl (texts or numeric columns), .npy, .pt
    factory: str | None = None  # package.module:function
    params: dict[str, Any] = Field(default_factory=dict)  # keyword arguments of set / factory
    text_column: str | None = None
    columns: list[str] | None = None
    targets: list[str] | None = None  # target columns of a file (default: every other column)
    token_targets: dict[str, list[str] | dict[str, list[str]]] = Field(default_factory=dict)
    max_length: int | None = Field(None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _one_source(self) -> InputsSpec:
        given = [k for k in ("set", "path", "factory") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"inputs needs exactly one of set, path or factory, got {given or 'none'}")
        if self.set is not None:
            from distmi.store.capture_inputs import check_input_set

            try:
                check_input_set(self.set)
            except DistmiError as exc:
                raise ValueError(str(exc)) from None
        if self.path is None and (self.text_column or self.columns or self.targets is not None):
            raise ValueError("text_column, columns and targets choose columns of a file: use "
                             "them with inputs.path")
        if self.text_column and self.columns:
            raise ValueError("give text_column (texts) or columns (numbers), not both")
        if self.factory is not None and ":" not in self.factory:
            raise ValueError(f"factory must be 'package.module:function', got {self.factory!r}")
        return self

    def ref(self) -> Any:
        """The store's :class:`~distmi.store.capture_inputs.InputsRef`."""
        from distmi.store.capture_inputs import InputsRef

        kind, target = next((k, getattr(self, k)) for k in ("set", "path", "factory")
                            if getattr(self, k) is not None)
        return InputsRef(
            kind="file" if kind == "path" else kind, target=target, params=dict(self.params),
            text_column=self.text_column,
            columns=tuple(self.columns) if self.columns is not None else None,
            targets=tuple(self.targets) if self.targets is not None else None,
            token_targets=dict(self.token_targets), max_length=self.max_length)


class CaptureSpec(_Strict):
    """How a job's dataset is captured (see the module docstring)."""

    model: str = Field(min_length=1)
    model_params: dict[str, Any] = Field(default_factory=dict)  # keyword arguments of a factory
    tokenizer: str | None = None
    model_id: str | None = None
    seed: int = Field(0, ge=0, lt=2**63)  # random initialisation of config-built models
    inputs: InputsSpec
    layers: str | list[str] = "all"
    pooling: str | dict[str, str] = "mean"
    batch_size: int = Field(64, ge=1, le=1_000_000)
    dtype: Literal["float32", "float16", "bfloat16", "float64"] = "float32"
    device: str = "auto"
    rows_per_shard: int = Field(2048, ge=1, le=100_000_000)
    on_nonfinite: Literal["raise", "keep"] = "raise"
    target_kinds: dict[str, Literal["categorical", "continuous"]] | None = None

    @field_validator("layers")
    @classmethod
    def _layers(cls, value: str | list[str]) -> str | list[str]:
        names = [value] if isinstance(value, str) else value
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError("layers needs at least one name, glob (encoder.layer.*) or 'all'")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"layers lists {dup} more than once; list each once")
        return value

    @field_validator("pooling")
    @classmethod
    def _pooling(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        items = [("", value)] if isinstance(value, str) else list(value.items())
        if not items:
            raise ValueError("pooling is an empty mapping; give one pooling or layer -> pooling")
        for layer, name in items:
            if name not in POOLING_NAMES:
                where = f" of {layer!r}" if layer else ""
                raise ValueError(
                    f"pooling{where} must be one of {list(POOLING_NAMES)} (or a mapping of layer "
                    f"names, globs or 'default' to poolings), got {name!r}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    @field_validator("model")
    @classmethod
    def _model_exists(cls, value: str) -> str:
        _resolve(value, None)
        return value

    def source(self) -> Any:
        """The model reference resolved (:class:`~distmi.store.capture_models.ModelSource`)."""
        return _resolve(self.model, self.tokenizer, self.model_params, self.model_id, self.seed)

    def layer_list(self) -> tuple[str, ...]:
        return (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)

    def request(self, *, threads: int | None = None, record: dict[str, Any] | None = None) -> Any:
        """The store's :class:`~distmi.store.capture_session.CaptureRequest` of this section."""
        from distmi.store.capture_session import CaptureRequest

        pooling = self.pooling if isinstance(self.pooling, str) else tuple(self.pooling.items())
        return CaptureRequest(
            model=self.source(), inputs=self.inputs.ref(), layers=self.layer_list(),
            pooling=pooling, batch_size=self.batch_size, dtype=self.dtype, device=self.device,
            rows_per_part=self.rows_per_shard, on_nonfinite=self.on_nonfinite,
            target_kinds=self.target_kinds, threads=threads, record=record or {})


def _resolve(model: str, tokenizer: str | None, params: dict | None = None,
             model_id: str | None = None, seed: int = 0) -> Any:
    from distmi.store.capture_models import resolve_model

    try:
        return resolve_model(model, tokenizer=tokenizer, params=params, model_id=model_id,
                             seed=seed)
    except DistmiError as exc:
        raise ValueError(str(exc)) from None


def _model_stamp(spec: CaptureSpec) -> dict[str, Any] | None:
    """For a local model folder or file: names and sizes of its files, and config.json's hash,
    so that a model replaced in place changes the capture spec hash."""
    source = spec.source()
    if source.kind not in ("huggingface", "torchscript"):
        return None
    path = Path(source.target)
    files = sorted(p for p in (path.rglob("*") if path.is_dir() else [path]) if p.is_file())
    stamp: dict[str, Any] = {"files": [[p.name, p.stat().st_size] for p in files]}
    config = path / "config.json"
    if config.is_file():
        stamp["config_sha256"] = hashlib.sha256(config.read_bytes()).hexdigest()
    return stamp


def capture_spec_hash(spec: CaptureSpec) -> str:
    """sha256 of the capture section (and of the model folder's file list, for local models).

    A dataset whose manifest records this hash was captured by this section and is reused;
    any other is captured again.
    """
    doc = {"spec": spec.model_dump(mode="json"), "model_files": _model_stamp(spec)}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


__all__ = ["CaptureSpec", "InputsSpec", "capture_spec_hash"]
