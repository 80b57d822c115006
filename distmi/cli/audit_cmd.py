"""``distmi audit``: run a job on today's activations, compare with a baseline, exit 0/1/2.

Exit codes: 0 no drift, 1 drift, 2 error (bad input, a failed run, an unreadable baseline,
an unexpected exception, an interruption): a scheduler or CI can gate on them. Unlike the other
commands an audit never exits 3 or 130, so "not 0 and not 1" always means "no verdict".
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import typer

from distmi.cli.app import app

EXIT_ERROR = 2


def _error(message: object) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def apply_overrides(job: Path, *, dataset: str | None = None, output: str | None = None,
                    executor: str | None = None, workers: int | None = None):
    """Load a job file and apply command-line overrides (``{date}`` placeholders expanded)."""
    from distmi.jobs.audit import expand_placeholders
    from distmi.jobs.spec import load_spec, parse_spec, spec_to_dict

    spec = load_spec(job)
    doc = spec_to_dict(spec)
    if dataset is not None:
        # an explicit dataset must exist: never build a bundled example in its place
        doc["dataset"] = {**doc["dataset"], "path": expand_placeholders(dataset), "builtin": None}
    if output is not None:
        doc["output"] = expand_placeholders(output)
    for key, value in (("executor", executor), ("workers", workers)):
        if value is not None:
            doc["scaling"][key] = value
    return parse_spec(doc, str(job))


def _print_layers(result) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"audit: {result.verdict.upper()} (min effect {result.thresholds.min_effect} "
                    f"nats, fdr {result.thresholds.fdr}, max drifted fraction "
                    f"{result.thresholds.max_drift_fraction:.0%} per layer)",
              title_justify="left")
    for col in ("rank", "layer", "units changed", "fraction", "max |delta|", "rank corr",
                "drifted"):
        t.add_column(col, justify="left" if col == "layer" else "right")
    for r in result.layers.itertuples(index=False):
        t.add_row(str(r.rank), str(r.layer), f"{r.n_units_changed}/{r.n_units}",
                  f"{r.frac_units_changed:.1%}", f"{r.max_abs_delta:.3f}",
                  "nan" if r.rank_corr != r.rank_corr else f"{r.rank_corr:.3f}",
                  "DRIFT" if r.drifted else "-")
    Console().print(t)


def _submit(job: Path, baseline: str, output: str | None, dataset: str | None,
            extra: list[str], submit: str, working_dir: Path, wait: bool, timeout: float) -> int:
    from distmi.jobs.audit_submit import build_audit_submission, wait_for_verdict
    from distmi.jobs.spec import load_spec
    from distmi.jobs.submit import check_address, cluster_is_single_machine
    from distmi.jobs.submit import submit as send

    address = check_address(submit)
    sub = build_audit_submission(job, load_spec(job), baseline=baseline, output=output,
                                 dataset=dataset, extra_args=extra, working_dir=working_dir,
                                 single_machine=cluster_is_single_machine(address))
    job_id = send(sub, address)
    typer.echo(job_id)
    typer.echo(f"audit results will be committed to {sub.metadata['output']}")
    if not wait:
        typer.echo(f"follow it with: distmi status {job_id} --address {address} --wait")
        return 0
    code, message = wait_for_verdict(job_id, address, timeout_s=timeout, log=typer.echo)
    typer.echo(message, err=code == EXIT_ERROR)
    return code


@app.command("audit")
def audit_command(
    job: Path = typer.Argument(..., help="The audit's YAML job file (with an optional audit: section)."),
    baseline: str | None = typer.Option(None, help="Committed results of this job to compare with (default: audit.baseline)."),
    dataset: str | None = typer.Option(None, help="Today's activation dataset (overrides dataset.path; {date} is expanded)."),
    output: str | None = typer.Option(None, help="Where the new results and audit.json go (overrides output; {date} is expanded)."),
    report: str | None = typer.Option(None, help="Report folder (default OUTPUT/report)."),
    no_report: bool = typer.Option(False, "--no-report", help="Write audit.json only."),
    address: str | None = typer.Option(None, help="Attach to a Ray cluster ('auto', 'HEAD:6379')."),
    executor: str | None = typer.Option(None, help="Override scaling.executor: 'ray' or 'local'."),
    workers: int | None = typer.Option(None, help="Override scaling.workers."),
    overwrite: bool = typer.Option(False, help="Discard results already in the output folder."),
    submit: str | None = typer.Option(None, help="Run the audit on a Ray cluster via the Jobs API (dashboard URL) and wait for its verdict."),
    working_dir: Path = typer.Option(Path("."), help="With --submit: folder shipped to the cluster."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="With --submit: wait for the verdict."),
    timeout: float = typer.Option(86400.0, help="With --submit: seconds to wait."),
    quiet: bool = typer.Option(False, help="Print the verdict only."),
) -> None:
    """Audit a model: run the job, compare with the baseline, exit 0 (no drift), 1 (drift), 2 (error)."""
    from distmi.core.errors import DistmiError

    try:
        code = _audit(job, baseline, dataset, output, report, no_report, address, executor,
                      workers, overwrite, submit, working_dir, wait, timeout, quiet)
    except DistmiError as exc:
        raise _error(exc) from exc
    except (ConnectionError, RuntimeError, OSError) as exc:
        raise _error(f"{type(exc).__name__}: {exc}") from exc
    except KeyboardInterrupt as exc:
        raise _error("interrupted; run the same command again to resume") from exc
    except Exception as exc:  # an audit must never exit 1 (drift) because it crashed
        from distmi.cli.app import DEBUG_ENV, _debug

        if _debug():
            traceback.print_exc()
        raise _error(f"unexpected {type(exc).__name__}: {exc} (run with {DEBUG_ENV}=1 to see "
                     "the traceback)") from exc
    raise typer.Exit(code)


def _audit(job, baseline, dataset, output, report, no_report, address, executor, workers,
           overwrite, submit, working_dir, wait, timeout, quiet) -> int:
    from distmi.jobs.audit import expand_placeholders, run_audit

    spec = apply_overrides(job, dataset=dataset, output=output, executor=executor,
                           workers=workers)
    base = baseline if baseline is not None else (spec.audit.baseline if spec.audit else None)
    base = expand_placeholders(base) if base is not None else None
    if submit is not None:
        if base is None:
            from distmi.core.errors import SpecError

            raise SpecError("the audit has no baseline: pass --baseline RESULTS or set "
                            "audit.baseline in the job file.")
        extra = []
        if report is not None:
            extra += ["--report", expand_placeholders(report)]
        if no_report:
            extra.append("--no-report")
        if workers is not None:
            extra += ["--workers", str(workers)]
        return _submit(job, base, spec.output if output is not None else None,
                       spec.dataset.path if dataset is not None else None, extra, submit,
                       working_dir, wait, timeout)

    if quiet:
        result = run_audit(spec, base, address=address, overwrite=overwrite)
    else:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("pairs"), TimeElapsedColumn(), console=Console(stderr=True))
        with bar:
            task = bar.add_task(f"audit {spec.name}", total=None)
            result = run_audit(
                spec, base, address=address, overwrite=overwrite, log=bar.console.print,
                progress=lambda done, total: bar.update(task, completed=done, total=total))
    if not quiet:
        _print_layers(result)
    for reason in result.reasons:
        typer.echo(f"  - {reason}")
    if result.onset is not None:
        typer.echo(f"drift starts at layer {result.onset} (the first drifted layer in depth order)")
    typer.echo(f"{result.verdict}: audit written to {result.path}")
    if not no_report:
        from distmi.core.storage import StorePath
        from distmi.report import write_report

        folder = (StorePath.of(expand_placeholders(report)) if report
                  else StorePath.of(spec.output) / "report")
        page = write_report(spec.output, folder, baseline=base,
                            audit=json.loads(result.path.read_text()),
                            comparison=result.comparison)
        typer.echo(f"report: {page}")
    return result.exit_code
