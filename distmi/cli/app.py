"""The root Typer application that command modules attach to."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="distmi",
    help="Distributed mutual-information estimation inside neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
