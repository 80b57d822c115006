"""The root Typer application that command modules attach to, and how commands fail.

Every command runs inside :class:`_DistmiGroup.invoke`, so no command shows a raw traceback:

- a :class:`~distmi.core.errors.DistmiError` (bad input, bad spec, corrupt data) prints
  ``error: <message>`` on stderr and exits with status 2;
- an ``OSError`` (a missing file, a refused connection, a storage permission) prints
  ``error: <message>`` and exits with status 2;
- anything else is a bug or an environment problem distmi did not foresee: it prints the
  exception's type and message, how to see the traceback (``DISTMI_DEBUG=1``), and exits with
  status 3. With ``DISTMI_DEBUG=1`` the exception propagates with its traceback.

Ctrl-C exits with status 130. Job-state exit codes (``distmi status``) are documented there.
"""

from __future__ import annotations

import os

import click
import typer
from typer.core import TyperGroup

from distmi.core.errors import DistmiError

EXIT_ERROR = 2
EXIT_INTERNAL = 3
DEBUG_ENV = "DISTMI_DEBUG"


def _framework_exceptions() -> tuple[type[BaseException], ...]:
    """Exceptions that already mean "exit with this status": Typer's and Click's own (recent
    Typer versions ship their own copy of Click as ``typer._click``)."""
    kinds: list[type[BaseException]] = [typer.Exit, typer.Abort, click.exceptions.Exit,
                                        click.exceptions.Abort, click.ClickException]
    vendored = getattr(getattr(typer, "_click", None), "exceptions", None)
    for name in ("ClickException", "TyperException"):
        kind = getattr(vendored, name, None)
        if isinstance(kind, type) and issubclass(kind, BaseException):
            kinds.append(kind)
    return tuple(kinds)


_PASS_THROUGH = _framework_exceptions()


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


class _DistmiGroup(TyperGroup):
    """The command group; turns exceptions into one-line messages and exit codes."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except DistmiError as exc:
            if _debug():
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except OSError as exc:
            if _debug():
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_ERROR) from None
        except Exception as exc:
            if _debug():
                raise
            typer.echo(
                f"internal error: {type(exc).__name__}: {exc}\n"
                f"This is a bug in distmi or an unexpected problem of the environment. Run the "
                f"command again with {DEBUG_ENV}=1 to see the traceback, and include it when "
                "you report it.",
                err=True,
            )
            raise typer.Exit(EXIT_INTERNAL) from None


app = typer.Typer(
    name="distmi",
    help="Distributed mutual-information estimation inside neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_DistmiGroup,
)
