"""Bundled datasets a job can build on first use, and resolving a job's dataset.

A bundled dataset is a name mapped to a builder ``build(path) -> ActivationDataset`` that trains
or loads a model and captures its activations into ``path``. The built-in ones are registered
below by import path (loaded only when built); :func:`register_builtin_dataset` adds more, so a
job's ``dataset.builtin`` accepts every registered name.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distmi.core.errors import InvalidParameterError, StoreError

if TYPE_CHECKING:
    from distmi.jobs.spec import DatasetSpec
    from distmi.store.reader import ActivationDataset

# name -> "module:function" or a callable taking the target folder
_BUILDERS: dict[str, str | Callable[[Path], Any]] = {
    "iris": "distmi.examples.train_models:build_iris_dataset",
    "digits": "distmi.examples.train_models:build_digits_dataset",
    "minilm": "distmi.examples.texts:build_minilm_dataset",
}


def register_builtin_dataset(name: str, builder: str | Callable[[Path], Any], *,
                             overwrite: bool = False) -> None:
    """Make ``dataset.builtin: name`` build a dataset with ``builder(path)``.

    Args:
        name: the name jobs use.
        builder: a callable, or ``"module:function"`` imported when first built.
        overwrite: replace an existing registration.
    """
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(f"a bundled dataset needs a non-empty name, got {name!r}.")
    if name in _BUILDERS and not overwrite:
        raise InvalidParameterError(
            f"bundled dataset {name!r} is already registered; pass overwrite=True to replace it."
        )
    _BUILDERS[name] = builder


def builtin_datasets() -> list[str]:
    """Names accepted by ``dataset.builtin``."""
    return sorted(_BUILDERS)


def check_builtin_name(name: str) -> str:
    """``name`` if registered, else a ValueError listing the names (with a close match)."""
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, builtin_datasets(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown bundled dataset {name!r}; registered: {builtin_datasets()}.{hint}"
        )
    return name


def _builder(name: str) -> Callable[[Path], Any]:
    target = _BUILDERS[check_builtin_name(name)]
    if callable(target):
        return target
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def resolve_dataset(spec: DatasetSpec, log=None) -> ActivationDataset:
    """Open ``spec.path``; if it has no manifest and ``spec.builtin`` is set, build it first.

    Raises:
        StoreError: the folder is not a dataset and no ``builtin`` is given.
    """
    from distmi.core.storage import StorePath
    from distmi.store.reader import open_dataset

    path = StorePath.of(spec.path)
    if not (path / "manifest.json").is_file():
        if spec.builtin is None:
            raise StoreError(
                f"dataset {path} does not exist (no manifest.json); capture it first "
                "(`distmi capture ...`), fix dataset.path, or set dataset.builtin to one of "
                f"{builtin_datasets()} to build a bundled example there."
            )
        if log is not None:
            log(f"building the bundled {spec.builtin!r} dataset in {path} (first run only)")
        _builder(spec.builtin)(path.local or path.uri)
    return open_dataset(path, verify=spec.verify)
