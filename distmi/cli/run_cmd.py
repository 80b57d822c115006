"""``distmi validate | run | submit | status | results``: MI jobs from YAML specs.

Errors are reported by the application's command group (:mod:`distmi.cli.app`): a
``DistmiError`` prints ``error: ...`` and exits 2; nothing prints a raw traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from distmi.cli.app import app
from distmi.core.errors import DistmiError
from distmi.core.storage import StorePath


def _fail(exc: object) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def _fmt(v: float) -> str:
    return "nan" if v != v else f"{v:.3f}"


def _summary(table, k: int, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from distmi.reduce.attribution import top_units

    top = top_units(table, k=k)
    pairs = bool((top["target_unit"] >= 0).any()) if len(top) else False
    out = Table(title=title, title_justify="left")
    cols = ["target", "layer", "unit", *(["partner unit"] if pairs else []), "MI", "95% CI",
            "null", "MI - null"]
    for col in cols:
        out.add_column(col, justify="left" if col in ("target", "layer") else "right",
                       no_wrap=col != "target")
    for row in top.itertuples(index=False):
        cells = [str(row.target), str(row.layer), "all" if row.unit < 0 else str(row.unit)]
        if pairs:
            cells.append(str(row.target_unit))
        cells += [_fmt(row.estimate), f"{_fmt(row.ci_low)}-{_fmt(row.ci_high)}",
                  _fmt(row.null_mean), _fmt(row.excess)]
        out.add_row(*cells)
    Console().print(out)


@app.command("validate")
def validate_command(
    job: Path = typer.Argument(..., help="A YAML job file."),
    plan: bool = typer.Option(True, "--plan/--no-plan", help="Also plan it against the dataset."),
) -> None:
    """Check a job file (fields, dataset, layers, targets, method) and print its plan size."""
    from distmi.jobs.runner import plan_job
    from distmi.jobs.spec import load_spec, spec_hash

    try:
        spec = load_spec(job)
        typer.echo(f"{job}: valid job {spec.name!r} (spec hash {spec_hash(spec)[:12]})")
        if plan:
            if not (StorePath.of(spec.dataset.path) / "manifest.json").is_file() \
                    and spec.dataset.builtin:
                typer.echo(f"dataset {spec.dataset.path} will be built ({spec.dataset.builtin}) "
                           "on the first run; plan not checked")
                return
            _, p = plan_job(spec)
            units = {k: len(v) for k, v in p.layers.items()}
            typer.echo(f"plan: pairs={p.mode}, {p.n_pairs} pairs in {len(p.batches)} batches, "
                       f"units per layer {units}, targets {p.targets}")
    except DistmiError as exc:
        raise _fail(exc) from exc


@app.command("run")
def run_command(
    job: Path = typer.Argument(..., help="A YAML job file."),
    address: str | None = typer.Option(None, help="Attach to a Ray cluster ('auto', 'HEAD:6379')."),
    executor: str | None = typer.Option(None, help="Override scaling.executor: 'ray' or 'local'."),
    workers: int | None = typer.Option(None, help="Override scaling.workers."),
    output: str | None = typer.Option(None, help="Override the output folder (path or URI)."),
    dataset: str | None = typer.Option(None, help="Override dataset.path (path or URI)."),
    overwrite: bool = typer.Option(False, help="Discard results already in the output folder."),
    top: int = typer.Option(3, help="Units per target in the summary table."),
    quiet: bool = typer.Option(False, help="No progress bar or summary."),
) -> None:
    """Run (or resume) a job: progress bar, committed results, summary of the top units."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from distmi.jobs.runner import run_job
    from distmi.jobs.spec import load_spec, parse_spec, spec_to_dict

    try:
        spec = load_spec(job)
        doc = spec_to_dict(spec)
        for key, value in (("executor", executor), ("workers", workers)):
            if value is not None:
                doc["scaling"][key] = value
        if output is not None:
            doc["output"] = output
        if dataset is not None:
            doc["dataset"]["path"] = dataset
        spec = parse_spec(doc, str(job))
        bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("pairs"), TimeElapsedColumn(), TextColumn("ETA"),
                       TimeRemainingColumn(), disable=quiet, transient=False)
        with bar:
            task = bar.add_task(spec.name, total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = run_job(spec, address=address, overwrite=overwrite, progress=progress,
                             log=None if quiet else bar.console.print)
    except DistmiError as exc:
        raise _fail(exc) from exc
    t = result.manifest["timings"]
    if not quiet:
        _summary(result.table, top, f"top units per target ({result.manifest['method']}, nats)")
    typer.echo(
        f"committed {len(result.table)} rows to {result.output} "
        f"({result.batches_run} batches run, {result.batches_resumed} resumed, "
        f"{t['wall_s']:.1f} s)"
    )


@app.command("submit")
def submit_command(
    job: Path = typer.Argument(..., help="A YAML job file inside the working directory."),
    address: str = typer.Option(..., help="Ray dashboard URL, e.g. http://HEAD:8265."),
    working_dir: Path = typer.Option(Path("."), help="Folder shipped to the cluster."),
    output: str | None = typer.Option(
        None, help="Where results land: a URI (s3://...) or a path every node shares."),
    dataset: str | None = typer.Option(
        None, help="Override dataset.path: a URI or a path every node shares."),
    pip: list[str] = typer.Option([], help="Extra pip requirements for the job (repeatable)."),
    dry_run: bool = typer.Option(False, help="Print the submission instead of sending it."),
) -> None:
    """Submit a job to a Ray cluster through the Jobs API; prints the job id.

    Relative output and dataset paths are made absolute when every node of the cluster is this
    machine, and refused otherwise (they would land in Ray's temporary copy of the working
    directory): give a URI or a shared path.
    """
    from distmi.jobs.spec import load_spec
    from distmi.jobs.submit import (
        build_submission,
        check_address,
        cluster_is_single_machine,
        submit,
    )

    spec = load_spec(job)
    url = check_address(address)
    try:
        single = cluster_is_single_machine(url)
    except (ConnectionError, RuntimeError) as exc:
        if not dry_run:
            raise _fail(f"could not reach the Ray dashboard at {url}: {exc}") from exc
        single = False  # planned as for a remote cluster: relative paths are refused
        typer.echo(f"note: {url} could not be reached, so the submission is planned as for a "
                   "cluster of other machines", err=True)
    sub = build_submission(job, spec, working_dir=working_dir, pip=pip or None,
                           single_machine=single, output=output, dataset=dataset)
    where = sub.metadata["output"]
    if dry_run:
        typer.echo(json.dumps(sub.as_kwargs(), indent=2))
        return
    try:
        job_id = submit(sub, url)
    except (ConnectionError, RuntimeError) as exc:
        raise _fail(f"could not submit to {url}: {exc}") from exc
    typer.echo(job_id)
    typer.echo(f"results will be committed to {where}")
    typer.echo(f"follow it with: distmi status {job_id} --address {url} --wait")


@app.command("status")
def status_command(
    job_id: str = typer.Argument(..., help="The id printed by `distmi submit`."),
    address: str = typer.Option(..., help="Ray dashboard URL, e.g. http://HEAD:8265."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the job ends, then print the "
                              "tail of its logs."),
    timeout: float | None = typer.Option(None, help="With --wait: give up after this many "
                                         "seconds (exit 124)."),
    tail: int = typer.Option(40, help="Log lines printed when the job ends (with --wait)."),
    logs: bool = typer.Option(False, help="Print the job's whole log."),
) -> None:
    """Status of a submitted job (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED).

    Exit status: 0 when the job succeeded (or is still pending/running without --wait), 1 when
    it FAILED or was STOPPED, 2 for an error (bad address, unknown job), 124 when --timeout
    passed before the job ended.
    """
    from distmi.jobs.submit import FAILED_STATES, check_address, job_status, log_tail, wait_for_job

    url = check_address(address)

    def show(info: dict) -> None:
        msg = f" ({info['message']})" if info.get("message") else ""
        typer.echo(f"{info['job_id']}: {info['status']}{msg}")

    try:
        if wait:
            info = wait_for_job(job_id, url, timeout_s=timeout, on_change=show)
        else:
            info = job_status(job_id, url)
            show(info)
        text = job_status(job_id, url, logs=True)["logs"] if (logs or wait) else None
    except (ConnectionError, RuntimeError) as exc:
        raise _fail(f"could not query {url}: {exc}") from exc
    if logs:
        typer.echo(text)
    elif wait and text:
        typer.echo(f"--- last {tail} log lines ---")
        typer.echo(log_tail(text, tail))
    if info.get("timed_out"):
        typer.echo(f"still {info['status']} after {timeout:g} s", err=True)
        raise typer.Exit(124)
    if info["status"] in FAILED_STATES:
        raise typer.Exit(1)


@app.command("results")
def results_command(
    output: str = typer.Argument(..., help="A job's output folder or URI."),
    target: list[str] = typer.Option([], help="Only these targets (repeatable)."),
    layer: list[str] = typer.Option([], help="Only these layers (repeatable)."),
    top: int = typer.Option(5, help="Rows per target."),
    min_excess: float | None = typer.Option(None, help="Only rows with estimate - null >= this."),
    export: Path | None = typer.Option(None, help="Write the filtered rows to .csv or .parquet."),
) -> None:
    """Top units per target of committed results, with filters and export."""
    from distmi.jobs.results import export_table, filter_table
    from distmi.reduce.commit import load_results

    try:
        table, manifest = load_results(output)
        rows = filter_table(table, targets=target or None, layers=layer or None,
                            min_excess=min_excess)
        if export is not None:
            export_table(rows, export)
    except DistmiError as exc:
        raise _fail(exc) from exc
    _summary(rows, top, f"{manifest.get('job_name', output)}: top {top} per target "
                        f"({manifest.get('method')}, nats)")
    if export is not None:
        typer.echo(f"wrote {len(rows)} rows to {export}")
