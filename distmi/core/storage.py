"""Where datasets and results live: local or NFS paths and URIs (``s3://``, ``gs://``, ...).

Every stored file of distmi (activation datasets, job results) is addressed by a
:class:`StorePath`: a pyarrow filesystem (:func:`pyarrow.fs.FileSystem.from_uri`) plus a path
on it, with the few operations the store needs (read, atomic write, list, delete, rename).
A cluster shares data by pointing every node at the same URI or at the same path of a shared
volume; relative local paths are resolved against the current directory once, where the path
is given, so the absolute path travels to the workers.

Credentials never travel in a URI: a URI with ``user:password@`` or a credential query
parameter (``access_key``, ``secret_key``, ``session_token``, ...) is refused, so manifests,
results and logs (which record the URI) cannot leak them. pyarrow reads credentials from the
environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
``AWS_ENDPOINT_URL`` for S3-compatible servers, instance or pod roles, and
``GOOGLE_APPLICATION_CREDENTIALS`` for ``gs://``). Non-secret options may stay in the URI
(``s3://bucket/path?region=eu-west-1&endpoint_override=minio:9000&scheme=http``).

Writes are atomic where the storage allows: a local file is written to a temporary sibling,
fsynced and renamed; an object-store upload becomes visible only when it completes. Readers
never rely on that alone: the manifests written last list every file with its size and hashes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from distmi.core.atomic import atomic_write_bytes
from distmi.core.errors import InvalidParameterError

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Query parameters of pyarrow filesystem URIs that carry secrets.
_SECRET_KEYS = re.compile(r"(access_key|secret|session_token|token|password|credential|sas)",
                          re.IGNORECASE)
_CHUNK = 8 * 1024 * 1024


def is_uri(where: Any) -> bool:
    """True for ``scheme://...`` strings (``file://`` included), False for plain paths."""
    return isinstance(where, str) and bool(_URI.match(where))


def check_uri(uri: str) -> str:
    """Refuse URIs that carry credentials; return ``uri`` unchanged.

    Raises:
        InvalidParameterError: ``user[:password]@`` in the authority, or a secret query
            parameter; the message says to use the environment instead.
    """
    parts = urlsplit(uri)
    if "@" in parts.netloc:
        shown = f"{parts.scheme}://***@{parts.netloc.rsplit('@', 1)[1]}{parts.path}"
        raise InvalidParameterError(
            f"the URI {shown} carries credentials (user:password@); they would be recorded in "
            "manifests, results and logs. Remove them from the URI and give them in the "
            "environment instead (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, "
            "an instance or pod role, or GOOGLE_APPLICATION_CREDENTIALS)."
        )
    secret = [k for k, _ in parse_qsl(parts.query) if _SECRET_KEYS.search(k)]
    if secret:
        raise InvalidParameterError(
            f"the URI {parts.scheme}://{parts.netloc}{parts.path} carries the credential "
            f"parameter(s) {secret}; they would be recorded in manifests, results and logs. "
            "Remove them from the URI and set them in the environment (AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, or an instance or pod role)."
        )
    return uri


class StorePath:
    """A file or folder on a pyarrow filesystem (see the module docstring).

    Build one with :meth:`of`. ``str(p)`` is what the user gave (a path as typed or a URI) and is
    what messages show; :attr:`uri` is the absolute form that other processes and nodes can
    open (an absolute local path, or the URI).

    Attributes:
        fs: the ``pyarrow.fs.FileSystem``.
        fs_path: the path on ``fs`` (absolute for local files, ``bucket/key`` for S3).
        uri: absolute local path or URI (no credentials).
        local: the local ``pathlib.Path`` as given, or None for object storage.
    """

    __slots__ = ("fs", "fs_path", "local", "shown", "uri")

    def __init__(self, fs: Any, fs_path: str, uri: str, local: Path | None, shown: str) -> None:
        self.fs = fs
        self.fs_path = fs_path
        self.uri = uri
        self.local = local
        self.shown = shown

    @classmethod
    def of(cls, where: str | os.PathLike | StorePath) -> StorePath:
        """A StorePath for a local path, a ``scheme://`` URI or an existing StorePath.

        Raises:
            InvalidParameterError: an empty location, a URI with credentials, or a URI that no
                pyarrow filesystem understands.
        """
        if isinstance(where, StorePath):
            return where
        if isinstance(where, os.PathLike) or not is_uri(where):
            text = os.fspath(where)
            if not text:
                raise InvalidParameterError("a dataset or output location is empty; pass a path or URI.")
            return cls._local(Path(text))
        from pyarrow import ArrowException
        from pyarrow import fs as pafs

        check_uri(where)
        if where.startswith("file://"):
            return cls._local(Path(urlsplit(where).path))
        try:
            fs, fs_path = pafs.FileSystem.from_uri(where)
        except (ArrowException, ValueError) as exc:
            raise InvalidParameterError(
                f"cannot open {where!r} ({exc}); use a local or shared-volume path, or a URI "
                "pyarrow supports (s3://bucket/prefix, gs://bucket/prefix, hdfs://host/path)."
            ) from exc
        clean = where.split("?", 1)[0].rstrip("/")
        return cls(fs, fs_path.rstrip("/"), where.rstrip("/"), None, clean)

    @classmethod
    def _local(cls, path: Path) -> StorePath:
        from pyarrow import fs as pafs

        absolute = os.path.abspath(path)
        return cls(pafs.LocalFileSystem(), absolute, absolute, path, str(path))

    # ---- naming ---------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return self.local is not None

    @property
    def name(self) -> str:
        return PurePosixPath(self.fs_path).name

    def __truediv__(self, rel: str) -> StorePath:
        rel = str(rel).strip("/")
        if self.local is not None:
            return StorePath._local(self.local / rel)
        base, _, query = self.uri.partition("?")
        uri = f"{base.rstrip('/')}/{rel}" + (f"?{query}" if query else "")
        return StorePath(self.fs, f"{self.fs_path}/{rel}", uri, None, f"{self.shown}/{rel}")

    @property
    def parent(self) -> StorePath:
        if self.local is not None:
            return StorePath._local(self.local.parent)
        head = self.fs_path.rsplit("/", 1)[0]
        base, _, query = self.uri.partition("?")
        uri = base.rsplit("/", 1)[0] + (f"?{query}" if query else "")
        return StorePath(self.fs, head, uri, None, self.shown.rsplit("/", 1)[0])

    def relative_to(self, other: StorePath) -> str:
        """POSIX path of ``self`` below ``other``."""
        return PurePosixPath(self.fs_path).relative_to(other.fs_path).as_posix()

    def __str__(self) -> str:
        return self.shown

    def __repr__(self) -> str:
        return f"StorePath({self.uri!r})"

    def __fspath__(self) -> str:
        if self.local is None:
            raise TypeError(f"{self.uri} is not a local path; open it through distmi.core.storage.")
        return str(self.local)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorePath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    # ---- queries --------------------------------------------------------------------------
    def _info(self):
        from pyarrow import fs as pafs

        return self.fs.get_file_info(self.fs_path), pafs.FileType

    def exists(self) -> bool:
        if self.local is not None:
            return self.local.exists()
        info, kind = self._info()
        return info.type != kind.NotFound

    def is_file(self) -> bool:
        if self.local is not None:
            return self.local.is_file()
        info, kind = self._info()
        return info.type == kind.File

    def is_dir(self) -> bool:
        if self.local is not None:
            return self.local.is_dir()
        info, kind = self._info()
        return info.type == kind.Directory

    def size(self) -> int:
        """Size in bytes (raises FileNotFoundError when missing)."""
        if self.local is not None:
            return self.local.stat().st_size
        info, kind = self._info()
        if info.type != kind.File:
            raise FileNotFoundError(self.shown)
        return int(info.size)

    def listdir(self) -> dict[str, int | None]:
        """``{name: size (None for folders)}`` of the entries directly inside this folder."""
        from pyarrow import fs as pafs

        if not self.is_dir():
            return {}
        infos = self.fs.get_file_info(pafs.FileSelector(self.fs_path, recursive=False))
        return {PurePosixPath(i.path).name: (i.size if i.type == pafs.FileType.File else None)
                for i in infos}

    def iterdir(self) -> Iterator[StorePath]:
        for name in sorted(self.listdir()):
            yield self / name

    # ---- reading --------------------------------------------------------------------------
    def read_bytes(self) -> bytes:
        if self.local is not None:
            return self.local.read_bytes()
        with self.fs.open_input_stream(self.fs_path) as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def open_input(self) -> Any:
        """A random-access file (pyarrow ``NativeFile``) for Parquet readers."""
        return self.fs.open_input_file(self.fs_path)

    def parquet_source(self) -> Any:
        """What ``pyarrow.parquet`` readers take: the local path, or an open remote file."""
        return str(self.local) if self.local is not None else self.open_input()

    def iter_chunks(self, chunk: int = _CHUNK) -> Iterator[bytes]:
        if self.local is not None:
            with open(self.local, "rb") as f:
                while data := f.read(chunk):
                    yield data
            return
        with self.fs.open_input_stream(self.fs_path) as f:
            while data := f.read(chunk):
                yield data

    def read_tail(self, n: int, size: int | None = None) -> bytes:
        """The last ``n`` bytes (fewer when the file is shorter)."""
        size = self.size() if size is None else size
        n = min(n, size)
        if self.local is not None:
            with open(self.local, "rb") as f:
                f.seek(size - n)
                return f.read(n)
        with self.open_input() as f:
            return f.read_at(n, size - n)

    # ---- writing --------------------------------------------------------------------------
    def mkdir(self) -> None:
        """Create this folder and its parents (a no-op on object stores without folders)."""
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)
        else:
            self.fs.create_dir(self.fs_path, recursive=True)

    def write_bytes(self, data: bytes) -> None:
        """Write ``data`` atomically: readers see the old file or the whole new one."""
        if self.local is not None:
            self.local.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.local, data)
            return
        with self.fs.open_output_stream(self.fs_path) as f:
            f.write(data)

    def open_output(self) -> Any:
        """A pyarrow output stream (the caller closes it)."""
        if self.local is not None:
            self.local.parent.mkdir(parents=True, exist_ok=True)
        return self.fs.open_output_stream(self.fs_path)

    def rename(self, target: StorePath) -> None:
        """Move this file onto ``target`` (an atomic rename on local filesystems)."""
        if self.local is not None and target.local is not None:
            os.replace(self.local, target.local)
        else:
            self.fs.move(self.fs_path, target.fs_path)

    def unlink(self, missing_ok: bool = True) -> None:
        if self.local is not None:
            self.local.unlink(missing_ok=missing_ok)
            return
        if missing_ok and not self.is_file():
            return
        self.fs.delete_file(self.fs_path)

    def rmtree(self) -> None:
        """Delete this folder and everything in it."""
        if self.is_dir():
            self.fs.delete_dir(self.fs_path)


def store_path(where: str | os.PathLike | StorePath) -> StorePath:
    """Shorthand for :meth:`StorePath.of`."""
    return StorePath.of(where)


def location_of(where: str | os.PathLike | StorePath) -> str:
    """Absolute, shareable form of a location: an absolute local path or the URI."""
    return StorePath.of(where).uri


__all__ = ["StorePath", "check_uri", "is_uri", "location_of", "store_path"]
