"""``distmi capture-checkpoints`` and ``distmi infoplane``: activations over training and the
information plane from a shell.

    distmi capture-checkpoints MODEL DATA ckpt/epoch-*.pt --layer act1 --layer act2 -o out/train
    distmi infoplane out/train --layer act1 --layer act2 --target digit -o out/plane
    distmi infoplane out/digits-train --example digits -o out/digits-plane    # all in one
    distmi infoplane --spec jobs/infoplane/digits.yaml                         # a YAML job
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from distmi.cli.app import app
from distmi.core.errors import DistmiError, InvalidInputError, InvalidParameterError

EXAMPLES = ("digits",)


def _fail(exc: object) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


@app.command("capture-checkpoints")
def capture_checkpoints_command(
    model: str = typer.Argument(..., help="'package.module:factory' building the architecture."),
    data: str = typer.Argument(..., help="Probe data: 'package.module:factory', .npy, .pt, .parquet, .csv."),
    checkpoints: list[Path] = typer.Argument(..., help="State-dict files, one per epoch (or step)."),
    layer: list[str] = typer.Option(..., "--layer", "-l", help="Layer to record (repeat)."),
    output: Path = typer.Option(..., "--output", "-o", help="Training dataset folder to write."),
    values: str | None = typer.Option(None, help="Comma-separated epoch of each checkpoint "
                                      "(default: the last number in each file name)."),
    dimension: str = typer.Option("epoch", help="epoch, step or checkpoint."),
    state_key: str | None = typer.Option(None, help="Key of the state dict inside each file."),
    target_column: list[str] = typer.Option([], "--target-column",
                                            help="Column of a tabular DATA file that is a target."),
    batch_size: int = typer.Option(256, help="Samples per forward pass."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start the folder over."),
) -> None:
    """Record layers of MODEL over DATA with the weights of each checkpoint (resumable)."""
    from distmi.store.capture_models import load_model, resolve_model
    from distmi.store.training import capture_checkpoints

    try:
        vals = None
        if values is not None:
            try:
                vals = [int(v) for v in values.split(",") if v.strip()]
            except ValueError:
                raise InvalidParameterError(
                    f"--values {values!r} must be comma-separated integers, e.g. 0,5,10."
                ) from None
        ds = capture_checkpoints(load_model(resolve_model(model)), checkpoints, output,
                                 _load_data(data, target_column), layer, values=vals,
                                 dimension=dimension, state_key=state_key,
                                 batch_size=batch_size, overwrite=overwrite)
    except DistmiError as exc:
        raise _fail(exc) from exc
    typer.echo(f"captured {len(ds.values)} {ds.dimension}s ({ds.values[0]}-{ds.values[-1]}) of "
               f"{ds.n_samples} samples into {output}: layers {ds.layers}")


def _load_data(spec: str, target_columns: list[str]) -> Any:
    """Inputs of a checkpoint capture: a .npy/.pt file, a .parquet/.csv table (numeric feature
    columns; ``target_columns`` become targets) or a ``package.module:factory``."""
    import numpy as np

    from distmi.store.capture import CaptureSource
    from distmi.store.capture_models import import_target

    path = Path(spec)
    if not path.is_file():
        return import_target(spec, "DATA")()
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
        return CaptureSource(frame.to_numpy(dtype=np.float32), targets or None)
    raise InvalidInputError(
        f"DATA file {path} has suffix {path.suffix!r}; pass .npy, .pt, .parquet, .csv or "
        "'package.module:factory'."
    )


@app.command("infoplane")
def infoplane_command(
    source: Path | None = typer.Argument(None, help="Training dataset folder (training.json)."),
    layer: list[str] = typer.Option([], "--layer", "-l", help="Layer L (repeat; plot order)."),
    target: str | None = typer.Option(None, help="Categorical target Y."),
    x_layer: str = typer.Option("input", help="Layer holding the input X."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Result folder (table, PNG)."),
    method: str = typer.Option("sliced", help="sliced (sliced MI) or pca (PCA + estimator)."),
    base: str = typer.Option("wkl", help="Sliced base estimator: wkl or ksg."),
    n_slices: int = typer.Option(1000, help="Random projections (sliced)."),
    k: int | None = typer.Option(None, help="Neighbours (default: WKL 5, KSG 3)."),
    estimator: str = typer.Option("ksg", help="Estimator on PCA components: ksg or gmm."),
    n_components: int = typer.Option(4, help="PCA components of X and of each layer."),
    epochs: str | None = typer.Option(None, help="Comma-separated epochs (default: all)."),
    n_bootstrap: int = typer.Option(10, help="Replicates where the error bar resamples."),
    n_permutations: int = typer.Option(1, help="Shuffles for the null baseline (0: none)."),
    seed: int = typer.Option(0, help="Root seed."),
    executor: str = typer.Option("local", help="local (in-process) or ray."),
    workers: int = typer.Option(2, help="Ray workers."),
    threads: int = typer.Option(2, help="Threads per worker."),
    example: str | None = typer.Option(None, help="Train and capture a bundled example into "
                                       "SOURCE first: digits."),
    epochs_to_train: int = typer.Option(30, "--train-epochs", help="Epochs of --example."),
    spec_file: Path | None = typer.Option(None, "--spec", help="A YAML plane job instead."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Recompute committed results."),
) -> None:
    """I(X; L) and I(L; Y) per layer per epoch: the information plane (table + PNG)."""
    from distmi.analyses.infoplane import load_plane_spec, parse_plane_spec, run_plane

    try:
        if spec_file is not None:
            spec = load_plane_spec(spec_file)
        else:
            if source is None:
                raise InvalidParameterError("pass SOURCE (a training dataset folder) or --spec.")
            if example is not None:
                source, layer, target, x_layer = _build_example(example, source, layer, target,
                                                                epochs_to_train)
            if not layer or target is None:
                raise InvalidParameterError("pass at least one --layer and --target.")
            settings = dict(
                source=str(source), layers=list(layer), target=target, x_layer=x_layer,
                method=method, base=base, n_slices=n_slices, k=k, estimator=estimator,
                n_components=n_components, n_bootstrap=n_bootstrap,
                n_permutations=n_permutations, seed=seed, executor=executor, workers=workers,
                threads=threads, output=str(output) if output is not None else None,
                epochs=None if epochs is None else _ints(epochs, "--epochs"),
            )
            spec = parse_plane_spec(settings, "command-line options")
        result = run_plane(spec, overwrite=overwrite, log=typer.echo,
                           progress=_progress())
    except DistmiError as exc:
        raise _fail(exc) from exc
    _print(result)


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidParameterError(f"{flag} {text!r} must be comma-separated integers.") from None


def _build_example(name: str, source: Path, layer: list[str], target: str | None,
                   epochs: int) -> tuple[Path, list[str], str, str]:
    if name not in EXAMPLES:
        raise InvalidParameterError(f"--example {name!r} is not bundled; examples: {EXAMPLES}.")
    from distmi.examples.infoplane_digits import PLANE_LAYERS, train_with_capture

    train_with_capture(source, epochs=epochs, log=typer.echo)
    return source, list(layer) or list(PLANE_LAYERS), target or "digit", "input"


def _progress():
    state = {"last": -1}

    def show(done: int, total: int) -> None:
        step = max(1, total // 10)
        if done == total or done // step != state["last"]:
            state["last"] = done // step
            typer.echo(f"  {done}/{total} units")

    return show


def _print(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = result.table
    out = Table(title="information plane (nats; 95% intervals)", title_justify="left")
    for col in ("layer", "epoch", "I(X;L)", "I(X;L) CI", "I(L;Y)", "I(L;Y) CI"):
        out.add_column(col, justify="left" if col == "layer" else "right")
    last = table.groupby("layer", sort=False).tail(1)
    first = table.groupby("layer", sort=False).head(1)
    for row in _first_and_last(first, last).itertuples(index=False):
        out.add_row(str(row.layer), str(row.epoch), f"{row.i_xl:.3f}",
                    f"{row.i_xl_ci_low:.3f}-{row.i_xl_ci_high:.3f}", f"{row.i_ly:.3f}",
                    f"{row.i_ly_ci_low:.3f}-{row.i_ly_ci_high:.3f}")
    Console().print(out)
    if result.output is not None:
        typer.echo(f"table: {result.output / 'infoplane.csv'}  figure: "
                   f"{result.output / 'infoplane.png'}  ({result.n_run} units run, "
                   f"{result.n_resumed} resumed)")


def _first_and_last(first, last):
    import pandas as pd

    both = pd.concat([first, last]).drop_duplicates(subset=["layer", "epoch"])
    order = {name: i for i, name in enumerate(dict.fromkeys(first["layer"]))}
    return both.assign(_o=both["layer"].map(order)).sort_values(["_o", "epoch"]).drop(columns="_o")
