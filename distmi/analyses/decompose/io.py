"""Saving and loading a fitted decomposition.

A saved decomposition is a folder:

- ``modules.pt``: the critic's and the mask's state dicts and the reference bank (tensors only,
  read back with ``torch.load(weights_only=True)``);
- ``model.pt`` (optional, ``include_model=True``): the whole model, pickled with ``torch.save``
  (load it only from folders you trust: unpickling runs code);
- ``decomposition.json``, written **last**: parameters, shapes, training history, the model's
  fingerprint (SHA-256 of its state dict) and the SHA-256 of every file. A folder without it is
  incomplete; a file whose hash differs is reported as corrupt; a model whose fingerprint
  differs from the fitted one is refused, so maps are never computed with the wrong backbone.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distmi.core.atomic import atomic_write_bytes
from distmi.core.errors import CorruptDataError, InvalidInputError, StoreError

FORMAT = "distmi-decomposition/1"
MANIFEST = "decomposition.json"


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 over the model's state dict (names, dtypes, shapes and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(dec: Any, path: str | Path, include_model: bool = True) -> Path:
    """Write ``dec`` to the folder ``path`` (created; an earlier decomposition there is
    replaced, its manifest removed first so a half-written folder never looks complete)."""
    from distmi.core.version import __version__

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    srv = dec.survey_
    files: dict[str, bytes] = {
        "modules.pt": _torch_bytes({
            "critic": dec.critic_.state_dict(),
            "mask": dec.mask_.state_dict(),
            "reference": srv.reference,
        }),
    }
    if include_model:
        files["model.pt"] = _torch_bytes(dec.model)
    else:
        (folder / "model.pt").unlink(missing_ok=True)
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)
    manifest = {
        "format": FORMAT,
        "distmi_version": __version__,
        "config": dec.config.model_dump(),
        "representation": dec.representation_,
        "layer_shape": list(srv.layer_shape),
        "dim_z": srv.dim_z,
        "n_classes": srv.n_classes,
        "n_samples": srv.n_samples,
        "history": dec.history_,
        "fit_seconds": dec.fit_seconds_,
        "model_class": f"{type(dec.model).__module__}.{type(dec.model).__qualname__}",
        "model_fingerprint": dec.model_fingerprint_,
        "files": {name: _sha256(data) for name, data in files.items()},
    }
    atomic_write_bytes(folder / MANIFEST, json.dumps(manifest, indent=1).encode())
    return folder


def _read_checked(folder: Path, name: str, expected: str) -> bytes:
    file = folder / name
    if not file.exists():
        raise CorruptDataError(
            f"{file} is missing although {MANIFEST} lists it; the folder is damaged, save the "
            "decomposition again."
        )
    data = file.read_bytes()
    if _sha256(data) != expected:
        raise CorruptDataError(
            f"{file} does not match the SHA-256 recorded in {MANIFEST} (changed or truncated "
            "after saving); save the decomposition again."
        )
    return data


def load(path: str | Path, model: nn.Module | None = None):
    """Read a decomposition saved by :meth:`Decomposition.save`.

    Args:
        path: the folder.
        model: the model it was fitted on. ``None`` loads the pickled ``model.pt`` (saved with
            ``include_model=True``). A model whose weights differ from the fitted ones is
            refused.
    """
    from distmi.analyses.decompose.config import DecomposeConfig
    from distmi.analyses.decompose.decomposition import Decomposition
    from distmi.analyses.decompose.training import Survey, build_modules

    folder = Path(path)
    manifest_file = folder / MANIFEST
    if not manifest_file.exists():
        raise StoreError(
            f"{folder} holds no {MANIFEST}: it is not a saved decomposition, or saving did not "
            "finish; save it again with Decomposition.save(path)."
        )
    try:
        manifest = json.loads(manifest_file.read_text())
    except json.JSONDecodeError as exc:
        raise CorruptDataError(f"{manifest_file} is not valid JSON ({exc}).") from exc
    if manifest.get("format") != FORMAT:
        raise StoreError(
            f"{folder} has format {manifest.get('format')!r}, this distmi reads {FORMAT!r}."
        )
    modules = torch.load(io.BytesIO(_read_checked(folder, "modules.pt",
                                                  manifest["files"]["modules.pt"])),
                         weights_only=True)
    if model is None:
        if "model.pt" not in manifest["files"]:
            raise InvalidInputError(
                f"{folder} was saved without the model (include_model=False); pass it: "
                "distmi.decompose.load(path, model)."
            )
        data = _read_checked(folder, "model.pt", manifest["files"]["model.pt"])
        model = torch.load(io.BytesIO(data), weights_only=False)
    fingerprint = model_fingerprint(model)
    if fingerprint != manifest["model_fingerprint"]:
        raise InvalidInputError(
            f"the model passed is not the one this decomposition was fitted on (its weights "
            f"differ: fingerprint {fingerprint[:12]} vs {manifest['model_fingerprint'][:12]}); "
            "pass the fitted model or fit again."
        )
    cfg = DecomposeConfig(**manifest["config"])
    layer_shape = tuple(manifest["layer_shape"])
    critic_state, mask_state = modules["critic"], modules["mask"]
    srv = Survey(layer_shape, manifest["dim_z"], manifest["n_classes"], manifest["n_samples"],
                 critic_state["x_norm.mean"], critic_state["x_norm.std"],
                 critic_state["z_norm.mean"], critic_state["z_norm.std"],
                 mask_state["baseline"], mask_state["noise_std"], modules["reference"])
    critic, mask = build_modules(srv, cfg)
    critic.load_state_dict(critic_state)
    mask.load_state_dict(mask_state)
    return Decomposition(model, cfg, manifest["representation"], critic, mask, srv,
                         manifest["history"], manifest["fit_seconds"], fingerprint)
