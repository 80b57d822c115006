"""Reduce: merge batch results into attribution tables and matrices; commit them atomically;
compare two of them row by row."""

from distmi.reduce.attribution import (
    KEY,
    AttributionAccumulator,
    attribution_matrix,
    sort_table,
    top_units,
    with_excess,
)
from distmi.reduce.commit import ResultStore, load_results
from distmi.reduce.compare import Comparison, compare

__all__ = [
    "KEY",
    "AttributionAccumulator",
    "Comparison",
    "ResultStore",
    "attribution_matrix",
    "compare",
    "load_results",
    "sort_table",
    "top_units",
    "with_excess",
]
