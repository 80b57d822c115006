"""The state of an unfinished capture (``_capture_state.json``) and what a new call may do.

While a capture runs, ``_capture_state.json`` lists its fingerprint, its layer specs and the
parts committed so far (sorted by index; a sharded capture may commit them out of order). A
call with the same fingerprint resumes it; a call with another fingerprint is refused unless
it overwrites. A folder whose ``manifest.json`` exists holds a complete dataset: the same call
returns it, another call is refused unless it overwrites.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import numpy as np

from distmi.core.errors import StoreError
from distmi.core.storage import StorePath
from distmi.store.files import atomic_write_json
from distmi.store.manifest import MANIFEST, STATE_FILE, load_manifest
from distmi.store.reader import ActivationDataset, open_dataset
from distmi.store.writer import LayerSpec, prepare_folder


def check_existing(root: StorePath, fp: str, overwrite: bool) -> ActivationDataset | dict | None:
    """Return an existing identical dataset, the resumable state, or None (fresh start)."""
    if (root / MANIFEST).is_file() and not overwrite:
        doc, _ = load_manifest(root)
        if doc["capture"].get("fingerprint") == fp:
            return open_dataset(root)
        raise StoreError(
            f"{root} already holds a dataset captured with other settings, weights or data; pass "
            "overwrite=True (--overwrite) to replace it, or choose another folder."
        )
    state_path = root / STATE_FILE
    if state_path.is_file() and not overwrite:
        state = json.loads(state_path.read_text())
        if state.get("fingerprint") != fp:
            raise StoreError(
                f"{root} holds an unfinished capture with other settings, weights or data, so it "
                "cannot be resumed by this call; rerun the original capture to resume it, or pass "
                "overwrite=True (--overwrite) to start over."
            )
        return state
    prepare_folder(root, overwrite)
    return None


def new_state(fp: str, specs: list[LayerSpec], **extra: Any) -> dict[str, Any]:
    """The state of a capture that has committed no part yet."""
    return {"fingerprint": fp, "specs": [asdict(s) for s in specs], "parts": [], **extra}


def state_specs(state: dict[str, Any]) -> list[LayerSpec]:
    """The layer specs recorded in a state."""
    return [LayerSpec(**{**s, "unit_shape": tuple(s["unit_shape"]),
                         "unit_names": tuple(s["unit_names"]) if s.get("unit_names") else None})
            for s in state["specs"]]


def save_state(root: StorePath, state: dict[str, Any]) -> None:
    """Write the state (atomically); parts are kept sorted by index."""
    state["parts"] = sorted(state["parts"], key=lambda p: p["index"])
    atomic_write_json(root / STATE_FILE, jsonable(state))


def contiguous_parts(root: StorePath, state: dict[str, Any]) -> list[dict[str, Any]]:
    """The committed parts, which must be parts 0..k-1 for a single-process resume."""
    parts = state["parts"]
    if [p["index"] for p in parts] != list(range(len(parts))):
        raise StoreError(
            f"{root} holds an unfinished sharded capture whose committed parts "
            f"{[p['index'] for p in parts]} are not contiguous; resume it with the sharded "
            "capture (rerun the job or `distmi capture` with the same options), or pass "
            "overwrite=True (--overwrite) to start over."
        )
    return parts


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy integers as ints and tuples as lists (for JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
