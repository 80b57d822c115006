"""Reading activation datasets: whole layers, unit shards, row ranges and row-group streams.

Reading needs only pyarrow and numpy. A read of units ``U`` and rows ``R`` touches the unit
blocks overlapping ``U`` (one Parquet column each) in the row groups overlapping ``R``; nothing
else is read from storage. On first use every file is size- and footer-checked against the
manifest and its identity (dataset, layer, part, rows, dtype, values hash) and cell widths are
compared with the manifest's (:mod:`distmi.store.identity`); every page read is CRC-checked;
:meth:`ActivationDataset.verify` hashes every byte. Datasets may live on local or shared paths
or behind URIs (``s3://``, ``gs://``): see :mod:`distmi.core.storage`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from distmi.core.errors import CorruptDataError, StoreError, UnknownLayerError
from distmi.core.storage import StorePath
from distmi.core.validation import check_int
from distmi.store.block_plan import BlockPlan, decode_rows, unit_plan
from distmi.store.files import FileRecord, check_full, check_quick
from distmi.store.identity import PartIdentity, check_part_file, check_targets
from distmi.store.manifest import LayerMeta, load_manifest, manifest_bytes_hash
from distmi.store.selection import as_array, normalize_index, selection_size

_READ_THREADS = True


@dataclass(frozen=True)
class _RowGroup:
    part: int
    index: int
    start: int  # global row of the first row
    stop: int


def unknown_name_error(kind: str, name: str, available: list[str], where: str) -> UnknownLayerError:
    """An :class:`UnknownLayerError` listing the available names and the closest match."""
    close = difflib.get_close_matches(str(name), available, n=3, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    shown = available if len(available) <= 40 else [*available[:40], f"... ({len(available)} in all)"]
    return UnknownLayerError(f"{kind} {name!r} is not in {where}.{hint} Available: {shown}")


class ActivationDataset:
    """An activation dataset folder opened for reading (see :func:`open_dataset`).

    Attributes:
        path: the dataset folder (a ``pathlib.Path`` for local datasets, else a
            :class:`~distmi.core.storage.StorePath`).
        location: the folder as a :class:`~distmi.core.storage.StorePath`.
        uri: absolute local path or URI: what other processes and nodes open.
        manifest: the parsed ``manifest.json``.
        manifest_hash: sha256 of the manifest bytes (identifies the dataset in provenance).
        dataset_id: the id written into every file of the dataset.
    """

    def __init__(self, path: str | Path | StorePath, manifest: dict[str, Any], raw: bytes) -> None:
        self.location = StorePath.of(path)
        self.path: Path | StorePath = self.location.local or self.location
        self.manifest = manifest
        self._raw = raw
        self.manifest_hash = manifest_bytes_hash(raw)
        self.dataset_id = str(manifest["dataset_id"])
        self._metas = {n: LayerMeta.from_dict(n, d) for n, d in manifest["layers"].items()}
        self._masks = {n: LayerMeta.from_dict(n, d, "mask")
                       for n, d in manifest.get("masks", {}).items()}
        self._reset_caches()

    @property
    def uri(self) -> str:
        return self.location.uri

    def _reset_caches(self) -> None:
        self._files: dict[str, pq.ParquetFile] = {}
        self._groups: dict[str, list[_RowGroup]] = {}
        self._expected: dict[str, tuple[list[str], list[int]]] = {}

    def __getstate__(self) -> dict[str, Any]:  # open file handles do not travel to Ray workers
        return {"path": self.location.uri, "manifest": self.manifest, "raw": self._raw}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["manifest"], state["raw"])

    def __repr__(self) -> str:
        return (
            f"ActivationDataset({str(self.path)!r}, n_samples={self.n_samples}, "
            f"layers={self.layers}, targets={list(self.target_kinds)})"
        )

    # ---- metadata -------------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return int(self.manifest["n_samples"])

    @property
    def layers(self) -> list[str]:
        """Layer names in capture order."""
        return list(self._metas)

    @property
    def masks(self) -> list[str]:
        """Stored masks (e.g. ``"attention_mask"`` for per-token layers)."""
        return list(self._masks)

    @property
    def model_id(self) -> str:
        return str(self.manifest["model"].get("id", ""))

    @property
    def target_kinds(self) -> dict[str, str]:
        """``{target: "categorical" | "continuous"}``."""
        return {k: v["kind"] for k, v in self.manifest["targets"]["columns"].items()}

    def layer_info(self, name: str) -> LayerMeta:
        """Manifest entry of a layer (dtype, unit_shape, pooling, block_units, nonfinite...)."""
        if name in self._metas:
            return self._metas[name]
        if name in self._masks:
            return self._masks[name]
        raise unknown_name_error("layer", name, self.layers, f"dataset {self.path}")

    def layer_shape(self, name: str) -> tuple[int, int]:
        """``(n_samples, n_units)``; units are the per-sample shape flattened in C order."""
        return (self.n_samples, self.layer_info(name).n_units)

    def unit_coords(self, name: str, units: Any = None) -> tuple[np.ndarray, ...]:
        """Multi-dimensional index (into ``unit_shape``) of flat unit indices.

        For a per-token layer with unit_shape (T, H) this gives (position, hidden unit).
        """
        meta = self.layer_info(name)
        u = as_array(normalize_index(units, meta.n_units, "units"))
        return np.unravel_index(u, meta.unit_shape)

    # ---- reading --------------------------------------------------------------------------
    def read_layer(self, name: str, units: Any = None, rows: Any = None, dtype: Any = None) -> np.ndarray:
        """Read activations of ``name`` as an array of shape (n_rows, n_units_selected).

        Args:
            name: layer name (``dataset.layers``).
            units: None (all), slice/range, int indices or boolean mask over units.
            rows: None (all), slice/range, int indices or boolean mask over samples; rows come
                back in the order given.
            dtype: convert to this dtype (default: the stored dtype, usually float32).
        """
        meta = self.layer_info(name)
        u = normalize_index(units, meta.n_units, "units")
        r = normalize_index(rows, self.n_samples, "rows")
        out = np.empty((selection_size(r), selection_size(u)), dtype=meta.dtype)
        plan = unit_plan(meta.layout, u)
        if isinstance(r, slice):
            self._read_slice(meta, plan, r.start, r.stop, out, 0)
        else:
            self._read_indices(meta, plan, r, out)
        return out if dtype is None else out.astype(dtype, copy=False)

    def read_tensor(self, name: str, units: Any = None, rows: Any = None, device: Any = None):
        """Like :meth:`read_layer` but returns a ``torch.Tensor`` (on ``device``)."""
        import torch

        return torch.from_numpy(self.read_layer(name, units, rows)).to(device or "cpu")

    def iter_layer(
        self, name: str, units: Any = None, batch_rows: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Stream a layer in row order as ``(first_row, array (rows, n_units_selected))``.

        With ``batch_rows=None`` it yields one stored row group at a time (the cheapest: each
        row group is read once); otherwise batches of ``batch_rows`` rows. Memory is bounded by
        one batch, so this works for layers larger than memory.
        """
        meta = self.layer_info(name)
        u = normalize_index(units, meta.n_units, "units")
        plan = unit_plan(meta.layout, u)
        if batch_rows is None:
            spans = [(g.start, g.stop) for g in self._row_groups(meta)]
        else:
            step = check_int(batch_rows, "batch_rows", minimum=1)
            spans = [(s, min(s + step, self.n_samples)) for s in range(0, self.n_samples, step)]
        for start, stop in spans:
            out = np.empty((stop - start, selection_size(u)), dtype=meta.dtype)
            self._read_slice(meta, plan, start, stop, out, 0)
            yield start, out

    def read_targets(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Targets table: column ``sample_id`` then one column per target, in sample order."""
        rec = FileRecord.from_dict(self.manifest["targets"]["file"])
        check_quick(self.location, rec)
        if columns is not None:
            missing = [c for c in columns if c not in self.target_kinds]
            if missing:
                raise unknown_name_error("target", missing[0], list(self.target_kinds),
                                         f"dataset {self.path}")
            columns = ["sample_id", *columns]
        try:
            pf = pq.ParquetFile((self.location / rec.path).parquet_source(),
                                page_checksum_verification=True)
            check_targets(pf.metadata.metadata, self.dataset_id, self.n_samples,
                          f"dataset file {rec.path} in {self.path}")
            table = pf.read(columns=columns)
        except (OSError, pa.ArrowException) as exc:
            raise _corrupt(self.path, rec.path, exc) from exc
        return table.to_pandas()

    @property
    def sample_ids(self) -> np.ndarray:
        return self.read_targets(columns=[])["sample_id"].to_numpy()

    def read_mask(self, name: str = "attention_mask") -> np.ndarray | None:
        """Boolean mask (n_samples, n_tokens) stored with per-token layers, or None."""
        if name not in self._masks:
            return None
        return self.read_layer(name).astype(bool)

    def verify(self) -> int:
        """Hash every file against the manifest and check every part's identity; return the
        number of bytes checked.

        Raises:
            CorruptDataError: naming the first file whose content differs.
        """
        records = [FileRecord.from_dict(self.manifest["targets"]["file"])]
        for meta in [*self._metas.values(), *self._masks.values()]:
            records.extend(p.file for p in meta.parts)
            for k in range(len(meta.parts)):  # identities first: they say what a file holds
                self._file(meta, k)
        for rec in records:
            check_full(self.location, rec)
        return sum(r.size for r in records)

    # ---- internals ------------------------------------------------------------------------
    def _file(self, meta: LayerMeta, part: int) -> pq.ParquetFile:
        rec = meta.parts[part].file
        pf = self._files.get(rec.path)
        if pf is None:
            try:
                check_quick(self.location, rec)
            except CorruptDataError as exc:  # say what the file holds instead, when it can
                self._explain_mismatch(meta, part)
                raise exc from None
            pf = self._open_part(meta, part)
            self._check_part(meta, part, pf)
            self._files[rec.path] = pf
        return pf

    def _open_part(self, meta: LayerMeta, part: int) -> pq.ParquetFile:
        rel = meta.parts[part].file.path
        try:
            return pq.ParquetFile((self.location / rel).parquet_source(),
                                  page_checksum_verification=True)
        except (OSError, pa.ArrowException) as exc:
            raise _corrupt(self.path, rel, exc) from exc

    def _check_part(self, meta: LayerMeta, part: int, pf: pq.ParquetFile) -> None:
        """Columns, cell widths and identity of an open part against the manifest."""
        expected = self._expected.get(meta.name)
        if expected is None:
            layout = meta.layout
            expected = self._expected[meta.name] = (
                layout.column_names(),
                [e - s for s, e in map(layout.block_range, range(layout.n_blocks))])
        check_part_file(pf.metadata, meta.identity(self.dataset_id, part), *expected,
                        f"dataset file {meta.parts[part].file.path} in {self.path}")

    def _explain_mismatch(self, meta: LayerMeta, part: int) -> None:
        """After a size/footer mismatch: raise the identity error if the file is another part."""
        try:
            pf = self._open_part(meta, part)
        except CorruptDataError:
            return  # unreadable (missing, truncated): the size/footer message says it best
        found = PartIdentity.from_metadata(pf.metadata.metadata)
        if found is not None and found != meta.identity(self.dataset_id, part):
            self._check_part(meta, part, pf)

    def _row_groups(self, meta: LayerMeta) -> list[_RowGroup]:
        groups = self._groups.get(meta.name)
        if groups is None:
            groups = []
            for k, part in enumerate(meta.parts):
                md = self._file(meta, k).metadata
                row = part.row_start
                for i in range(md.num_row_groups):
                    n = md.row_group(i).num_rows
                    groups.append(_RowGroup(k, i, row, row + n))
                    row += n
                if row != part.row_stop:
                    raise CorruptDataError(
                        f"{part.file.path} in {self.path} holds {row - part.row_start} rows, the "
                        f"manifest says {part.row_stop - part.row_start}; restore it or recapture."
                    )
            self._groups[meta.name] = groups
        return groups

    def _read_group(self, meta: LayerMeta, g: _RowGroup, columns: list[str]) -> pa.Table:
        try:
            return self._file(meta, g.part).read_row_group(
                g.index, columns=columns, use_threads=_READ_THREADS
            )
        except (OSError, pa.ArrowException) as exc:
            raise _corrupt(self.path, meta.parts[g.part].file.path, exc) from exc

    def _read_slice(self, meta: LayerMeta, plan: list[BlockPlan], start: int, stop: int,
                    out: np.ndarray, out_row: int) -> None:
        columns = [p.column for p in plan]
        if not plan or stop <= start:
            return
        for g in self._row_groups(meta):
            if g.stop <= start or g.start >= stop:
                continue
            table = self._read_group(meta, g, columns)
            lo, hi = max(start, g.start) - g.start, min(stop, g.stop) - g.start
            decode_rows(meta.layout, table, plan, lo, hi, out, out_row + g.start + lo - start)

    def _read_indices(self, meta: LayerMeta, plan: list[BlockPlan], idx: np.ndarray,
                      out: np.ndarray) -> None:
        if not plan or len(idx) == 0:
            return
        groups = self._row_groups(meta)
        starts = np.array([g.start for g in groups])
        which = np.searchsorted(starts, idx, side="right") - 1
        columns = [p.column for p in plan]
        for gi in np.unique(which):
            g = groups[int(gi)]
            pos = np.flatnonzero(which == gi)
            local = idx[pos] - g.start
            lo, hi = int(local.min()), int(local.max()) + 1
            tmp = np.empty((hi - lo, out.shape[1]), dtype=out.dtype)
            decode_rows(meta.layout, self._read_group(meta, g, columns), plan, lo, hi, tmp, 0)
            out[pos] = tmp[local - lo]


def _corrupt(root: Any, rel: str, exc: Exception) -> CorruptDataError:
    return CorruptDataError(
        f"dataset file {rel} in {root} could not be read ({exc}); its content does not match "
        "what was written (a page checksum failed or the file is damaged): restore it or "
        "recapture the dataset. `distmi inspect --verify` checks every file."
    )


def open_dataset(
    path: str | Path | StorePath, *, verify: bool = False, manifest_sha256: str | None = None
) -> ActivationDataset:
    """Open an activation dataset folder (a local or shared path, or a URI such as ``s3://``).

    Args:
        path: the folder holding ``manifest.json``.
        verify: hash every file now (reads the whole dataset once); without it every file is
            size/footer/identity-checked on first use and pages CRC-checked on every read.
        manifest_sha256: the manifest hash the caller expects (e.g. the dataset a job was
            planned on); a different dataset at ``path`` raises :class:`StoreError`.

    Raises:
        StoreError: no dataset at ``path``, a format this distmi does not read, or another
            dataset than ``manifest_sha256`` names.
        CorruptDataError: a damaged or edited manifest (or file, with ``verify``).
    """
    root = StorePath.of(path)
    manifest, raw = load_manifest(root)
    ds = ActivationDataset(root, manifest, raw)
    if manifest_sha256 is not None and ds.manifest_hash != manifest_sha256:
        raise StoreError(
            f"the dataset at {root} changed: its manifest sha256 is {ds.manifest_hash[:12]}..., "
            f"but {manifest_sha256[:12]}... was expected (it was re-captured or replaced after "
            "the job was planned); run the job again so it plans on the current dataset."
        )
    if verify:
        ds.verify()
    return ds
