"""Jobs: YAML specs (pydantic v2), ``run_job`` (plan, execute, commit, resume), submission to a
Ray cluster and reading committed results. Nothing here imports ray at import time."""

from distmi.jobs.datasets import builtin_datasets, register_builtin_dataset
from distmi.jobs.results import export_table, filter_table
from distmi.jobs.runner import JobResult, plan_job, run_job
from distmi.jobs.spec import JobSpec, load_spec, parse_spec, spec_hash
from distmi.reduce.commit import load_results

__all__ = [
    "JobResult",
    "JobSpec",
    "builtin_datasets",
    "export_table",
    "filter_table",
    "load_results",
    "load_spec",
    "parse_spec",
    "plan_job",
    "register_builtin_dataset",
    "run_job",
    "spec_hash",
]
