"""`pyecho info`: version and which engines can run here."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

import pyecho
from pyecho.engines.base import BACKENDS, DEVICES, availability
from pyecho_cli.app import app


@app.command()
def info() -> None:
    """Print the pyecho version and every engine/device as available or why not."""
    console = Console()
    console.print(f"pyecho [bold]{pyecho.__version__}[/]")
    table = Table("backend", "device", "status")
    for backend in BACKENDS:
        for device in DEVICES:
            reason = availability(backend, device)
            status = "[green]available[/]" if reason is None else f"[yellow]unavailable[/]: {reason}"
            table.add_row(backend, device, status)
    console.print(table)
