"""Audits: run (or resume) a job on today's activations, compare it with a baseline, judge it.

``run_audit(spec, baseline)``:

1. loads the baseline's committed results and checks, before any computing, that they come
   from the same model and the same job (:func:`distmi.reduce.compare_checks.check_comparable`);
2. runs the job on its dataset with :func:`~distmi.jobs.runner.run_job` (committed results on
   the same dataset are reused; a changed dataset is computed again; an interrupted audit
   resumes);
3. compares the two tables row by row (:func:`distmi.reduce.compare`) under the job's
   ``audit:`` thresholds (:class:`~distmi.jobs.audit_spec.AuditSpec`) and judges each layer:
   it has *drifted* when the fraction of its units that changed exceeds
   ``max_drift_fraction``;
4. writes ``OUTPUT/audit.json`` (verdict, reasons, thresholds, provenance of both sides, the
   per-layer and per-target summaries, the largest shifts) and ``OUTPUT/audit_rows.parquet``
   (every compared row), atomically, after removing those of an earlier audit first so a
   failed audit never leaves a stale verdict beside new results.

The verdict's exit code is 0 (no drift) or 1 (drift); ``distmi audit`` exits 2 on any error.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distmi.core.errors import InvalidInputError, SpecError, StoreError
from distmi.core.storage import StorePath
from distmi.jobs.audit_spec import AuditSpec
from distmi.jobs.runner import JobResult, plan_job, run_job
from distmi.jobs.spec import JobSpec, UnitTopK, spec_hash, spec_to_dict
from distmi.reduce.commit import load_results
from distmi.reduce.compare import Comparison, compare, json_records
from distmi.reduce.compare_checks import check_comparable
from distmi.reduce.drift import judge_layers, onset_layer
from distmi.reduce.layers import layer_order

if TYPE_CHECKING:
    import pandas as pd

AUDIT_FILE = "audit.json"
ROWS_FILE = "audit_rows.parquet"
FORMAT = "distmi-audit"
EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2


@dataclass
class AuditResult:
    """A judged audit.

    Attributes:
        drift: whether the model's internal information drifted (exit code 1).
        reasons: one line per reason for the verdict (empty when no drift).
        layers: per-layer summary with ``drifted``, ``rank`` (1 = most drifted first) and
            ``depth`` (position in the model).
        comparison: the full row-by-row comparison.
        job: the run of the job on the new activations.
        thresholds: the :class:`AuditSpec` used.
        path: where ``audit.json`` was written.
    """

    drift: bool
    reasons: list[str]
    layers: pd.DataFrame
    comparison: Comparison
    job: JobResult
    thresholds: AuditSpec
    path: StorePath

    @property
    def exit_code(self) -> int:
        return EXIT_DRIFT if self.drift else EXIT_OK

    @property
    def verdict(self) -> str:
        return "drift" if self.drift else "no drift"

    @property
    def drifted_layers(self) -> list[str]:
        """Drifted layers, most drifted first."""
        return [str(v) for v in self.layers.loc[self.layers["drifted"], "layer"]]

    @property
    def onset(self) -> str | None:
        """The first drifted layer in depth order: where the change entered the model."""
        return onset_layer(self.layers)


def _uses_top_k(spec: JobSpec) -> bool:
    if isinstance(spec.units, UnitTopK):
        return True
    return isinstance(spec.layers, list) and any(
        not isinstance(v, str) and isinstance(v.units, UnitTopK) for v in spec.layers)


def _check_planned_overlap(base: pd.DataFrame, layers: list[str], targets: list[str] | None,
                           base_path: StorePath) -> None:
    """Refuse, before computing, an audit whose layers or targets miss the baseline's."""
    checks = [("layer", layers)] + ([("target", targets)] if targets else [])
    for col, planned in checks:
        have = sorted(map(str, base[col].unique()))
        if not set(have) & set(planned):
            raise InvalidInputError(
                f"the baseline {base_path} shares no {col} with this audit: the baseline has "
                f"{have[:10]}, the job plans {planned[:10]}; the {col}s are mismatched: pass "
                "the baseline results of this job."
            )


def _clear_previous(output: StorePath, shash: str, overwrite: bool) -> None:
    """Remove an earlier audit's files from this job's output folder (not another job's)."""
    job_file = output / "job.json"
    if not overwrite and job_file.is_file():
        try:
            if json.loads(job_file.read_bytes()).get("spec_hash") != shash:
                return  # another job's folder: run_job refuses it and nothing is removed
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return
    for name in (AUDIT_FILE, ROWS_FILE):
        (output / name).unlink(missing_ok=True)


def run_audit(
    spec: JobSpec,
    baseline: str | Path | None = None,
    *,
    executor: Any = None,
    address: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> AuditResult:
    """Run the job on its (new) dataset, compare with ``baseline`` and judge (module docstring).

    Args:
        spec: the audit's job (its ``audit:`` section, or the defaults of :class:`AuditSpec`).
        baseline: committed results to compare with (default: ``spec.audit.baseline``).
        executor, address, overwrite, progress, log: as for :func:`~distmi.jobs.run_job`.

    Raises:
        SpecError: no baseline; a ``top_k_variance`` unit selection; output = baseline folder.
        StoreError: the baseline folder holds no committed results.
        InvalidInputError: the baseline comes from another model or job, or shares no target.
    """
    audit = spec.audit or AuditSpec()
    base_path = baseline if baseline is not None else audit.baseline
    if base_path is None:
        raise SpecError(
            "the audit has no baseline: pass --baseline RESULTS (a committed results folder of "
            "this job) or set audit.baseline in the job file."
        )
    if _uses_top_k(spec):
        raise SpecError(
            "an audit needs a fixed unit selection, but the job selects units with "
            "top_k_variance, which picks different units on each dataset; use units: all, "
            "{range: [start, stop]} or {indices: [...]}."
        )
    base_path = StorePath.of(base_path)
    output = StorePath.of(spec.output)
    if output.uri.rstrip("/") == base_path.uri.rstrip("/"):
        raise SpecError(
            f"the audit's output {output} is its baseline folder; write the audit elsewhere "
            "(--output, e.g. out/audits/{date}) so the baseline is kept."
        )
    try:
        base_table, base_manifest = load_results(base_path)
    except StoreError as exc:
        raise StoreError(f"baseline {base_path}: {exc}") from exc
    if "spec" not in base_manifest:
        raise StoreError(
            f"baseline {base_path}: manifest.json is not a distmi results manifest (no job spec); "
            "pass the output folder of a `distmi run` of this job."
        )
    ds, plan = plan_job(spec, log)
    check_comparable(base_manifest, {
        "spec": spec_to_dict(spec), "job_name": spec.name,
        "dataset": {"model_id": ds.model_id, "n_samples": ds.n_samples},
    })
    _check_planned_overlap(base_table, list(plan.layers), list(plan.targets) or None, base_path)
    _clear_previous(output, spec_hash(spec), overwrite)
    t0 = _dt.datetime.now(_dt.UTC)
    result = run_job(spec, executor=executor, address=address, overwrite=overwrite,
                     progress=progress, log=log)
    comparison = compare((base_table, base_manifest), result, fdr=audit.fdr,
                         min_effect=audit.min_effect, fdr_method=audit.fdr_method)
    comparison.base["path"] = str(base_path)
    drift, reasons, layers = judge_layers(comparison, audit.max_drift_fraction,
                                          audit.missing_rows,
                                          order=layer_order(result.table, result.manifest))
    path = output / AUDIT_FILE
    out = AuditResult(drift, reasons, layers, comparison, result, audit, path)
    doc = audit_document(out, spec, started=t0)
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(comparison.rows, preserve_index=False), sink,
                   compression="zstd")
    (output / ROWS_FILE).write_bytes(sink.getvalue().to_pybytes())
    path.write_bytes(json.dumps(doc, indent=2, sort_keys=True, default=str).encode())
    return out


def audit_document(result: AuditResult, spec: JobSpec, started: _dt.datetime) -> dict[str, Any]:
    """The content of ``audit.json``."""
    comp = result.comparison.to_dict(top=20)
    return {
        "format": FORMAT,
        "format_version": 1,
        "verdict": result.verdict,
        "drift": result.drift,
        "exit_code": result.exit_code,
        "reasons": result.reasons,
        "drifted_layers": result.drifted_layers,
        "onset_layer": result.onset,
        "thresholds": result.thresholds.model_dump(mode="json"),
        "job": {"name": spec.name, "spec_hash": spec_hash(spec), "output": spec.output,
                "batches_run": result.job.batches_run,
                "batches_resumed": result.job.batches_resumed},
        "baseline": comp["base"],
        "new": comp["new"],
        "rows": comp["rows"],
        "notes": comp["notes"],
        "layers": json_records(result.layers),
        "targets": comp["by_target"],
        "largest_shifts": comp["largest_shifts"],
        "one_sided": comp["one_sided"][:100],
        "settings": comp["settings"],
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def expand_placeholders(text: str, now: _dt.datetime | None = None) -> str:
    """Replace ``{date}`` (YYYY-MM-DD), ``{time}`` (HHMMSS) and ``{datetime}``
    (YYYYMMDD-HHMMSS), in UTC, so scheduled audits write dated folders without a shell."""
    t = now or _dt.datetime.now(_dt.UTC)
    return (text.replace("{date}", t.strftime("%Y-%m-%d"))
            .replace("{time}", t.strftime("%H%M%S"))
            .replace("{datetime}", t.strftime("%Y%m%d-%H%M%S")))


def load_audit(path: str | Path | StorePath) -> dict[str, Any]:
    """Read ``audit.json`` from an audit's output folder (or the file itself).

    Raises:
        StoreError: no audit there.
    """
    p = StorePath.of(path)
    p = p / AUDIT_FILE if p.is_dir() else p
    if not p.is_file():
        raise StoreError(f"{p} does not exist; run `distmi audit JOB --baseline RESULTS` first.")
    return json.loads(p.read_bytes())
