"""Reports people can look at: matplotlib figures of attribution tables and audits, and one
self-contained HTML page (``distmi report``).

This package reads committed results (tables, manifests, ``audit.json``) only; it never
imports the engine. Each figure is a function taking a table and returning a
``matplotlib.figure.Figure`` (:mod:`distmi.report.figures`).
"""

from distmi.report.page import write_report

__all__ = ["write_report"]
