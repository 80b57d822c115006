"""``distmi layers``, ``distmi capture`` and ``distmi inspect``: the activation store from a shell.

MODEL is a registered model (``minilm``, ``bert-base-random``, ``iris-mlp``, ...), a
HuggingFace model folder or an id in the local cache (loaded offline), ``package.module:factory``
(a callable returning a ``torch.nn.Module``) or a TorchScript file (``.pt``/``.pth``).
DATA is a registered input set (``concept_texts``, ``iris``, ``digits``), a file (``.parquet``,
``.csv``, ``.jsonl`` with a text column or numeric columns, ``.npy``, ``.pt``) or
``package.module:factory`` (see :mod:`distmi.store.capture_inputs`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from distmi.cli.app import app
from distmi.core.errors import DistmiError, InvalidInputError, InvalidParameterError, SpecError


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def _parse_pooling(values: list[str]) -> Any:
    """One pooling, or ``LAYER=POOLING`` / ``GLOB=POOLING`` pairs (first match wins)."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    out = {}
    for v in values:
        layer, sep, pooling = v.rpartition("=")
        if not sep or not layer:
            raise InvalidParameterError(
                f"--pooling {v!r}: give one pooling for all layers, or LAYER=POOLING per layer "
                "(a layer name, a glob such as 'encoder.layer.*', or 'default')."
            )
        out[layer] = pooling
    return out


def _parse_params(values: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, values read as YAML scalars (``n=20000`` -> 20000)."""
    import yaml

    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise InvalidParameterError(f"--param {v!r}: give KEY=VALUE, e.g. --param n=20000.")
        out[key] = yaml.safe_load(value)
    return out


def _inputs_section(data: str, params: dict[str, Any], text_column: str | None,
                    target_columns: list[str], max_length: int | None) -> dict[str, Any]:
    """The ``inputs`` section of a capture spec for DATA (see module docstring)."""
    from distmi.store.capture_inputs import capture_input_sets

    section: dict[str, Any] = {"params": params} if params else {}
    if max_length is not None:
        section["max_length"] = max_length
    path = Path(data)
    if data in capture_input_sets():
        section["set"] = data
    elif path.is_file() or "://" in data:
        section["path"] = str(path) if path.is_file() else data
        if text_column:
            section["text_column"] = text_column
        if target_columns:
            section["targets"] = list(target_columns)
    elif ":" in data:
        section["factory"] = data
    else:
        raise InvalidInputError(
            f"DATA {data!r} is neither a registered input set ({capture_input_sets()}), an "
            "existing file (.parquet, .csv, .jsonl, .npy, .pt) nor 'package.module:factory'.")
    if (text_column or target_columns) and "path" not in section:
        raise InvalidParameterError("--text-column and --target-column choose columns of a DATA "
                                    "file; DATA is not a file.")
    return section


@app.command("layers")
def layers_command(
    model: str = typer.Argument(..., help="Registered model, HuggingFace folder or cached id, "
                                "'package.module:factory' or a TorchScript file."),
    data: str = typer.Option(None, "--data", help="Example inputs (as for capture) to show "
                             "per-sample output shapes (loads the model's weights)."),
    tokenizer: str = typer.Option(None, help="Tokenizer for text DATA (default: the model's)."),
) -> None:
    """List the capturable layers of a model (named_modules paths).

    Without --data a HuggingFace model is built on PyTorch's meta device from its config: no
    weights are loaded onto any device.
    """
    from distmi.store.capture_models import load_model, model_layers, resolve_model
    from distmi.store.modules import list_layers

    source = resolve_model(model, tokenizer=tokenizer)
    if data is None:
        rows = list_layers(model_layers(source))
    else:
        from distmi.jobs.capture_spec import InputsSpec
        from distmi.store.capture_inputs import open_inputs
        from distmi.store.capture_models import load_tokenizer

        ref = InputsSpec(**_inputs_section(data, {}, None, [], None)).ref()
        inputs = open_inputs(ref, load_tokenizer(source.tokenizer) if source.tokenizer else None)
        first = next(inputs.batches(0, min(8, inputs.n), 8))
        example = first.inputs
        rows = list_layers(load_model(source, "cpu"), example)
    width = max([len(r.name) for r in rows] + [5])
    header = f"{'layer':{width}s}  {'type':22s} {'params':>10s}"
    typer.echo(header + ("  output (per sample)" if data is not None else ""))
    for r in rows:
        line = f"{r.name:{width}s}  {r.type[:22]:22s} {r.n_parameters:10d}"
        if data is not None:
            line += f"  {r.output_shape if r.output_shape is not None else '-'}"
        typer.echo(line)
    chosen = [r.name for r in rows if r.in_all]
    shown = ", ".join(chosen) if len(chosen) <= 8 else f"{chosen[0]} ... {chosen[-1]}"
    typer.echo(f"layers 'all' = {len(chosen)} layers: {shown}")


def _progress_bar(quiet: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Rows per second over the recent updates."""

        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text("-- rows/s" if speed is None else f"{speed:,.0f} rows/s")

    return Progress(TextColumn("[bold]capture"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("inputs"), RateColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), disable=quiet, transient=False)


@app.command("capture")
def capture_command(
    model: str = typer.Argument(..., help="Registered model, HuggingFace folder or cached id, "
                                "'package.module:factory' or a TorchScript file."),
    data: str = typer.Argument(..., help="Registered input set, a .parquet/.csv/.jsonl/.npy/.pt "
                               "file or 'package.module:factory'."),
    output: str = typer.Option(..., "--output", "-o", help="Dataset folder or URI to write."),
    layer: list[str] = typer.Option([], "--layer", "-l", help="Layer name or glob (repeat)."),
    layers: str = typer.Option(None, "--layers", help="Comma-separated names or globs "
                               "('encoder.layer.*'), or 'all'."),
    pooling: list[str] = typer.Option(
        [], "--pooling", help="none|mean|cls|first|last|max|tokens|spatial_mean, or "
        "LAYER=POOLING / GLOB=POOLING (repeat). Default: none (texts: one row per token)."),
    batch_size: int = typer.Option(64, help="Inputs per forward pass."),
    dtype: str = typer.Option("float32", help="Stored dtype: float32, float16, bfloat16 or "
                              "float64."),
    device: str = typer.Option("auto", help="auto (a GPU when there is one), cpu, cuda, cuda:N."),
    param: list[str] = typer.Option([], "--param", help="KEY=VALUE for the input set or DATA "
                                    "factory, e.g. --param n=20000 (repeat)."),
    text_column: str = typer.Option(None, help="Column of texts of a tabular DATA file."),
    target_column: list[str] = typer.Option([], "--target-column", help="Column of a tabular "
                                            "DATA file that is a target (repeat)."),
    tokenizer: str = typer.Option(None, help="Tokenizer for texts (default: the model's)."),
    max_length: int = typer.Option(None, help="Tokens kept per text (default: the tokenizer's "
                                   "limit, at most 512)."),
    model_id: str = typer.Option(None, help="Model id recorded in the manifest."),
    rows_per_shard: int = typer.Option(2048, help="Inputs per shard (and per part file)."),
    executor: str = typer.Option("local", help="local (this process) or ray (one actor per "
                                 "worker)."),
    workers: int = typer.Option(2, help="Ray actors (with --executor ray)."),
    cpus_per_worker: float = typer.Option(1.0, help="CPUs each Ray actor reserves."),
    threads: int = typer.Option(None, help="Torch threads per worker (default: torch's)."),
    address: str = typer.Option(None, help="Ray cluster to attach to ('auto', 'HEAD:6379')."),
    on_nonfinite: str = typer.Option("raise", help="NaN/Inf activations: raise or keep (counted)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset or "
                                   "unfinished capture."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Record layers of MODEL over DATA into an activation dataset (sharded; resumes if
    interrupted)."""
    from distmi.engine.capture_run import run_capture
    from distmi.engine.requests import ExecutorSettings
    from distmi.jobs.capture_spec import CaptureSpec

    names = list(layer) + ([n.strip() for n in layers.split(",") if n.strip()] if layers else [])
    if not names:
        raise InvalidParameterError("name the layers to record: --layers 'encoder.layer.*', "
                                    "--layers all, or -l NAME (repeat); see `distmi layers MODEL`.")
    doc: dict[str, Any] = {
        "model": model, "inputs": _inputs_section(data, _parse_params(param), text_column,
                                                  target_column, max_length),
        "layers": names, "pooling": _parse_pooling(pooling) or "none", "batch_size": batch_size,
        "dtype": dtype, "device": device, "rows_per_shard": rows_per_shard,
        "on_nonfinite": on_nonfinite,
        **({"tokenizer": tokenizer} if tokenizer else {}),
        **({"model_id": model_id} if model_id else {}),
    }
    try:
        spec = CaptureSpec.model_validate(doc)
    except ValueError as exc:
        raise SpecError(_capture_errors(exc)) from None
    if executor not in ("local", "ray"):
        raise InvalidParameterError(f"--executor must be local or ray, got {executor!r}.")
    settings = ExecutorSettings(executor=executor, workers=workers,
                                cpus_per_worker=cpus_per_worker)
    bar = _progress_bar(quiet)
    with bar:
        task = bar.add_task("capture", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        outcome = run_capture(spec.request(threads=threads), output, settings=settings,
                              address=address, overwrite=overwrite, progress=progress,
                              log=None if quiet else lambda m: bar.console.print(m))
    ds = outcome.dataset
    shapes = ", ".join(f"{n} {ds.layer_shape(n)[1]}" for n in ds.layers)
    typer.echo(f"captured {ds.n_samples} samples into {ds.path}: {shapes}")
    if outcome.shards_run:
        rate = outcome.shard_stats and sum(s["inputs"] for s in outcome.shard_stats)
        typer.echo(f"{outcome.shards_run} shard(s) in {outcome.seconds:.1f} s on "
                   f"{outcome.executor} ({rate / max(outcome.seconds, 1e-9):,.0f} inputs/s)")
    typer.echo(f"manifest sha256 {ds.manifest_hash}")


def _capture_errors(exc: Exception) -> str:
    """A pydantic error of the capture options as short lines."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    lines = []
    for err in errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[")))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc or 'capture'}: {msg}" + (
            f" (got {err.get('input')!r})" if err["type"] != "value_error" else ""))
    return "invalid capture options:\n  - " + "\n  - ".join(dict.fromkeys(lines))


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
