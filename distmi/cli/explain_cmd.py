"""``distmi explain``: total, decision-related and redundant information maps of a bundled model."""

from __future__ import annotations

import typer

from distmi.cli.app import app
from distmi.core.errors import DistmiError


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.3f}"
    return str(v)


@app.command("explain")
def explain_command(
    model: str = typer.Argument(..., help="Bundled model: 'digits' (CNN) or 'minilm' "
                                          "(all-MiniLM-L6-v2 with a topic head)."),
    layer: list[str] = typer.Option(None, "--layer", "-l",
                                    help="Layer(s) to decompose, one work unit each (default: "
                                         "act2 for digits, encoder.layer.3 for minilm)."),
    output: str = typer.Option(None, "--output", "-o", help="Output folder (out/explain-MODEL)."),
    epochs: int = typer.Option(None, help="Training epochs (30 for digits, 10 for minilm)."),
    c: float = typer.Option(0.5, help="Sparsity weight c of c * mean(lambda)."),
    bound: str = typer.Option("jsd", help="'jsd' or 'dv'."),
    fill: str = typer.Option("auto", help="What a removed local input becomes: 'auto' (noise "
                                          "for images, mean for tokens), 'noise', 'mean' or "
                                          "'zero' (X' = lambda * X exactly)."),
    batch_size: int = typer.Option(None, help="Samples per step (64 digits, 32 minilm)."),
    n_texts: int = typer.Option(512, help="minilm: generated texts to fit on."),
    n_explain: int = typer.Option(128, help="minilm: generated texts to explain."),
    figures: int = typer.Option(4, help="Samples drawn as PNG figures per layer."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate",
                                  help="Deletion/insertion AUCs vs LayerGradCam and "
                                       "IntegratedGradients."),
    seed: int = typer.Option(0, help="Root seed (each layer's seed derives from it)."),
    device: str = typer.Option("auto", help="'auto', 'cpu' or 'cuda'."),
    threads: int = typer.Option(1, help="torch CPU threads per worker."),
    executor: str = typer.Option("local", help="'local' (in-process) or 'ray' (actors)."),
    workers: int = typer.Option(2, help="Ray actors (with --executor ray)."),
    address: str | None = typer.Option(None, help="Ray cluster to attach to."),
    overwrite: bool = typer.Option(False, help="Replace another job's results in --output."),
) -> None:
    """Fit the Infomax critic and the mask on a frozen bundled model, explain held-out inputs and
    write maps, tables, figures and checks per layer (a rerun resumes finished layers)."""
    from rich.console import Console
    from rich.table import Table

    from distmi.analyses.decompose.job import parse_spec, run_explain_job

    defaults = {"digits": ("act2", 30, 64), "minilm": ("encoder.layer.3", 10, 32)}
    if model not in defaults:
        typer.echo(f"error: unknown bundled model {model!r}; choose 'digits' or 'minilm'.",
                   err=True)
        raise typer.Exit(2)
    default_layer, default_epochs, default_batch = defaults[model]
    fit = {"c": c, "bound": bound, "fill": fill, "device": device,
           "epochs": epochs or default_epochs, "batch_size": batch_size or default_batch}
    try:
        spec = parse_spec(model=model, layers=tuple(layer or [default_layer]),
                          output=output or f"out/explain-{model}", fit=fit, seed=seed,
                          n_texts=n_texts, n_explain=n_explain, n_figures=figures,
                          evaluate=evaluate)
        typer.echo(f"explaining {model}: layers {', '.join(spec.layers)} -> {spec.output}")
        result = run_explain_job(
            spec, executor=executor, address=address, workers=workers, threads=threads,
            overwrite=overwrite,
            on_unit=lambda row: typer.echo(f"  {row['layer']}: done in "
                                           f"{row['unit_seconds']:.1f} s"))
    except DistmiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    table = Table(title=f"{model}: means over positions and explained samples (nats)",
                  title_justify="left")
    columns = {"layer": "layer", "i_zx": "I(Z;X)", "i_zx_masked": "I(Z;X')",
               "mean_lambda": "lambda", "accuracy": "acc", "masked_accuracy": "acc X'"}
    short = {"decision": "del decision", "LayerGradCam": "del Grad-CAM",
             "Grad-CAM (tokens)": "del Grad-CAM", "IntegratedGradients": "del IG"}
    for key in result.summary.columns:
        method = key[len("deletion_auc["):-1] if key.startswith("deletion_auc[") else None
        if method in short:
            columns[key] = short[method]
    for title in columns.values():
        table.add_column(title, justify="right")
    for row in result.summary.to_dict(orient="records"):
        table.add_row(*[_fmt(row.get(k)) for k in columns])
    Console().print(table)
    typer.echo("del X: deletion AUC of accuracy (lower is better); all figures in "
               "layers/<layer>/evaluation.json")
    if result.n_resumed:
        typer.echo(f"{result.n_resumed} layer(s) were already committed and kept.")
    typer.echo(f"results: {result.output} (manifest.json, layers/<layer>/...)")
