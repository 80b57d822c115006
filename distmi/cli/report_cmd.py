"""``distmi report RESULTS [--baseline RESULTS] --out report/``: one self-contained HTML page."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from distmi.cli.app import app


@app.command("report")
def report_command(
    results: Path = typer.Argument(..., help="A results folder (of `distmi run` or `distmi audit`)."),
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Report folder to write."),
    baseline: Path | None = typer.Option(None, help="Baseline results: adds the drift view (an audit folder has it already)."),
    top: int = typer.Option(10, help="Units per target in the top-units figure."),
    fdr: float | None = typer.Option(None, help="Drift view: BH level (default: the audit's, else 0.05)."),
    min_effect: float | None = typer.Option(None, help="Drift view: smallest change in nats (default: the audit's)."),
    max_drift_fraction: float | None = typer.Option(None, help="Drift view: a layer drifts above this fraction of changed units."),
    embed: bool = typer.Option(True, "--embed/--link", help="Embed the figures in the page, or link figures/*.png."),
    title: str | None = typer.Option(None, help="Page title."),
) -> None:
    """Write an HTML report (figures of MI per layer, target and unit; drift view with a baseline)."""
    from distmi.core.errors import DistmiError
    from distmi.report import write_report

    t0 = time.perf_counter()
    try:
        page = write_report(results, out, baseline=baseline, top=top, fdr=fdr,
                            min_effect=min_effect, max_drift_fraction=max_drift_fraction,
                            embed=embed, title=title)
    except DistmiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"wrote {page} ({time.perf_counter() - t0:.1f} s)")
