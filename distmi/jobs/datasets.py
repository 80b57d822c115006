"""Bundled datasets a job can build on first use, and resolving a job's dataset.

A bundled dataset is a name mapped to a builder ``build(path) -> ActivationDataset`` that trains
or loads a model and captures its activations into ``path``. The built-in ones are registered
below by import path (loaded only when built); :func:`register_builtin_dataset` adds more, so a
job's ``dataset.builtin`` accepts every registered name.

:func:`resolve_dataset` makes sure the job's dataset exists before planning:

- with ``dataset.capture``: a dataset whose manifest records the capture section's hash is
  used; a missing one, one captured with another section, an unfinished capture and a dataset
  of the old format 1 are captured (again) on the job's executor, resuming committed shards;
- with ``dataset.builtin``: a missing dataset is built; one of format 1 is rebuilt;
- otherwise the folder must hold a dataset.
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
    "minilm-2048": "distmi.examples.texts:build_minilm_2048_dataset",
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


def _stored_manifest(path: Any) -> dict[str, Any] | None:
    """The parsed manifest at ``path`` without any check, or None when there is none."""
    import json

    target = path / "manifest.json"
    if not target.is_file():
        return None
    try:
        doc = json.loads(target.read_bytes())
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _is_legacy(doc: dict[str, Any] | None) -> bool:
    from distmi.store.manifest import LEGACY_VERSIONS

    return doc is not None and doc.get("format_version") in LEGACY_VERSIONS


def capture_layers(capture: Any) -> list[str] | None:
    """The layers a capture section selects, checked against the model without loading its
    weights (HuggingFace and config-built models, on PyTorch's meta device); None for models
    that would have to be built (factories, TorchScript).

    Raises:
        InvalidParameterError, UnknownLayerError: a glob or name that matches no module.
    """
    from distmi.store.capture_models import model_layers
    from distmi.store.modules import expand_layers

    source = capture.source()
    if source.kind not in ("huggingface", "config"):
        return None
    return expand_layers(model_layers(source), list(capture.layer_list()))


def _capture_reason(spec: DatasetSpec, doc: dict[str, Any] | None) -> str | None:
    """Why the capture stage must run (None: the dataset is the section's capture)."""
    from distmi.jobs.capture_spec import capture_spec_hash

    if doc is None:
        return "is missing"
    if _is_legacy(doc):
        return "is of format 1 (distmi 0.1.0), whose files carry no identity"
    recorded = doc.get("capture", {}) if isinstance(doc.get("capture"), dict) else {}
    if recorded.get("spec_hash") != capture_spec_hash(spec.capture):
        return "was captured with another capture section (or not by a job)"
    return None


def pending_build(spec: DatasetSpec) -> str | None:
    """What ``distmi run`` will build before planning (a message), or None when the dataset
    at ``spec.path`` is used as it is."""
    from distmi.core.storage import StorePath

    path = StorePath.of(spec.path)
    doc = _stored_manifest(path)
    if spec.capture is not None:
        reason = _capture_reason(spec, doc)
        if reason is None:
            return None
        layers = capture_layers(spec.capture)
        what = spec.capture.model if layers is None else (
            f"{spec.capture.model}, {len(layers)} layers: " + (
                ", ".join(layers) if len(layers) <= 4 else f"{layers[0]} .. {layers[-1]}"))
        return f"dataset {path} {reason}: it will be captured ({what}) first"
    if spec.builtin is not None and (doc is None or _is_legacy(doc)):
        return f"dataset {path} will be built ({spec.builtin}) on the first run"
    return None


def _capture(spec: DatasetSpec, path: Any, log: Any, settings: Any, address: str | None,
             threads: int | None) -> None:
    """Capture ``spec.capture`` into ``path`` on the job's executor (see module docstring)."""
    import time

    from distmi.engine.capture_run import run_capture
    from distmi.jobs.capture_spec import capture_spec_hash

    cap = spec.capture
    spec_hash = capture_spec_hash(cap)
    request = cap.request(threads=threads, record={
        "spec_hash": spec_hash, "spec": cap.model_dump(mode="json")})
    last = [0.0, time.perf_counter()]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if log is not None and (done == total or now - last[0] >= 5.0) and done:
            rate = done / max(now - last[1], 1e-9)
            log(f"captured {done}/{total} inputs ({rate:.0f} inputs/s)")
            last[0] = now

    outcome = run_capture(request, path.uri, settings=settings, address=address, replace=True,
                          log=log, progress=progress)
    if log is not None and outcome.shards_run:
        log(f"captured {outcome.dataset.n_samples} rows x {len(outcome.dataset.layers)} layers "
            f"into {path} in {outcome.seconds:.1f} s ({outcome.executor}, "
            f"{outcome.shards_run} shard(s) run, {outcome.shards_resumed} kept)")


def resolve_dataset(spec: DatasetSpec, log=None, *, settings: Any = None,
                    address: str | None = None, threads: int | None = None
                    ) -> ActivationDataset:
    """The job's dataset, built or captured first when needed (see module docstring).

    Args:
        spec: the job's ``dataset`` section.
        log: one-line messages (what is built, captured or reused).
        settings: the engine's executor settings a capture runs with (default: in-process).
        address: the Ray address a capture attaches to.
        threads: torch threads of each capture worker.

    Raises:
        StoreError: the folder is not a dataset and neither ``builtin`` nor ``capture`` is given.
    """
    from distmi.core.storage import StorePath
    from distmi.store.reader import open_dataset
    from distmi.store.writer import prepare_folder

    path = StorePath.of(spec.path)
    doc = _stored_manifest(path)
    if spec.capture is not None:
        reason = _capture_reason(spec, doc)
        if reason is not None:
            if log is not None:
                log(f"dataset {path} {reason}: capturing {spec.capture.model} into it")
            _capture(spec, path, log, settings, address, threads)
        return open_dataset(path, verify=spec.verify)
    if _is_legacy(doc) and spec.builtin is not None:
        if log is not None:
            log(f"dataset {path} is of format 1 (distmi 0.1.0), whose files carry no identity; "
                f"rebuilding the bundled {spec.builtin!r} dataset")
        prepare_folder(path, overwrite=True)
        doc = None
    if doc is None:
        if spec.builtin is None:
            raise StoreError(
                f"dataset {path} does not exist (no manifest.json); capture it first "
                "(`distmi capture ...`), fix dataset.path, set dataset.builtin to one of "
                f"{builtin_datasets()} to build a bundled example there, or add a "
                "dataset.capture section."
            )
        if log is not None:
            log(f"building the bundled {spec.builtin!r} dataset in {path} (first run only)")
        _builder(spec.builtin)(path.local or path.uri)
    return open_dataset(path, verify=spec.verify)
