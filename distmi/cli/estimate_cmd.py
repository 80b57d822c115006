"""``distmi methods`` and ``distmi estimate``: one estimate from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from distmi.cli.app import app
from distmi.core.errors import DistmiError, InvalidInputError


@app.command("methods")
def methods_command() -> None:
    """List the estimators accepted by ``method=``."""
    from distmi.estimators.registry import available_methods, get_method

    for name in available_methods():
        typer.echo(f"{name:10s} {get_method(name).description}")


def _load_columns(path: Path, columns: list[str]):
    import numpy as np
    import pandas as pd

    if not path.exists():
        raise InvalidInputError(f"data file {path} does not exist; pass a .csv, .parquet or .npy file.")
    if path.suffix == ".npy":
        arr = np.load(path)
        return pd.DataFrame(arr.reshape(len(arr), -1), columns=[str(i) for i in range(arr.reshape(len(arr), -1).shape[1])])
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


@app.command("estimate")
def estimate_command(
    data: Path = typer.Argument(..., help="A .csv, .parquet or .npy file with one row per sample."),
    x: list[str] = typer.Option(..., "--x", help="Column(s) of X (repeat for several)."),
    y: list[str] = typer.Option(..., "--y", help="Column(s) of Y (repeat for several)."),
    method: str = typer.Option("gmm", help="Estimator name (see `distmi methods`)."),
    discrete_y: bool = typer.Option(False, "--discrete-y", help="Treat Y as class labels."),
    n_bootstrap: int = typer.Option(100, help="Bootstrap replicates for the error bar."),
    seed: int = typer.Option(0, help="Root random seed."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """Estimate I(X; Y) in nats from columns of a data file."""
    import distmi

    try:
        frame = _load_columns(data, x + y)
        missing = [c for c in x + y if c not in frame.columns]
        if missing:
            raise InvalidInputError(
                f"columns {missing} are not in {data}; available columns: {list(frame.columns)}"
            )
        yv = frame[y[0]].to_numpy() if discrete_y else frame[y].to_numpy()
        result = distmi.mutual_information(
            frame[x].to_numpy(), yv, method=method, discrete_y=discrete_y,
            n_bootstrap=n_bootstrap, random_state=seed,
        )
    except DistmiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(
            f"I(X;Y) = {result.value:.4f} nat  (std {result.std:.4f}, 95% CI "
            f"[{result.ci[0]:.4f}, {result.ci[1]:.4f}], n={result.n_samples}, method={result.method})"
        )
