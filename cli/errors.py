"""One clear, coloured error line for bad input, instead of a traceback."""
from __future__ import annotations

import functools
import sys

import typer
from rich.console import Console

from pyecho.engines.base import BackendUnavailable
from pyecho.physics.params import ParameterError

err_console = Console(stderr=True, highlight=False)

#: exceptions that mean "the user asked for something invalid", shown as one line
USER_ERRORS = (
    ParameterError, BackendUnavailable, ValueError, FileNotFoundError, FileExistsError,
    NotADirectoryError, IsADirectoryError, PermissionError,
)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` in red on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def user_errors(func):
    """Decorator for commands: turn USER_ERRORS into one error line, Ctrl-C into exit 130."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: finished work is kept; rerun the same command to resume")
            sys.exit(130)

    return wrapper
