"""The console a command prints its result tables on."""
from __future__ import annotations

from rich.console import Console

#: columns of a table written to a file or a pipe: rich's default there (80) cut numbers of the
#: wider tables to "0.00…"; a terminal keeps its own width
PIPE_WIDTH = 160


def table_console() -> Console:
    """stdout's console: the terminal's width, or :data:`PIPE_WIDTH` when stdout is not a terminal."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)
