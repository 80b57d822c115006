"""Committed results: Parquet part files per batch, a consolidated table, a manifest written last.

Layout of an output folder::

    OUTPUT/
      job.json              the job (spec, spec hash, dataset hash), written when a run starts
      parts/<key>.parquet   one file per finished batch (written to .tmp-*, then renamed)
      attribution.parquet   the sorted attribution table (written at commit)
      manifest.json         written LAST: provenance, timings, parts with sha256 and row counts

A reader trusts a folder only when ``manifest.json`` exists (:func:`load_results`); a part file
exists only once complete (atomic rename), so an interrupted run resumes from ``parts/``: the
batches whose part is present and carries this job's spec hash *and* the dataset's content hash
are skipped. Results are valid only for the dataset they were computed on: a part or a
committed table made from another dataset (a re-capture into the same folder) is stale and is
recomputed, so a resumed run never mixes two datasets. Everything loads
without distmi: ``pandas.read_parquet("OUTPUT/attribution.parquet")`` (or ``OUTPUT/parts``,
or ``duckdb.sql("select * from 'OUTPUT/attribution.parquet'")``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from distmi.core.atomic import atomic_write_bytes
from distmi.core.errors import CorruptDataError, SpecError, StoreError

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "manifest.json"
JOB = "job.json"
TABLE = "attribution.parquet"
PARTS = "parts"
FORMAT = "distmi-results"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def results_dataset_hash(manifest: dict[str, Any]) -> str | None:
    """The content hash of the dataset a committed result was computed on (None if unknown)."""
    return manifest.get("dataset_hash") or manifest.get("dataset", {}).get("manifest_sha256")


class ResultStore:
    """Writes and resumes one job's output folder (see module docstring).

    Args:
        path: the output folder.
        spec_hash: hash of the job fields that determine the numbers.
        dataset_hash: content hash of the activation dataset (the sha256 of its manifest,
            which records the sha256 of every data file). Parts and committed results carry
            it; those of another dataset are stale. ``None`` checks the spec hash only.
    """

    def __init__(self, path: str | Path, spec_hash: str, dataset_hash: str | None = None) -> None:
        self.path = Path(path)
        self.spec_hash = spec_hash
        self.dataset_hash = dataset_hash
        self.parts = self.path / PARTS

    @property
    def is_committed(self) -> bool:
        return (self.path / MANIFEST).is_file()

    def holds(self, manifest: dict[str, Any]) -> bool:
        """Whether a committed ``manifest`` is this job's result on this dataset."""
        if manifest.get("spec_hash") != self.spec_hash:
            return False
        return self.dataset_hash is None or results_dataset_hash(manifest) == self.dataset_hash

    def begin(self, job_doc: dict[str, Any], overwrite: bool = False) -> None:
        """Create the folder and ``job.json``; refuse a folder that holds a different job.

        Raises:
            SpecError: the folder holds results of another spec (and ``overwrite`` is false).
        """
        job_file = self.path / JOB
        if job_file.is_file():
            try:
                old = json.loads(job_file.read_text())
            except json.JSONDecodeError:
                old = {}
            if old.get("spec_hash") != self.spec_hash:
                if not overwrite:
                    raise SpecError(
                        f"output {self.path} holds results of a different job (spec hash "
                        f"{str(old.get('spec_hash'))[:12]}..., this job {self.spec_hash[:12]}...); "
                        "choose another output folder or pass --overwrite to replace them."
                    )
                self.clear()
        if overwrite and self.path.exists():
            self.clear()
        self.parts.mkdir(parents=True, exist_ok=True)
        doc = {"format": FORMAT, "spec_hash": self.spec_hash, **job_doc}
        atomic_write_bytes(job_file, json.dumps(doc, indent=2, sort_keys=True).encode())

    def clear(self) -> None:
        """Remove this folder's result files (only files distmi writes)."""
        for name in (MANIFEST, TABLE, JOB):
            (self.path / name).unlink(missing_ok=True)
        if self.parts.is_dir():
            for f in self.parts.iterdir():
                if f.suffix == ".parquet" or f.name.startswith(".tmp-"):
                    f.unlink()

    def uncommit(self) -> None:
        """Drop the manifest and table (before new parts are added on a resumed run)."""
        (self.path / MANIFEST).unlink(missing_ok=True)
        (self.path / TABLE).unlink(missing_ok=True)

    def done_batches(self, planned: dict[str, str]) -> set[str]:
        """Batch keys (of ``planned``: key -> batch_id) whose committed part is valid.

        Parts of other batches (another batching of the same job), of another dataset and
        unreadable parts are deleted: they are recomputed.
        """
        done: set[str] = set()
        if not self.parts.is_dir():
            return done
        for f in sorted(self.parts.iterdir()):
            if f.name.startswith(".tmp-"):
                f.unlink()
                continue
            if f.suffix != ".parquet":
                continue
            key = f.stem
            try:
                meta = pq.read_schema(f).metadata or {}
            except (OSError, pa.ArrowException):
                f.unlink()
                continue
            ok = (meta.get(b"distmi.spec_hash", b"").decode() == self.spec_hash
                  and planned.get(key) == meta.get(b"distmi.batch_id", b"").decode()
                  and (self.dataset_hash is None
                       or meta.get(b"distmi.dataset_hash", b"").decode() == self.dataset_hash))
            if ok:
                done.add(key)
            else:
                f.unlink()
        return done

    def write_part(self, key: str, batch_id: str, columns: dict[str, list[Any]],
                   info: dict[str, Any]) -> None:
        """Write one batch's rows as ``parts/<key>.parquet`` atomically."""
        table = pa.table(columns)
        meta = {"distmi.spec_hash": self.spec_hash, "distmi.batch_id": batch_id,
                "distmi.info": json.dumps(info, sort_keys=True)}
        if self.dataset_hash is not None:
            meta["distmi.dataset_hash"] = self.dataset_hash
        table = table.replace_schema_metadata(meta)
        atomic_write_bytes(self.parts / f"{key}.parquet", _table_bytes(table))

    def read_parts(self, keys: list[str]) -> pd.DataFrame:
        """Rows of the given parts (in key order)."""
        import pandas as pd

        frames = []
        for key in sorted(keys):
            try:
                frames.append(pq.read_table(self.parts / f"{key}.parquet").to_pandas())
            except (OSError, pa.ArrowException) as exc:
                raise CorruptDataError(
                    f"result part {self.parts / key}.parquet could not be read ({exc}); delete it "
                    "and run the job again to recompute it."
                ) from exc
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def part_info(self, key: str) -> dict[str, Any]:
        meta = pq.read_schema(self.parts / f"{key}.parquet").metadata or {}
        return json.loads(meta.get(b"distmi.info", b"{}").decode())

    def commit(self, frame: pd.DataFrame, keys: list[str], provenance: dict[str, Any]) -> dict[str, Any]:
        """Write ``attribution.parquet`` then ``manifest.json`` (last); return the manifest."""
        table = pa.Table.from_pandas(frame, preserve_index=False)
        atomic_write_bytes(self.path / TABLE, _table_bytes(table))
        parts = [
            {"path": f"{PARTS}/{k}.parquet", "sha256": _sha256(self.parts / f"{k}.parquet"),
             "rows": pq.read_metadata(self.parts / f"{k}.parquet").num_rows}
            for k in sorted(keys)
        ]
        manifest = {
            "format": FORMAT,
            "format_version": 1,
            "spec_hash": self.spec_hash,
            "dataset_hash": self.dataset_hash,
            "table": {"path": TABLE, "sha256": _sha256(self.path / TABLE), "rows": len(frame),
                      "columns": list(frame.columns)},
            "parts": parts,
            **provenance,
        }
        atomic_write_bytes(self.path / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        return manifest


def load_results(path: str | Path, verify: bool = False) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Load a committed result folder: (attribution table, manifest).

    Raises:
        StoreError: no manifest (the run did not finish: start it again to resume).
        CorruptDataError: ``verify`` and the table's sha256 differs from the manifest.
    """
    root = Path(path)
    mf = root / MANIFEST
    if not mf.is_file():
        hint = (" It holds parts of an unfinished run: run the job again to resume it."
                if (root / PARTS).is_dir() else "")
        raise StoreError(f"{root} holds no committed results (no {MANIFEST}).{hint}")
    manifest = json.loads(mf.read_text())
    table_path = root / manifest["table"]["path"]
    if verify and _sha256(table_path) != manifest["table"]["sha256"]:
        raise CorruptDataError(
            f"{table_path} does not match the sha256 in {mf}; rerun the job with --overwrite."
        )
    return pq.read_table(table_path).to_pandas(), manifest
