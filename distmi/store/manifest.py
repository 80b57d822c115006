"""``manifest.json``: the table of contents of an activation dataset.

The manifest is written last, atomically, once every data file is complete; a folder without
one is not a dataset (an interrupted capture leaves ``_capture_state.json`` instead). Its sha256
(``ActivationDataset.manifest_hash``) identifies the dataset in result provenance.

Shape of the document (``format_version`` 2)::

    {"format": "distmi-activations", "format_version": 2, "distmi_version": "0.1.0",
     "layout": "unit-blocks-v1", "dataset_id": "...", "n_samples": N,
     "sample_id_dtype": "int64" | "string", "model": {"id": ..., ...}, "capture": {...},
     "layers": {name: {"dir", "dtype", "n_units", "unit_shape", "block_units", "pooling",
                        "row_group_rows", "nonfinite": {"nan", "inf"},
                        "parts": [{"row_start", "row_stop", "values_sha256",
                                   "file": FileRecord}]}},
     "masks": {name: same as a layer},        # e.g. the attention mask of per-token layers
     "targets": {"file": FileRecord, "columns": {name: {"kind", "dtype", ...}}}}

Format 1 (distmi 0.1.0) had no ``dataset_id`` and no per-part identity; such datasets are
refused with a message (re-capture them, or :func:`distmi.store.upgrade_dataset` them).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from distmi.core.errors import CorruptDataError, StoreError
from distmi.core.storage import StorePath
from distmi.store._format import DTYPES, LAYOUT, BlockLayout
from distmi.store.files import FileRecord
from distmi.store.identity import PartIdentity

FORMAT = "distmi-activations"
FORMAT_VERSION = 2
#: Format versions that exist but are not read any more (see :func:`load_manifest`).
LEGACY_VERSIONS = (1,)
MANIFEST = "manifest.json"
TARGETS_FILE = "targets.parquet"
STATE_FILE = "_capture_state.json"


@dataclass(frozen=True)
class PartMeta:
    """One Parquet file of a layer: rows [row_start, row_stop) with its values hash."""

    row_start: int
    row_stop: int
    file: FileRecord
    values_sha256: str = ""


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
    role: str = "layer"  # "layer" or "mask"

    @property
    def layout(self) -> BlockLayout:
        return BlockLayout(self.n_units, self.block_units, self.dtype)

    def identity(self, dataset_id: str, part: int) -> PartIdentity:
        """What part ``part`` of this layer must hold, according to the manifest."""
        p = self.parts[part]
        return PartIdentity(
            dataset_id=dataset_id, role=self.role, layer=self.name, part=part,
            row_start=p.row_start, row_stop=p.row_stop, dtype=self.dtype,
            n_units=self.n_units, unit_shape=self.unit_shape, block_units=self.block_units,
            values_sha256=p.values_sha256,
        )

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any], role: str = "layer") -> LayerMeta:
        parts = tuple(
            PartMeta(int(p["row_start"]), int(p["row_stop"]), FileRecord.from_dict(p["file"]),
                     str(p.get("values_sha256", "")))
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
            role=role,
        )


def manifest_bytes_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_manifest(root: StorePath) -> tuple[dict[str, Any], bytes]:
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
    doc = parse_manifest(raw, path)
    _check_version(doc, path)
    _check(doc, path)
    return doc, raw


def parse_manifest(raw: bytes, path: StorePath) -> dict[str, Any]:
    """Parse manifest bytes; a truncated or non-JSON file is a CorruptDataError."""
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptDataError(
            f"{path} is not valid JSON ({exc}); the manifest was edited or truncated: restore "
            "it or recapture the dataset."
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CorruptDataError(
            f"{path} is not a distmi activation manifest (format "
            f"{doc.get('format') if isinstance(doc, dict) else None!r}, expected {FORMAT!r})."
        )
    return doc


def _check_version(doc: dict[str, Any], path: StorePath) -> None:
    version = doc.get("format_version")
    if version in LEGACY_VERSIONS:
        root = path.parent
        raise StoreError(
            f"{root} is an activation dataset of format {version} (written by distmi "
            f"{doc.get('distmi_version', '?')}), whose files carry no identity, so a swapped or "
            "foreign file could not be detected on read. Re-capture it (rerun the capture with "
            "overwrite=True, or `distmi capture ... --overwrite`), or upgrade it in place with "
            f"`distmi upgrade-dataset {root}` (hashes every file against the manifest, then "
            "records each part's identity)."
        )
    if version != FORMAT_VERSION:
        raise StoreError(
            f"{path} has format_version {version!r}; this distmi reads version {FORMAT_VERSION}: "
            "upgrade distmi or recapture the dataset."
        )


_SHA256_HEX = 64


def _check(doc: Any, path: StorePath) -> None:
    if doc.get("layout") != LAYOUT:
        raise StoreError(f"{path} uses layout {doc.get('layout')!r}; expected {LAYOUT!r}.")
    missing = [k for k in ("n_samples", "layers", "targets", "model", "capture", "dataset_id")
               if k not in doc]
    if missing:
        raise CorruptDataError(
            f"{path} lacks the keys {missing}; the manifest was edited: restore it or recapture."
        )
    n = doc["n_samples"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise CorruptDataError(
            f"{path}: n_samples is {n!r}, not a positive integer; the manifest was edited: "
            "restore it or recapture."
        )
    entries = [(name, e, "layer") for name, e in _section(doc, "layers", path).items()]
    entries += [(name, e, "mask") for name, e in _section(doc, "masks", path).items()]
    for name, entry, role in entries:
        try:
            meta = LayerMeta.from_dict(name, entry, role)
            if meta.dtype not in DTYPES:
                raise ValueError(f"dtype {meta.dtype!r} is not one of {list(DTYPES)}")
            if math.prod(meta.unit_shape) != meta.n_units or meta.block_units < 1:
                raise ValueError(f"unit_shape {list(meta.unit_shape)} does not hold "
                                 f"n_units={meta.n_units} (block_units={meta.block_units})")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptDataError(
                f"{path}: entry of {role} {name!r} is malformed ({exc!r}); restore the manifest "
                "or recapture."
            ) from exc
        if any(len(p.values_sha256) != _SHA256_HEX for p in meta.parts):
            raise CorruptDataError(
                f"{path}: a part of {role} {name!r} has no values_sha256; the manifest was "
                "edited: restore it or recapture."
            )
        stops = [p.row_start for p in meta.parts[1:]] + [n]
        starts = [0] + [p.row_stop for p in meta.parts[:-1]]
        if [p.row_start for p in meta.parts] != starts or [p.row_stop for p in meta.parts] != stops:
            raise CorruptDataError(
                f"{path}: the parts of {role} {name!r} do not cover rows 0..{n} contiguously; "
                "restore the manifest or recapture."
            )


def _section(doc: dict[str, Any], key: str, path: StorePath) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise CorruptDataError(
            f"{path}: {key!r} is a {type(value).__name__}, not a mapping; the manifest was "
            "edited: restore it or recapture."
        )
    return value
