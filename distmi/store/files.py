"""Content hashes and atomic file writes for activation datasets.

Every data file of a dataset has a :class:`FileRecord` in the manifest: its size, the sha256 of
all its bytes and the sha256 of its Parquet footer. Checks, cheapest first:

1. size + footer hash, on the first read of a file (reads a few kB): catches truncation,
   rewrites and most edits; the footer holds the part's identity (:mod:`distmi.store.identity`),
   so two parts never share a footer;
2. the part's identity against the manifest (same footer, no extra I/O): catches swapped,
   foreign and re-typed parts and edited manifests;
3. Parquet page CRC32, on every page read: catches changed bytes in the data read;
4. full sha256, in :meth:`ActivationDataset.verify` (``distmi inspect --verify``): every byte.

Files live on any :class:`~distmi.core.storage.StorePath` (local, NFS, ``s3://``, ``gs://``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from distmi.core.errors import CorruptDataError
from distmi.core.storage import StorePath

_TAIL_GUESS = 64 * 1024


@dataclass(frozen=True)
class FileRecord:
    """Identity of one data file. ``path`` is relative to the dataset folder (POSIX)."""

    path: str
    size: int
    sha256: str
    footer_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileRecord:
        return cls(str(d["path"]), int(d["size"]), str(d["sha256"]), str(d["footer_sha256"]))


def sha256_file(path: StorePath) -> str:
    """sha256 of a whole file, streamed in 8 MiB chunks."""
    h = hashlib.sha256()
    for chunk in path.iter_chunks():
        h.update(chunk)
    return h.hexdigest()


def footer_sha256(path: StorePath, size: int | None = None) -> str:
    """sha256 of the Parquet footer (metadata + length + magic) of ``path``."""
    size = path.size() if size is None else size
    if size < 12:
        raise CorruptDataError(
            f"{path} is {size} bytes long, too short for a Parquet file; the file was "
            "truncated or overwritten: recapture or restore it."
        )
    tail = path.read_tail(min(size, _TAIL_GUESS), size)  # one read covers most footers
    if tail[-4:] != b"PAR1":
        raise CorruptDataError(
            f"{path} does not end with the Parquet magic bytes (got {tail[-4:]!r}); the file "
            "was truncated or is not Parquet: recapture or restore it."
        )
    length = int.from_bytes(tail[-8:-4], "little")
    if length + 12 > size:
        raise CorruptDataError(
            f"{path} declares a {length}-byte footer but is only {size} bytes long; "
            "the file is corrupt: recapture or restore it."
        )
    if length + 8 > len(tail):
        tail = path.read_tail(length + 8, size)
    return hashlib.sha256(tail[len(tail) - length - 8 :]).hexdigest()


def record_file(root: StorePath, path: StorePath, *, written: HashingSink | None = None
                ) -> FileRecord:
    """Hash a finished file and return its record (path relative to ``root``).

    ``written``: the sink the file was written through; its running sha256 and byte count are
    used instead of reading the whole file back (only the footer is read).
    """
    size = path.size()
    if written is not None and written.size != size:
        raise CorruptDataError(
            f"{path} is {size} bytes after writing {written.size}; the storage did not keep "
            "what was written: check the disk or bucket and write the dataset again."
        )
    return FileRecord(
        path=path.relative_to(root),
        size=size,
        sha256=written.hexdigest() if written is not None else sha256_file(path),
        footer_sha256=footer_sha256(path, size),
    )


class HashingSink:
    """A binary file-like sink that forwards writes and keeps their sha256 and byte count.

    Wrap it in ``pyarrow.PythonFile(sink, mode="w")`` for Parquet writers, so the file's hash
    is known when it is closed without reading it back.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._h = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._h.update(view)
        self.size += len(view)
        self._raw.write(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._raw.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._raw.close()

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def check_quick(root: StorePath, rec: FileRecord) -> None:
    """Size and footer check of one file (reads only the footer)."""
    path = root / rec.path
    try:
        size = path.size()
    except FileNotFoundError:
        raise CorruptDataError(
            f"dataset file {rec.path} is missing from {root}; the dataset is incomplete: "
            "restore the file or recapture the dataset."
        ) from None
    if size != rec.size:
        raise CorruptDataError(
            f"dataset file {rec.path} in {root} is {size} bytes but the manifest recorded "
            f"{rec.size}; the file was modified after capture: restore it or recapture the dataset."
        )
    got = footer_sha256(path, size)
    if got != rec.footer_sha256:
        raise CorruptDataError(
            f"dataset file {rec.path} in {root} has footer sha256 {got[:12]}..., the manifest "
            f"recorded {rec.footer_sha256[:12]}...; the file was rewritten or replaced after "
            "capture: restore it or recapture the dataset."
        )


def check_full(root: StorePath, rec: FileRecord) -> None:
    """Full content check of one file (reads every byte)."""
    check_quick(root, rec)
    got = sha256_file(root / rec.path)
    if got != rec.sha256:
        raise CorruptDataError(
            f"dataset file {rec.path} in {root} has sha256 {got[:12]}..., the manifest recorded "
            f"{rec.sha256[:12]}...; its content changed after capture (corruption or an edit): "
            "restore the file or recapture the dataset."
        )


def atomic_write_json(path: StorePath, obj: Any) -> bytes:
    """Write ``obj`` as JSON (insertion order, 1-space indent); return the bytes written."""
    data = (json.dumps(obj, indent=1) + "\n").encode("utf-8")
    path.write_bytes(data)
    return data


def tmp_name(path: StorePath) -> StorePath:
    """Name of the in-progress version of ``path`` (renamed onto ``path`` when complete)."""
    return path.parent / f".{path.name}.inprogress"
