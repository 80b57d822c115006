"""Command-line front end (``distmi ...``): a thin layer over the public API.

Each command group lives in its own module and registers itself on :data:`app`; the modules
listed in ``_COMMAND_MODULES`` are imported when the CLI starts.
"""

from __future__ import annotations

import importlib

from distmi.cli.app import app

_COMMAND_MODULES = (
    "distmi.cli.estimate_cmd",
    "distmi.cli.store_cmd",
    "distmi.cli.run_cmd",
    "distmi.cli.compare_cmd",
    "distmi.cli.audit_cmd",
    "distmi.cli.report_cmd",
    "distmi.cli.infoplane_cmd",
    "distmi.cli.nif_cmd",
    "distmi.cli.explain_cmd",
)


def _load_commands() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name)


def main() -> None:
    """Entry point of the ``distmi`` console script."""
    _load_commands()
    app()


__all__ = ["app", "main"]
