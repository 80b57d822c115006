"""Saving and loading a :class:`~distmi.analyses.nif.flow.Flow`.

A saved flow is a folder of tables that load without distmi
(``pandas.read_parquet("FLOW/links.parquet")``)::

    FLOW/
      links.parquet            one row per link (see Flow.links)
      neurons.parquet          one row per node
      attribution.parquet      long table: feature, output, attribution, std, ci_low, ci_high
      raw_mi.parquet           feature vs class indicator MI with intervals
      replicates.npz           nif (links x B) and attribution (B x d x C) replicates
      summary.json             written LAST: graph, settings, provenance, file sha256s

A folder without ``summary.json`` (an interrupted save) is refused, and so is one whose files
do not match the sha256 recorded in it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distmi.core.atomic import atomic_write_bytes
from distmi.core.errors import CorruptDataError, StoreError

FORMAT = "distmi-nif"
VERSION = 1
_TABLES = ("links", "neurons", "attribution", "raw_mi")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def save_flow(flow: Any, path: str | Path) -> Path:
    """Write ``flow`` to the folder ``path`` (created; files of an older save are replaced)."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    (root / "summary.json").unlink(missing_ok=True)  # uncommit first
    _write_parquet(flow.links, root / "links.parquet")
    _write_parquet(flow.neurons, root / "neurons.parquet")
    _write_parquet(flow.attribution_ci, root / "attribution.parquet")
    _write_parquet(flow.raw_table, root / "raw_mi.parquet")
    import io

    buf = io.BytesIO()
    np.savez(buf, nif=flow.nif_replicates, attribution=flow.attribution_replicates)
    atomic_write_bytes(root / "replicates.npz", buf.getvalue())
    files = {f"{t}.parquet": _sha256(root / f"{t}.parquet") for t in _TABLES}
    files["replicates.npz"] = _sha256(root / "replicates.npz")
    doc = {
        "format": FORMAT, "version": VERSION, "unit": "nat",
        "graph": flow.graph.to_dict(),
        "features": list(flow.attribution.index), "outputs": list(flow.attribution.columns),
        "classes": list(flow.raw_mi.columns),
        "settings": flow.settings, "info": flow.info, "summary": flow.summary(),
        "files": files,
    }
    atomic_write_bytes(root / "summary.json",
                       json.dumps(_jsonable(doc), indent=2, sort_keys=True).encode())
    return root


def load_flow(path: str | Path) -> Any:
    """Read a flow written by :meth:`Flow.save`.

    Raises:
        StoreError: ``path`` holds no complete saved flow (no ``summary.json``).
        CorruptDataError: a file differs from the sha256 recorded at save time.
    """
    from distmi.analyses.nif.flow import Flow
    from distmi.analyses.nif.graph import FlowGraph

    root = Path(path)
    summary = root / "summary.json"
    if not summary.is_file():
        raise StoreError(
            f"{root} holds no saved NIF flow (no summary.json); save one with flow.save(path) or "
            "`distmi nif ... --out DIR` (an interrupted save must be written again)."
        )
    doc = json.loads(summary.read_text())
    if doc.get("format") != FORMAT:
        raise StoreError(f"{summary} is not a NIF flow summary (format {doc.get('format')!r}).")
    for name, digest in doc["files"].items():
        f = root / name
        if not f.is_file() or _sha256(f) != digest:
            raise CorruptDataError(
                f"{f} is missing or does not match the sha256 recorded in {summary}; save the "
                "flow again."
            )
    links = pd.read_parquet(root / "links.parquet")
    neurons = pd.read_parquet(root / "neurons.parquet")
    attribution_ci = pd.read_parquet(root / "attribution.parquet")
    raw_table = pd.read_parquet(root / "raw_mi.parquet")
    reps = np.load(root / "replicates.npz")
    features, outputs, classes = doc["features"], doc["outputs"], doc["classes"]
    attribution = (attribution_ci.pivot(index="feature", columns="output", values="attribution")
                   .reindex(index=features, columns=outputs))
    attribution.index.name, attribution.columns.name = "feature", "output"
    raw_mi = pd.DataFrame(0.0, index=pd.Index(features, name="feature"),
                          columns=pd.Index(classes, name="class"))
    for f, c, v in zip(raw_table["feature"], raw_table["class"], raw_table["mi"], strict=True):
        raw_mi.iat[int(f), int(c)] = v
    return Flow(FlowGraph.from_dict(doc["graph"]), links, neurons, attribution,
                attribution_ci, raw_mi, raw_table, doc["settings"], doc["info"],
                reps["nif"], reps["attribution"])
