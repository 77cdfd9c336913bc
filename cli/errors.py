"""One clear line for bad input; bugs are reported as bugs, with their traceback kept in a log file."""
from __future__ import annotations

import functools
import os
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from pyecho.errors import PyechoError

err_console = Console(stderr=True, highlight=False)

#: exceptions that mean "the user asked for something invalid", shown as one line: pyecho's own,
#: and the operating system refusing a path the user named (an output under a file, no permission)
USER_ERRORS = (PyechoError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` in red on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def log_dir() -> Path:
    """Where internal-error tracebacks go: $PYECHO_CACHE_DIR/logs, else ~/.cache/pyecho/logs."""
    root = os.environ.get("PYECHO_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyecho"
    return Path(root) / "logs"


def report_internal_error(exc: BaseException) -> Path | None:
    """Write the traceback to a new log file and print one line naming it; returns the path."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    text = "".join(traceback.format_exception(exc))
    try:
        path = log_dir() / f"internal-error-{stamp}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"pyecho {' '.join(sys.argv[1:])}\n\n{text}")
    except OSError:  # nowhere to write: show the traceback itself
        err_console.print(text, markup=False)
        path = None
    where = f"traceback in {path}" if path else "traceback above"
    err_console.print(f"[bold red]internal error[/] (a bug in pyecho, not in your input): "
                      f"{escape(f'{type(exc).__name__}: {exc}; {where}')}; please report it", soft_wrap=True)
    return path


def user_errors(func):
    """Decorator for commands: pyecho's own errors become one line (exit 2), Ctrl-C exit 130, and
    anything else an internal-error line with the traceback in a log file (exit 1)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except USER_ERRORS as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: finished work is kept; rerun the same command to resume")
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 -- every other exception is a bug: say so
            report_internal_error(exc)
            raise typer.Exit(1) from None

    return wrapper
