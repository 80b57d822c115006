"""Committed results: Parquet part files per batch, a consolidated table, a manifest written last.

Layout of an output folder (a local or shared path, or a URI such as ``s3://bucket/run``)::

    OUTPUT/
      job.json              the job (spec, spec hash, dataset hash), written when a run starts
      parts/<key>.parquet   one file per finished batch (written atomically)
      attribution.parquet   the sorted attribution table (written at commit)
      manifest.json         written LAST: provenance, timings; size, sha256 and row count of the
                            table and of every part

**Trust.** A reader trusts a folder only when ``manifest.json`` exists and checks out
(:func:`load_results`): the table's bytes are read once and must have the size and sha256 the
manifest recorded (so a table rewritten with other numbers, or truncated, is refused), and
every part must be present with its recorded size (one listing, no reads). ``verify=True``
also hashes every part. A truncated or edited manifest is a :class:`CorruptDataError` too.

**Parts.** Each part's schema metadata holds the spec hash, its batch id and the sha256 of
its values (:func:`table_digest`). An interrupted run resumes from ``parts/``: a part is reused
only when all three check out; any other part (another job, another batching, a damaged or
edited file) is deleted and recomputed. Everything loads without distmi:
``pandas.read_parquet("OUTPUT/attribution.parquet")`` (or ``OUTPUT/parts``, or
``duckdb.sql("select * from 'OUTPUT/attribution.parquet'")``).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distmi.core.errors import CorruptDataError, SpecError, StoreError
from distmi.core.storage import StorePath

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

MANIFEST = "manifest.json"
JOB = "job.json"
TABLE = "attribution.parquet"
PARTS = "parts"
FORMAT = "distmi-results"
FORMAT_VERSION = 2
_META_SPEC, _META_BATCH, _META_VALUES, _META_INFO = (
    b"distmi.spec_hash", b"distmi.batch_id", b"distmi.values_sha256", b"distmi.info")


def _fix(root: Any) -> str:
    return (f"run the job again (`distmi run JOB.yaml`; it rebuilds the table from the committed "
            f"parts of {root} and recomputes damaged ones), or with --overwrite to recompute "
            "everything, or restore the folder from a copy")


def table_digest(table: pa.Table) -> str:
    """sha256 of a table's column names, types, null masks and values (not of its file bytes).

    Numbers are hashed as little-endian 8-byte values, strings as length-prefixed UTF-8, so the
    digest does not depend on the Parquet writer, its version or its compression.
    """
    h = hashlib.sha256()
    for name, column in zip(table.column_names, table.columns, strict=True):
        h.update(f"{name}\0{column.type}\0{len(column)}\0".encode())
        arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        h.update(np.asarray(arr.is_null(), dtype=np.uint8).tobytes())
        if pa.types.is_integer(arr.type) or pa.types.is_boolean(arr.type):
            h.update(np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), "<i8").tobytes())
        elif pa.types.is_floating(arr.type):
            h.update(np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), "<f8").tobytes())
        else:
            for value in arr.to_pylist():
                data = b"" if value is None else str(value).encode()
                h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


class ResultStore:
    """Writes and resumes one job's output folder (see module docstring).

    Args:
        path: the output folder: a local or shared path, or a URI (``s3://bucket/prefix``).
        spec_hash: the job's spec hash; parts of other jobs are never reused.
    """

    def __init__(self, path: str | Path | StorePath, spec_hash: str) -> None:
        self.location = StorePath.of(path)
        self.path = self.location.local or self.location
        self.spec_hash = spec_hash
        self.parts = self.location / PARTS
        self._tables: dict[str, pa.Table] = {}  # parts read and verified by done_batches

    @property
    def is_committed(self) -> bool:
        return (self.location / MANIFEST).is_file()

    def begin(self, job_doc: dict[str, Any], overwrite: bool = False) -> None:
        """Create the folder and ``job.json``; refuse a folder that holds a different job.

        Raises:
            SpecError: the folder holds results of another spec (and ``overwrite`` is false).
            CorruptDataError: ``job.json`` is damaged (and ``overwrite`` is false).
        """
        job_file = self.location / JOB
        if job_file.is_file() and not overwrite:
            try:
                old = json.loads(job_file.read_bytes())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise CorruptDataError(
                    f"{job_file} is damaged ({exc}), so it is unknown which job's results "
                    f"{self.path} holds; pass --overwrite to replace them, or choose another "
                    "output folder."
                ) from exc
            if not isinstance(old, dict) or old.get("spec_hash") != self.spec_hash:
                got = old.get("spec_hash") if isinstance(old, dict) else None
                raise SpecError(
                    f"output {self.path} holds results of a different job (spec hash "
                    f"{str(got)[:12]}..., this job {self.spec_hash[:12]}...); "
                    "choose another output folder or pass --overwrite to replace them."
                )
        if overwrite and self.location.exists():
            self.clear()
        self.parts.mkdir()
        doc = {"format": FORMAT, "spec_hash": self.spec_hash, **job_doc}
        job_file.write_bytes(json.dumps(doc, indent=2, sort_keys=True).encode())

    def clear(self) -> None:
        """Remove this folder's result files (only files distmi writes)."""
        for name in (MANIFEST, TABLE, JOB):
            (self.location / name).unlink(missing_ok=True)
        for name in self.parts.listdir():
            if name.endswith(".parquet") or name.startswith(".tmp-"):
                (self.parts / name).unlink(missing_ok=True)
        self._tables.clear()

    def uncommit(self) -> None:
        """Drop the manifest and table (before new parts are added on a resumed run)."""
        (self.location / MANIFEST).unlink(missing_ok=True)
        (self.location / TABLE).unlink(missing_ok=True)

    def _valid_part(self, key: str, planned: dict[str, str], table: pa.Table) -> bool:
        """Whether a part read from disk may be reused by this run."""
        meta = table.schema.metadata or {}
        return (meta.get(_META_SPEC, b"").decode() == self.spec_hash
                and planned.get(key) == meta.get(_META_BATCH, b"").decode()
                and meta.get(_META_VALUES, b"").decode() == table_digest(table))

    def done_batches(self, planned: dict[str, str]) -> set[str]:
        """Batch keys (of ``planned``: key -> batch_id) whose committed part is valid.

        Parts of other batches (another batching of the same job), unreadable parts and parts
        whose values no longer match their recorded digest are deleted: they are recomputed.
        """
        done: set[str] = set()
        for name in self.parts.listdir():
            f = self.parts / name
            if name.startswith(".tmp-"):
                f.unlink()
                continue
            if not name.endswith(".parquet"):
                continue
            key = name[: -len(".parquet")]
            try:
                table = pq.read_table(pa.BufferReader(f.read_bytes()))
            except (OSError, pa.ArrowException):
                f.unlink()
                continue
            if self._valid_part(key, planned, table):
                done.add(key)
                self._tables[key] = table
            else:
                f.unlink()
        return done

    def write_part(self, key: str, batch_id: str, columns: dict[str, list[Any]],
                   info: dict[str, Any]) -> None:
        """Write one batch's rows as ``parts/<key>.parquet`` atomically."""
        table = pa.table(columns)
        meta = {_META_SPEC: self.spec_hash.encode(), _META_BATCH: batch_id.encode(),
                _META_VALUES: table_digest(table).encode(),
                _META_INFO: json.dumps(info, sort_keys=True).encode()}
        table = table.replace_schema_metadata(meta)
        (self.parts / f"{key}.parquet").write_bytes(_parquet_bytes(table))
        self._tables[key] = table

    def _part_table(self, key: str) -> pa.Table:
        table = self._tables.get(key)
        if table is not None:
            return table
        path = self.parts / f"{key}.parquet"
        try:
            table = pq.read_table(pa.BufferReader(path.read_bytes()))
        except (OSError, pa.ArrowException) as exc:
            raise CorruptDataError(
                f"result part {path} could not be read ({exc}); delete it and run the job again "
                "to recompute it."
            ) from exc
        recorded = (table.schema.metadata or {}).get(_META_VALUES, b"").decode()
        if recorded != table_digest(table):
            raise CorruptDataError(
                f"result part {path} holds other values than it recorded when it was written "
                "(edited or damaged); delete it and run the job again to recompute it."
            )
        self._tables[key] = table
        return table

    def read_parts(self, keys: list[str]) -> pd.DataFrame:
        """Rows of the given parts (in key order), each checked against its values digest."""
        import pandas as pd

        frames = [self._part_table(key).to_pandas() for key in sorted(keys)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def part_info(self, key: str) -> dict[str, Any]:
        meta = self._part_table(key).schema.metadata or {}
        return json.loads(meta.get(_META_INFO, b"{}").decode())

    def commit(self, frame: pd.DataFrame, keys: list[str], provenance: dict[str, Any]) -> dict[str, Any]:
        """Write ``attribution.parquet`` then ``manifest.json`` (last); return the manifest."""
        table_bytes = _parquet_bytes(pa.Table.from_pandas(frame, preserve_index=False))
        (self.location / TABLE).write_bytes(table_bytes)
        listing = self.parts.listdir()
        parts = []
        for k in sorted(keys):
            name = f"{k}.parquet"
            table = self._part_table(k)
            parts.append({
                "path": f"{PARTS}/{name}", "size": listing.get(name),
                "sha256": _sha256_bytes((self.parts / name).read_bytes()),
                "rows": table.num_rows,
                "values_sha256": (table.schema.metadata or {})[_META_VALUES].decode(),
            })
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "spec_hash": self.spec_hash,
            "table": {"path": TABLE, "size": len(table_bytes),
                      "sha256": _sha256_bytes(table_bytes), "rows": len(frame),
                      "columns": list(frame.columns)},
            "parts": parts,
            **provenance,
        }
        (self.location / MANIFEST).write_bytes(
            json.dumps(manifest, indent=2, sort_keys=True).encode())
        return manifest


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_results(path: str | Path | StorePath, verify: bool = False
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Load a committed result folder: (attribution table, manifest), checked (see module doc).

    Args:
        path: the job's output folder or URI.
        verify: also hash every part file (reads them all); the default checks the table's
            size and sha256 (its bytes are read anyway) and every part's presence and size.

    Raises:
        StoreError: no manifest (the run did not finish: start it again to resume).
        CorruptDataError: a truncated or edited manifest, a table or part that is missing or
            differs from what the manifest recorded.
    """
    root = StorePath.of(path)
    mf = root / MANIFEST
    if not mf.is_file():
        hint = (" It holds parts of an unfinished run: run the job again to resume it."
                if (root / PARTS).is_dir() else "")
        if not root.exists():
            raise StoreError(f"{root} holds no committed results: the folder does not exist; "
                             "pass the output folder of a job (its `output:`).")
        raise StoreError(f"{root} holds no committed results (no {MANIFEST}).{hint}")
    manifest = _read_manifest(mf, root)
    rec = manifest["table"]
    table_path = root / rec["path"]
    try:
        data = table_path.read_bytes()
    except FileNotFoundError:
        raise CorruptDataError(f"{table_path} is missing although {mf} lists it; {_fix(root)}.") from None
    if rec.get("size") is not None and len(data) != rec["size"]:
        raise CorruptDataError(
            f"{table_path} is {len(data)} bytes but {mf} recorded {rec['size']} (truncated or "
            f"rewritten after the job committed it); {_fix(root)}.")
    if _sha256_bytes(data) != rec["sha256"]:
        raise CorruptDataError(
            f"{table_path} does not match the sha256 recorded in {mf}: the table was rewritten "
            f"or edited after the job committed it; {_fix(root)}.")
    _check_parts(root, manifest, verify)
    try:
        table = pq.read_table(pa.BufferReader(data)).to_pandas()
    except (OSError, pa.ArrowException) as exc:  # pragma: no cover - the hash matched
        raise CorruptDataError(f"{table_path} could not be read ({exc}); {_fix(root)}.") from exc
    if len(table) != rec.get("rows", len(table)):
        raise CorruptDataError(
            f"{table_path} holds {len(table)} rows but {mf} recorded {rec['rows']}; {_fix(root)}.")
    return table, manifest


def _read_manifest(mf: StorePath, root: StorePath) -> dict[str, Any]:
    raw = mf.read_bytes()
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptDataError(
            f"{mf} is truncated or not valid JSON ({exc}); the results manifest was damaged "
            f"after the job committed it: {_fix(root)}.") from exc
    ok = (isinstance(manifest, dict) and manifest.get("format") == FORMAT
          and isinstance(manifest.get("table"), dict)
          and {"path", "sha256"} <= set(manifest["table"])
          and isinstance(manifest.get("parts"), list)
          and all(isinstance(p, dict) and {"path", "sha256"} <= set(p) for p in manifest["parts"]))
    if not ok:
        raise CorruptDataError(
            f"{mf} is not a complete distmi results manifest (format "
            f"{manifest.get('format') if isinstance(manifest, dict) else None!r}, expected "
            f"{FORMAT!r}, with 'table' and 'parts'): it was edited or truncated: {_fix(root)}.")
    return manifest


def _check_parts(root: StorePath, manifest: dict[str, Any], verify: bool) -> None:
    listing = (root / PARTS).listdir()
    for rec in manifest["parts"]:
        name = rec["path"].rsplit("/", 1)[-1]
        where = root / rec["path"]
        if name not in listing:
            raise CorruptDataError(f"result part {where} listed in the manifest is missing; "
                                   f"{_fix(root)}.")
        if rec.get("size") is not None and listing[name] != rec["size"]:
            raise CorruptDataError(
                f"result part {where} is {listing[name]} bytes but the manifest recorded "
                f"{rec['size']} (truncated or rewritten); {_fix(root)}.")
        if verify and _sha256_bytes(where.read_bytes()) != rec["sha256"]:
            raise CorruptDataError(
                f"result part {where} does not match the sha256 recorded in the manifest; "
                f"{_fix(root)}.")
    if verify and "rows" in manifest["table"]:
        total = sum(int(r.get("rows", 0)) for r in manifest["parts"])
        if total != manifest["table"]["rows"]:
            raise CorruptDataError(
                f"the parts of {root} hold {total} rows but its table {manifest['table']['rows']}; "
                f"{_fix(root)}.")
