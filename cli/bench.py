"""`pyecho bench`: spin-steps per second of every engine, speed-ups over the reference."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from pyecho.atomic import atomic_path
from pyecho.bench import BenchRow, machine_info, rows_as_dicts, run_bench
from pyecho_cli.app import app
from pyecho_cli.errors import user_errors


def _ints(option: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option}: got {text!r}; must be comma-separated integers, e.g. 8,16,32") from None
    if not values:
        raise ValueError(f"{option}: got {text!r}; give at least one value")
    return values


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return ""
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


@app.command()
@user_errors
def bench(
    engines: str = typer.Option("numpy,torch,julia", help="Engines to measure (unavailable ones are reported)."),
    lattices: str = typer.Option("8,16,32,64,100", help="Lattice sides n."),
    batch_sizes: str = typer.Option("1,8,32", help="Simulations per engine call (fast engines)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda (the reference is always cpu)."),
    dtype: str = typer.Option("float32", help="float32 or float64 for torch/julia."),
    steps: int = typer.Option(150, help="Time steps per measured run (fast engines)."),
    reference_steps: int = typer.Option(15, help="Time steps per reference run."),
    torch_compile: str = typer.Option("both", help="torch eager (never), compiled (always) or both."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON here."),
) -> None:
    """Measure spin-steps/s per engine, lattice and batch size, the speed-up over the NumPy reference
    and the projected time of `pyecho sim --preset paper`."""
    from pyecho.engines.base import BACKENDS

    names = [e.strip() for e in engines.split(",") if e.strip()]
    unknown = [e for e in names if e not in BACKENDS]
    if unknown or not names:
        raise ValueError(f"--engines: got {engines!r}; allowed: {', '.join(BACKENDS)}")
    lattice_list = _ints("--lattices", lattices)
    batch_list = _ints("--batch-sizes", batch_sizes)
    modes = {"both": ("never", "always"), "never": ("never",), "always": ("always",)}.get(torch_compile)
    if modes is None:
        raise ValueError(f"--torch-compile: got {torch_compile!r}; allowed: both, never, always")
    console = Console()
    info = machine_info()
    table = Table("engine", "device", "dtype", "lattice", "batch", "steps", "time", "M spin-steps/s",
                  "x reference", "paper preset (proj.)")

    def show(row: BenchRow) -> None:
        label = row.engine + ("+compile" if row.compiled else "")
        console.print(f"  {label}/{row.device} n={row.lattice} B={row.batch}: "
                      f"{row.spin_steps_per_s / 1e6:.2f} M spin-steps/s", highlight=False)
        table.add_row(label, row.device, row.dtype, str(row.lattice), str(row.batch), str(row.steps),
                      f"{row.seconds:.3f} s", f"{row.spin_steps_per_s / 1e6:.2f}",
                      f"{row.speedup_vs_reference:.0f}" if row.speedup_vs_reference else "",
                      _fmt_seconds(row.projected_paper_s))

    start = time.perf_counter()
    rows, notes = run_bench(names, lattice_list, batch_list, device, dtype, steps, reference_steps, modes, on_row=show)
    table.title = f"pyecho bench on {info.get('gpu') or info['platform']}, torch threads {info.get('torch_threads')}"
    console.print(table)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    if json_out is not None:
        payload = {"machine": info, "rows": rows_as_dicts(rows), "notes": notes,
                   "wall_s": time.perf_counter() - start}
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(payload, indent=2))
        console.print(f"wrote [bold]{json_out}[/]")
