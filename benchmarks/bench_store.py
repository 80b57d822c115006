"""Activation-store layout benchmark: distmi's unit-block layout vs plain Parquet layouts.

Writes one float32 layer of ROWS x UNITS (default 100k x 4096, 1.6 GB) three ways, side by side
in one process, and times the operations the engine needs:

- distmi: ``write_dataset`` (unit blocks of 128 as fixed_size_binary columns, no dictionary,
  no compression, page CRCs, ~32 MiB row groups);
- baseline "tensor": one ``pa.fixed_shape_tensor`` column, dictionary off, no compression;
- baseline "per-unit": one float32 column per unit, dictionary off, no compression.

Reads are from the page cache (the files were just written); each figure is the best of
``--repeat`` runs. Prints every figure and the speed ratio baseline / distmi.

Then the cost of integrity (docs/store.md, "Integrity"), each measured by switching one check
off in the same process: the identity and cell-width check of every part on first read
(``open_dataset`` + a 64-unit shard, and a whole-layer read, on fresh handles), and the values
hash computed while writing.

    .venv/bin/python benchmarks/bench_store.py                   # 100k x 4096
    .venv/bin/python benchmarks/bench_store.py --rows 20000      # quicker
    .venv/bin/python benchmarks/bench_store.py --rows 20000 --integrity-only
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distmi.store import open_dataset, write_dataset

_OPTS = {"use_dictionary": False, "compression": "none", "write_statistics": False}


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def write_tensor(path: Path, x: np.ndarray, rg: int) -> None:
    typ = pa.fixed_shape_tensor(pa.float32(), [x.shape[1]])
    writer = pq.ParquetWriter(path, pa.schema([("x", typ)]), **_OPTS)
    for s in range(0, len(x), rg):
        arr = pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(x[s : s + rg]))
        writer.write_table(pa.table({"x": arr}), row_group_size=rg)
    writer.close()


def read_tensor(path: Path, rows: slice | None = None) -> np.ndarray:
    table = pq.read_table(path)
    arr = table.column("x").combine_chunks().to_numpy_ndarray()
    return arr if rows is None else arr[rows]


def write_per_unit(path: Path, x: np.ndarray, rg: int) -> None:
    names = [f"u{i}" for i in range(x.shape[1])]
    writer = pq.ParquetWriter(path, pa.schema([(n, pa.float32()) for n in names]), **_OPTS)
    for s in range(0, len(x), rg):
        chunk = x[s : s + rg]
        writer.write_table(pa.Table.from_arrays([pa.array(chunk[:, i]) for i in range(x.shape[1])],
                                                names=names), row_group_size=rg)
    writer.close()


def read_per_unit(path: Path, units: range | None = None) -> np.ndarray:
    cols = None if units is None else [f"u{i}" for i in units]
    table = pq.read_table(path, columns=cols)
    return np.column_stack([c.to_numpy() for c in table.columns])


@contextmanager
def _switched_off(obj: object, name: str):
    """Replace ``obj.name`` by a no-op for the duration (to time what it costs)."""
    original = getattr(obj, name)
    setattr(obj, name, lambda *a, **k: None)
    try:
        yield
    finally:
        setattr(obj, name, original)


def integrity_costs(root: Path, x: np.ndarray, rep: int) -> None:
    """Per-read identity checks and write-time values hashing, each on vs off."""
    from distmi.store.identity import ValuesHasher
    from distmi.store.reader import ActivationDataset

    n = len(x)
    path = root / "integrity"
    import distmi.store.writer as writer_mod

    record = writer_mod.record_file

    def reread(root_, path_, written=None):  # how files were hashed before: read back whole
        return record(root_, path_)

    # (wall s, CPU s) of write_dataset: "on" as shipped; "off" without the values hash;
    # "previous" also without the streamed file hash (the file is read back to hash it, as
    # the writer did before part identities). Alternated so all see the same load.
    write: dict[str, list[tuple[float, float]]] = {"on": [], "off": [], "previous": []}
    for _ in range(max(1, rep // 2)):
        for state in write:
            t, c = time.perf_counter(), time.process_time()
            if state == "on":
                write_dataset(path, {"h": x}, rows_per_part=n, overwrite=True)
            else:
                with _switched_off(ValuesHasher, "update"):
                    if state == "previous":
                        writer_mod.record_file = reread
                    try:
                        write_dataset(root / "nohash", {"h": x}, rows_per_part=n, overwrite=True)
                    finally:
                        writer_mod.record_file = record
            write[state].append((time.perf_counter() - t, time.process_time() - c))
    shutil.rmtree(root / "nohash", ignore_errors=True)
    shard = slice(1000, 1064)

    def first_shard() -> None:  # fresh dataset object: footer, identity and widths checked
        open_dataset(path).read_layer("h", units=shard)

    def first_whole() -> None:
        open_dataset(path).read_layer("h")

    figures = {}
    for label, fn in (("open + 64-unit shard", first_shard), ("open + whole layer", first_whole)):
        on, off = [], []
        for _ in range(rep):  # alternated so both see the same load
            on.append(best(fn, 1))
            with _switched_off(ActivationDataset, "_check_part"), \
                    _switched_off(ActivationDataset, "_explain_mismatch"):
                off.append(best(fn, 1))
        figures[label] = (min(on), min(off))
    ds = open_dataset(path)
    meta = ds.layer_info("h")
    pf = ds._open_part(meta, 0)
    k = 2000
    t = time.perf_counter()
    for _ in range(k):
        ds._check_part(meta, 0, pf)
    per_check_us = (time.perf_counter() - t) / k * 1e6
    print(f"\nintegrity ({n} x {x.shape[1]} float32, one part; best of {rep}):")
    print(f"  identity + cell-width check of one part: {per_check_us:.1f} us "
          f"(the footer is already read to open the file; no data is hashed)")
    for label, (on, off) in figures.items():
        print(f"  {label:22s} checks on {on:8.4f} s   off {off:8.4f} s   overhead "
              f"{100 * (on - off) / off:+.1f}%")
    (won, con), (woff, coff), (wprev, cprev) = (min(write[k]) for k in ("on", "off", "previous"))
    print(f"  {'write_dataset':22s} values hash on {won:8.3f} s   off {woff:8.3f} s   overhead "
          f"{100 * (won - woff) / woff:+.1f}% wall; CPU {con:.3f} s vs {coff:.3f} s "
          f"({100 * (con - coff) / coff:+.1f}%)")
    print(f"  {'':22s} vs the previous writer (no values hash, file read back to hash it): "
          f"{wprev:.3f} s wall ({100 * (won - wprev) / wprev:+.1f}%), CPU {cprev:.3f} s "
          f"({100 * (con - cprev) / cprev:+.1f}%)")

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--units", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-per-unit", action="store_true", help="skip the slow per-unit baseline")
    ap.add_argument("--dir", default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--integrity-only", action="store_true",
                    help="only the integrity costs (no layout comparison)")
    args = ap.parse_args()
    n, d, rep = args.rows, args.units, args.repeat
    root = Path(tempfile.mkdtemp(prefix="bench_store_", dir=args.dir))
    x = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
    rg = max(256, (32 << 20) // (4 * d))  # the same ~32 MiB row groups for every layout
    shard = slice(1000, 1064)  # 64 units, not aligned to a block
    aligned = slice(1024, 1152)  # 128 units = one block
    rows = slice(n // 2, n // 2 + 10_000)
    print(f"layer {n} x {d} float32 = {x.nbytes / 1e9:.2f} GB; row groups of {rg} rows; "
          f"best of {rep}; scratch {root}")
    results: dict[str, dict[str, float]] = {}
    if args.integrity_only:
        try:
            integrity_costs(root, x, rep)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    try:
        t = time.perf_counter()
        ds = write_dataset(root / "distmi", {"h": x}, rows_per_part=n)
        w = time.perf_counter() - t
        ds = open_dataset(root / "distmi")
        assert np.array_equal(ds.read_layer("h", units=shard), x[:, shard])
        results["distmi"] = {
            "write_s": w, "size_mb": size_mb(root / "distmi"),
            "whole_s": best(lambda: ds.read_layer("h"), rep),
            "shard64_s": best(lambda: ds.read_layer("h", units=shard), rep),
            "shard128_s": best(lambda: ds.read_layer("h", units=aligned), rep),
            "rows10k_s": best(lambda: ds.read_layer("h", rows=rows), rep),
            "stream_s": best(lambda: sum(len(b) for _, b in ds.iter_layer("h")), 1),
            "verify_s": best(ds.verify, 1),
        }
        tpath = root / "tensor.parquet"
        t = time.perf_counter()
        write_tensor(tpath, x, rg)
        w = time.perf_counter() - t
        assert np.array_equal(read_tensor(tpath)[:, shard], x[:, shard])
        results["tensor"] = {
            "write_s": w, "size_mb": tpath.stat().st_size / 1e6,
            "whole_s": best(lambda: read_tensor(tpath), rep),
            "shard64_s": best(lambda: read_tensor(tpath)[:, shard].copy(), rep),
            "shard128_s": best(lambda: read_tensor(tpath)[:, aligned].copy(), rep),
            "rows10k_s": best(lambda: read_tensor(tpath, rows).copy(), rep),
        }
        if not args.skip_per_unit:
            ppath = root / "per_unit.parquet"
            t = time.perf_counter()
            write_per_unit(ppath, x, rg)
            w = time.perf_counter() - t
            results["per-unit"] = {
                "write_s": w, "size_mb": ppath.stat().st_size / 1e6,
                "whole_s": best(lambda: read_per_unit(ppath), 1),
                "shard64_s": best(lambda: read_per_unit(ppath, range(1000, 1064)), rep),
                "shard128_s": best(lambda: read_per_unit(ppath, range(1024, 1152)), rep),
            }
        integrity_costs(root, x, rep)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    keys = ["write_s", "size_mb", "whole_s", "shard64_s", "shard128_s", "rows10k_s", "stream_s",
            "verify_s"]
    print(f"{'layout':10s}" + "".join(f"{k:>12s}" for k in keys))
    for name, r in results.items():
        print(f"{name:10s}" + "".join(f"{r[k]:12.3f}" if k in r else f"{'-':>12s}" for k in keys))
    print("speed ratio baseline / distmi (higher = distmi faster):")
    for name in [k for k in results if k != "distmi"]:
        ratios = {k: results[name][k] / results["distmi"][k] for k in keys
                  if k in results[name] and k != "size_mb"}
        print(f"  {name:10s} " + "  ".join(f"{k} x{v:.1f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
