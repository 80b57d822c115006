"""``distmi compare BASE NEW``: what changed between two committed results."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from distmi.cli.app import app


def _fmt(v: float, spec: str = ".3f") -> str:
    return "nan" if v != v else format(v, spec)


def _print(comparison, top: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    s = comparison.settings
    for name, frame in (("layer", comparison.by_layer), ("target", comparison.by_target)):
        t = Table(title=f"per {name} (fdr {s['fdr']}, min effect {s['min_effect']} nats)",
                  title_justify="left")
        for col in (name, "rows", "one side", "units changed", "max |delta|", "mean delta",
                    "rank corr"):
            t.add_column(col, justify="left" if col == name else "right")
        for r in frame.itertuples(index=False):
            t.add_row(str(getattr(r, name)), str(r.n_rows), str(r.n_base_only + r.n_new_only),
                      f"{r.n_units_changed}/{r.n_units}", _fmt(r.max_abs_delta),
                      _fmt(r.mean_delta, "+.3f"), _fmt(r.rank_corr))
        console.print(t)
    shifts = comparison.largest_shifts(top)
    t = Table(title="largest shifts (nats)", title_justify="left")
    for col in ("layer", "unit", "target", "base", "new", "delta", "se", "z", "q", "changed"):
        t.add_column(col, justify="left" if col in ("layer", "target") else "right")
    for r in shifts.itertuples(index=False):
        t.add_row(str(r.layer), str(r.unit), str(r.target), _fmt(r.estimate_base),
                  _fmt(r.estimate_new), _fmt(r.delta, "+.3f"), _fmt(r.se_delta), _fmt(r.z, ".2f"),
                  _fmt(r.q_value, ".3g"), "yes" if r.changed else "-")
    console.print(t)
    for note in comparison.notes:
        typer.echo(f"note: {note}")


@app.command("compare")
def compare_command(
    base: Path = typer.Argument(..., help="Baseline results folder."),
    new: Path = typer.Argument(..., help="Results folder to compare with it."),
    fdr: float = typer.Option(0.05, help="Benjamini-Hochberg false discovery rate."),
    min_effect: float = typer.Option(0.0, help="Smallest |delta| in nats that counts as a change."),
    test: str = typer.Option("z", help="'z' (difference z test on standard errors) or 'none'."),
    fdr_groups: str | None = typer.Option(None, help="Correct within 'layer', 'target' or 'layer_target'."),
    top: int = typer.Option(10, help="Largest shifts to print."),
    export: Path | None = typer.Option(None, help="Write every compared row to .csv or .parquet."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Row-by-row deltas between two results with z tests, BH q-values and summaries."""
    from distmi.core.errors import DistmiError
    from distmi.jobs.results import export_table
    from distmi.reduce.compare import compare

    try:
        comparison = compare(base, new, fdr=fdr, min_effect=min_effect, test=test,
                             fdr_groups=fdr_groups)
        if export is not None:
            export_table(comparison.rows, export)
    except DistmiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(comparison.to_dict(top=top), indent=2))
    else:
        _print(comparison, top)
        d = comparison.to_dict(top=0)["rows"]
        typer.echo(f"{d['both']} rows compared ({d['tested']} tested), {d['changed']} changed; "
                   f"{d['base_only']} only in {base}, {d['new_only']} only in {new}")
    if export is not None:
        typer.echo(f"wrote {len(comparison.rows)} rows to {export}")
