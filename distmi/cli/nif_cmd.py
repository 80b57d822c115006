"""``distmi nif``: neuron-level information flow of a bundled classifier or a NIF job file."""

from __future__ import annotations

from pathlib import Path

import typer

from distmi.cli.app import app
from distmi.core.errors import DistmiError


def _fail(exc: object) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def _print(report: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    flow, pr = report["flow"], report["pruning"]
    console.print(f"[bold]{report['data']}[/]: layers {flow['layers']}, {flow['n_links']} links "
                  f"by {flow['estimator']!r}, beta={flow['beta']!r}")
    console.print(f"zero-flow hidden neurons: {pr['n_pruned']} of {pr['n_hidden']} "
                  f"({flow['n_constant_hidden']} constant); test accuracy "
                  f"{pr['test_accuracy_before']:.4f} -> {pr['test_accuracy_after']:.4f} after "
                  f"pruning them ({pr['params_zeroed']} of {pr['params_total']} parameters zeroed)")
    if "comparison" in report:
        t = Table(title="K-S test against the raw feature-class MI (the seed's table)",
                  title_justify="left")
        for col in ("attribution", "K-S statistic", "p-value"):
            t.add_column(col)
        for row in report["comparison"]["ks"]:
            t.add_row(row["attribution"], f"{row['ks_statistic']:.3f}", f"{row['p_value']:.3f}")
        console.print(t)
    tm = report["timings"]
    console.print(f"total {tm['total_wall_s']:.1f} s wall, {tm['total_cpu_s']:.1f} s CPU; "
                  f"results in {out}")


@app.command("nif")
def nif_command(
    builtin: str | None = typer.Option(
        None, help="Bundled classifier: iris, wine, breast_cancer or digits."),
    out: Path | None = typer.Option(None, help="Output folder (required with --builtin)."),
    job: Path | None = typer.Option(None, help="A NIF job YAML file (jobs/nif_*.yaml)."),
    estimator: str | None = typer.Option(None, help="Link MI estimator (default: ksg)."),
    beta: str = typer.Option("mean", help="Redundancy weight: mean, none or a number."),
    redundancy_order: str = typer.Option("relevance", help="relevance or index (eq. 2)."),
    n_bootstrap: int = typer.Option(20, help="Shared half-sample replicates."),
    n_permutations: int = typer.Option(9999, help="Permutation null size of the zero-flow test."),
    alpha: float = typer.Option(0.05, help="FDR level of the zero-flow test."),
    seed: int = typer.Option(0, help="Root seed (model training and estimation)."),
    executor: str | None = typer.Option(None, help="'local' (default) or 'ray'."),
    workers: int | None = typer.Option(None, help="Ray actors."),
    address: str | None = typer.Option(None, help="Ray cluster address ('auto', 'HEAD:6379')."),
    compare: bool = typer.Option(True, "--compare/--no-compare",
                                 help="Compare with Integrated Gradients and SHAP."),
    overwrite: bool = typer.Option(False, help="Replace a run of other data in the folder."),
) -> None:
    """Train a bundled classifier (or run a NIF job): links, attribution, pruning, comparison.

    Writes the flow (Parquet + JSON), pruning results and curve, the IG/SHAP comparison,
    figures (PNG) and report.json to the output folder; a stopped run resumes there.
    """
    try:
        if job is not None:
            if builtin is not None:
                raise _fail("pass either --job or --builtin, not both")
            from distmi.analyses.nif.job import load_nif_job, run_nif_job

            spec = load_nif_job(job)
            target = Path(out or spec.output)
            report = run_nif_job(spec, executor=executor, workers=workers, address=address,
                                 output=str(target), overwrite=overwrite, log=typer.echo)
        else:
            if builtin is None or out is None:
                raise _fail("pass --builtin NAME --out DIR (NAME: iris, wine, breast_cancer, "
                            "digits), or --job FILE")
            from distmi.analyses.nif.redundancy import check_beta
            from distmi.analyses.nif.report import run_study
            from distmi.examples.tabular import load_bundled

            try:
                beta_value: str | float = float(beta)
            except ValueError:
                beta_value = beta
            check_beta(beta_value)
            bundle = load_bundled(builtin, seed)
            target = out
            report = run_study(bundle, out, estimator=estimator, beta=beta_value,
                               redundancy_order=redundancy_order, n_bootstrap=n_bootstrap,
                               n_permutations=n_permutations, alpha=alpha, seed=seed,
                               compare=compare, executor=executor or "local",
                               workers=workers or 2, address=address, overwrite=overwrite,
                               log=typer.echo)
    except DistmiError as exc:
        raise _fail(exc) from exc
    _print(report, target)
