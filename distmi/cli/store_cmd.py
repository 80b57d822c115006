"""``distmi layers``, ``distmi capture`` and ``distmi inspect``: the activation store from a shell.

MODEL is ``package.module:factory`` (a callable returning a ``torch.nn.Module``, or a module
object) or a TorchScript file (``.pt``/``.pth`` saved with ``torch.jit.save``).
DATA is ``package.module:factory`` (returning data or a ``CaptureSource``), or a file:
``.npy`` (array), ``.pt`` (tensor or dict of tensors, loaded with ``weights_only=True``),
``.parquet``/``.csv`` (numeric columns are the input; ``--target-column`` moves columns to targets).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import typer

from distmi.cli.app import app
from distmi.core.errors import DistmiError, InvalidInputError, InvalidParameterError


def _import_object(spec: str, what: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise InvalidParameterError(
            f"{what} {spec!r} is neither a file nor 'package.module:name'; pass e.g. "
            "distmi.examples.train_models:trained_iris_mlp."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidParameterError(f"{what}: cannot import module {module_name!r} ({exc}).") from exc
    if not hasattr(module, attr):
        raise InvalidParameterError(f"{what}: module {module_name!r} has no attribute {attr!r}.")
    obj = getattr(module, attr)
    return obj() if callable(obj) and not hasattr(obj, "named_modules") else obj


def load_model(spec: str) -> Any:
    """A model from ``module:factory`` or a TorchScript file."""
    path = Path(spec)
    if path.suffix in (".pt", ".pth") and path.is_file():
        import torch

        try:
            return torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise InvalidInputError(
                f"{path} is not a TorchScript file ({exc}); save the model with "
                "torch.jit.save(torch.jit.script(model), path) or pass 'module:factory'."
            ) from exc
    model = _import_object(spec, "MODEL")
    if not hasattr(model, "named_modules"):
        raise InvalidInputError(
            f"MODEL {spec!r} gave a {type(model).__name__}, not a torch.nn.Module."
        )
    return model


def load_data(spec: str, target_columns: list[str]) -> Any:
    """Data for capture from a file or ``module:factory`` (see module docstring)."""
    import numpy as np

    from distmi.store.capture import CaptureSource

    path = Path(spec)
    if not path.is_file():
        return _import_object(spec, "DATA")
    if path.suffix == ".npy":
        return np.load(path)
    if path.suffix in (".pt", ".pth"):
        import torch

        return torch.load(path, weights_only=True)
    if path.suffix in (".parquet", ".csv"):
        import pandas as pd

        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        missing = [c for c in target_columns if c not in frame.columns]
        if missing:
            raise InvalidInputError(
                f"--target-column {missing} not in {path}; columns: {list(frame.columns)}."
            )
        targets = {c: frame.pop(c).to_numpy() for c in target_columns}
        x = frame.to_numpy(dtype=np.float32)
        return CaptureSource(x, targets or None)
    raise InvalidInputError(
        f"DATA file {path} has suffix {path.suffix!r}; pass .npy, .pt, .parquet, .csv or "
        "'package.module:factory'."
    )


def _parse_pooling(values: list[str]) -> Any:
    if not values:
        return "none"
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    out = {}
    for v in values:
        layer, sep, pooling = v.rpartition("=")
        if not sep:
            raise InvalidParameterError(
                f"--pooling {v!r}: give one pooling for all layers, or LAYER=POOLING per layer."
            )
        out[layer] = pooling
    return out


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


@app.command("layers")
def layers_command(
    model: str = typer.Argument(..., help="'package.module:factory' or a TorchScript file."),
    data: str = typer.Option(None, "--data", help="Example data (as for capture) to show output shapes."),
) -> None:
    """List the capturable layers of a model (named_modules paths)."""
    from distmi.store.modules import list_layers

    try:
        m = load_model(model)
        example = None
        if data is not None:
            from distmi.store.capture import CaptureSource

            example = load_data(data, [])
            example = example.data if isinstance(example, CaptureSource) else example
        rows = list_layers(m, example)
    except DistmiError as exc:
        raise _fail(exc) from exc
    width = max([len(r.name) for r in rows] + [5])
    header = f"{'layer':{width}s}  {'type':22s} {'params':>10s}"
    typer.echo(header + ("  output (per sample)" if data is not None else ""))
    for r in rows:
        line = f"{r.name:{width}s}  {r.type[:22]:22s} {r.n_parameters:10d}"
        if data is not None:
            line += f"  {r.output_shape if r.output_shape is not None else '-'}"
        typer.echo(line)


@app.command("capture")
def capture_command(
    model: str = typer.Argument(..., help="'package.module:factory' or a TorchScript file."),
    data: str = typer.Argument(..., help="'package.module:factory', .npy, .pt, .parquet or .csv."),
    layer: list[str] = typer.Option(..., "--layer", "-l", help="Layer to record (repeat)."),
    output: str = typer.Option(..., "--output", "-o", help="Dataset folder or URI to write."),
    pooling: list[str] = typer.Option(
        [], "--pooling", help="none|mean|first|last|spatial_mean, or LAYER=POOLING (repeat)."
    ),
    batch_size: int = typer.Option(64, help="Samples per forward pass."),
    targets: Path = typer.Option(None, "--targets", help="Targets table (.parquet/.csv), one row per sample."),
    target_column: list[str] = typer.Option([], "--target-column", help="Column of a tabular DATA file that is a target (repeat)."),
    model_id: str = typer.Option(None, help="Model id recorded in the manifest."),
    dtype: str = typer.Option("float32", help="Stored dtype: float32, float16 or float64."),
    on_nonfinite: str = typer.Option("raise", help="NaN/Inf activations: raise or keep (counted)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset or unfinished capture."),
) -> None:
    """Record layers of MODEL over DATA into an activation dataset (resumes if interrupted)."""
    from distmi.store.capture import capture

    try:
        target_table = None
        if targets is not None:
            import pandas as pd

            if not targets.is_file():
                raise InvalidInputError(f"targets file {targets} does not exist.")
            target_table = (pd.read_parquet(targets) if targets.suffix == ".parquet"
                            else pd.read_csv(targets))
        ds = capture(
            load_model(model), load_data(data, target_column), layer, output,
            pooling=_parse_pooling(pooling), targets=target_table, batch_size=batch_size,
            model_id=model_id, dtype=dtype, on_nonfinite=on_nonfinite, overwrite=overwrite,
        )
    except DistmiError as exc:
        raise _fail(exc) from exc
    shapes = ", ".join(f"{n} {ds.layer_shape(n)[1]}" for n in ds.layers)
    typer.echo(f"captured {ds.n_samples} samples into {ds.path}: {shapes}")
    typer.echo(f"manifest sha256 {ds.manifest_hash}")


def summarize(ds: Any) -> str:
    """Human-readable manifest summary (what ``distmi inspect`` prints)."""
    m = ds.manifest
    lines = [
        f"dataset   {ds.path}",
        f"model     {m['model'].get('id')}  ({m['model'].get('class', 'imported')})",
        f"samples   {ds.n_samples}   sample ids {m['sample_id_dtype']}",
        f"manifest  sha256 {ds.manifest_hash}   distmi {m['distmi_version']}, layout {m['layout']}",
        "layers:",
    ]
    for name in ds.layers:
        info = ds.layer_info(name)
        size = sum(p.file.size for p in info.parts) / 1e6
        bad = info.nonfinite.get("nan", 0) + info.nonfinite.get("inf", 0)
        flag = f"  NONFINITE nan={info.nonfinite['nan']} inf={info.nonfinite['inf']}" if bad else ""
        lines.append(
            f"  {name:24s} units {info.n_units:8d}  shape {list(info.unit_shape)!s:14s} "
            f"{info.dtype:8s} pooling {info.pooling:12s} {len(info.parts)} file(s) {size:9.2f} MB{flag}"
        )
    for name in ds.masks:
        lines.append(f"  mask {name} ({ds.layer_info(name).n_units} tokens)")
    lines.append("targets:")
    for name, entry in m["targets"]["columns"].items():
        if entry["kind"] == "categorical":
            counts = entry.get("class_counts", {})
            shown = ", ".join(f"{k}: {v}" for k, v in list(counts.items())[:8])
            more = " ..." if len(counts) > 8 else ""
            lines.append(f"  {name:24s} categorical, {entry['n_classes']} classes ({shown}{more})")
        else:
            lines.append(
                f"  {name:24s} continuous, range [{entry['min']:.4g}, {entry['max']:.4g}], "
                f"mean {entry['mean']:.4g}"
            )
    return "\n".join(lines)


@app.command("inspect")
def inspect_command(
    dataset: str = typer.Argument(..., help="Activation dataset folder or URI."),
    verify: bool = typer.Option(False, "--verify", help="Hash every file against the manifest."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Summarise an activation dataset (layers, shapes, targets, hashes)."""
    from distmi.store import open_dataset

    try:
        ds = open_dataset(dataset)
        checked = ds.verify() if verify else None
    except DistmiError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(ds.manifest, indent=1))
        return
    typer.echo(summarize(ds))
    if checked is not None:
        typer.echo(f"verified: every file matches its sha256 ({checked / 1e6:.1f} MB checked)")


@app.command("upgrade-dataset")
def upgrade_dataset_command(
    dataset: str = typer.Argument(..., help="Dataset folder or URI written by distmi 0.1.0."),
) -> None:
    """Verify an old (format 1) dataset file by file, then record every part's identity."""
    from distmi.store.upgrade import upgrade_dataset

    ds = upgrade_dataset(dataset, log=lambda msg: typer.echo(f"  rewrote {msg}"))
    typer.echo(f"{ds.path} is in format {ds.manifest['format_version']} "
               f"(manifest sha256 {ds.manifest_hash})")
