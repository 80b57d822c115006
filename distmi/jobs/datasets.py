"""Resolve a job's dataset: open it, or build a bundled example there when it is missing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from distmi.core.errors import StoreError

if TYPE_CHECKING:
    from distmi.jobs.spec import DatasetSpec
    from distmi.store.reader import ActivationDataset

_BUILDERS = {
    "iris": "distmi.examples.train_models:build_iris_dataset",
    "digits": "distmi.examples.train_models:build_digits_dataset",
    "minilm": "distmi.examples.texts:build_minilm_dataset",
}


def resolve_dataset(spec: DatasetSpec, log=None) -> ActivationDataset:
    """Open ``spec.path``; if it has no manifest and ``spec.builtin`` is set, build it first.

    Raises:
        StoreError: the folder is not a dataset and no ``builtin`` is given.
    """
    from distmi.store.reader import open_dataset

    path = Path(spec.path)
    if not (path / "manifest.json").is_file():
        if spec.builtin is None:
            raise StoreError(
                f"dataset {path} does not exist (no manifest.json); capture it first "
                "(`distmi capture ...`), fix dataset.path, or set dataset.builtin to one of "
                f"{sorted(_BUILDERS)} to build a bundled example there."
            )
        import importlib

        module_name, attr = _BUILDERS[spec.builtin].split(":")
        if log is not None:
            log(f"building the bundled {spec.builtin!r} dataset in {path} (first run only)")
        getattr(importlib.import_module(module_name), attr)(path)
    return open_dataset(path, verify=spec.verify)
