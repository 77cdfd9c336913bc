"""`pyecho echo`: one simulation from options -> CSV series and PNG plot."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from pyecho import EchoParams, simulate
from pyecho.data.echo_file import plot_echo, write_echo_csv
from pyecho.errors import ParameterError
from pyecho_cli.app import app
from pyecho_cli.errors import user_errors
from pyecho_cli.options import Backend, Device, Dtype, with_echo_params


@app.command()
@user_errors
@with_echo_params()  # the options kernel .. center_khz, as `params`
def echo(
    params: EchoParams,
    seed: Annotated[int, typer.Option(help="Seed of the detuning field.")] = 0,
    backend: Backend = "torch",
    device: Device = "auto",
    dtype: Dtype = "float32",
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write (t_us, re_M, im_M, abs_M).")] = Path("echo.csv"),
    png: Annotated[Optional[Path], typer.Option(help="PNG of |M(t)|; default: the CSV path with .png.")] = None,
) -> None:
    """Simulate one spin echo (or echo train) and write its series M(t) as CSV and a plot of |M(t)|."""
    if out.suffix.lower() != ".csv":
        raise ParameterError(f"--out: got {str(out)!r}; must end in .csv")
    png = png or out.with_suffix(".png")
    start = time.perf_counter()
    m = simulate(params, seed=seed, backend=backend, device=device, dtype=dtype)
    seconds = time.perf_counter() - start
    t_us = params.time_grid_us()
    write_echo_csv(out, t_us, m)
    title = (
        f"{params.kernel} (kernel_param={params.kernel_param:g}, L={params.L:.2f}), alpha_xy={params.alpha_xy:g}, "
        f"alpha_z={params.alpha_z:g}, W={params.W:.3g} rad/us, {params.lattice}x{params.lattice}"
    )
    plot_echo(png, params, m, title)
    tops = ", ".join(f"{abs(m[k]):.5f}" for k in params.echo_samples[:8])
    more = " ..." if len(params.echo_samples) > 8 else ""
    Console().print(
        f"echo tops |M| = {tops}{more}  ({params.n_samples} samples, {seconds:.2f} s on {backend})\n"
        f"wrote [bold]{out}[/] and [bold]{png}[/]"
    )
