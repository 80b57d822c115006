"""Reduce: merge batch results into attribution tables and matrices; commit them atomically."""

from distmi.reduce.attribution import (
    KEY,
    AttributionAccumulator,
    attribution_matrix,
    sort_table,
    top_units,
    with_excess,
)
from distmi.reduce.commit import ResultStore, load_results

__all__ = [
    "KEY",
    "AttributionAccumulator",
    "ResultStore",
    "attribution_matrix",
    "load_results",
    "sort_table",
    "top_units",
    "with_excess",
]
