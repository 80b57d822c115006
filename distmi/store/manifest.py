"""``manifest.json``: the table of contents of an activation dataset.

The manifest is written last, atomically, once every data file is complete; a folder without
one is not a dataset (an interrupted capture leaves ``_capture_state.json`` instead). Its sha256
(``ActivationDataset.manifest_hash``) identifies the dataset in result provenance.

Shape of the document (``format_version`` 1)::

    {"format": "distmi-activations", "format_version": 1, "distmi_version": "0.1.0",
     "layout": "unit-blocks-v1", "n_samples": N, "sample_id_dtype": "int64" | "string",
     "model": {"id": ..., ...}, "capture": {...settings...},
     "layers": {name: {"dir", "dtype", "n_units", "unit_shape", "block_units", "pooling",
                        "row_group_rows", "nonfinite": {"nan", "inf"},
                        "parts": [{"row_start", "row_stop", "file": FileRecord}]}},
     "masks": {name: same as a layer},        # e.g. the attention mask of per-token layers
     "targets": {"file": FileRecord, "columns": {name: {"kind", "dtype", ...}}}}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distmi.core.errors import CorruptDataError, StoreError
from distmi.store._format import LAYOUT, BlockLayout
from distmi.store.files import FileRecord

FORMAT = "distmi-activations"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TARGETS_FILE = "targets.parquet"
STATE_FILE = "_capture_state.json"


@dataclass(frozen=True)
class PartMeta:
    """One Parquet file of a layer: rows [row_start, row_stop)."""

    row_start: int
    row_stop: int
    file: FileRecord


@dataclass(frozen=True)
class LayerMeta:
    """Parsed manifest entry of one layer (or mask)."""

    name: str
    dir: str
    dtype: str
    n_units: int
    unit_shape: tuple[int, ...]
    block_units: int
    pooling: str
    nonfinite: dict[str, int]
    parts: tuple[PartMeta, ...]
    unit_names: tuple[str, ...] | None = None

    @property
    def layout(self) -> BlockLayout:
        return BlockLayout(self.n_units, self.block_units, self.dtype)

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> LayerMeta:
        parts = tuple(
            PartMeta(int(p["row_start"]), int(p["row_stop"]), FileRecord.from_dict(p["file"]))
            for p in d["parts"]
        )
        return cls(
            name=name,
            dir=str(d["dir"]),
            dtype=str(d["dtype"]),
            n_units=int(d["n_units"]),
            unit_shape=tuple(int(s) for s in d["unit_shape"]),
            block_units=int(d["block_units"]),
            pooling=str(d.get("pooling", "none")),
            nonfinite={k: int(v) for k, v in d.get("nonfinite", {}).items()},
            parts=parts,
            unit_names=tuple(d["unit_names"]) if d.get("unit_names") else None,
        )


def manifest_bytes_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_manifest(root: Path) -> tuple[dict[str, Any], bytes]:
    """Read and check ``root/manifest.json``; return (parsed, raw bytes)."""
    path = root / MANIFEST
    if not root.exists():
        raise StoreError(
            f"dataset folder {root} does not exist; pass the folder written by "
            "distmi.store.capture / write_dataset (or `distmi capture`)."
        )
    if not path.is_file():
        hint = (
            "it holds an unfinished capture: rerun the same capture to resume it"
            if (root / STATE_FILE).exists()
            else "it is not a distmi activation dataset"
        )
        raise StoreError(f"{root} has no manifest.json; {hint}.")
    raw = path.read_bytes()
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CorruptDataError(
            f"{path} is not valid JSON ({exc}); the manifest was edited or truncated: restore "
            "it or recapture the dataset."
        ) from exc
    _check(doc, path)
    return doc, raw


def _check(doc: Any, path: Path) -> None:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CorruptDataError(
            f"{path} is not a distmi activation manifest (format "
            f"{doc.get('format') if isinstance(doc, dict) else None!r}, expected {FORMAT!r})."
        )
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise StoreError(
            f"{path} has format_version {version!r}; this distmi reads version {FORMAT_VERSION}: "
            "upgrade distmi or recapture the dataset."
        )
    if doc.get("layout") != LAYOUT:
        raise StoreError(f"{path} uses layout {doc.get('layout')!r}; expected {LAYOUT!r}.")
    missing = [k for k in ("n_samples", "layers", "targets", "model", "capture") if k not in doc]
    if missing:
        raise CorruptDataError(
            f"{path} lacks the keys {missing}; the manifest was edited: restore it or recapture."
        )
    n = doc["n_samples"]
    for name, entry in {**doc["layers"], **doc.get("masks", {})}.items():
        try:
            meta = LayerMeta.from_dict(name, entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptDataError(
                f"{path}: entry of layer {name!r} is malformed ({exc!r}); restore the manifest "
                "or recapture."
            ) from exc
        stops = [p.row_start for p in meta.parts[1:]] + [n]
        starts = [0] + [p.row_stop for p in meta.parts[:-1]]
        if [p.row_start for p in meta.parts] != starts or [p.row_stop for p in meta.parts] != stops:
            raise CorruptDataError(
                f"{path}: the parts of layer {name!r} do not cover rows 0..{n} contiguously; "
                "restore the manifest or recapture."
            )
