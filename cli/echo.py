"""`pyecho echo`: one simulation from options -> CSV series and PNG plot."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from pyecho import simulate
from pyecho.data.echo_file import plot_echo, write_echo_csv
from pyecho.errors import ParameterError
from pyecho_cli.app import app
from pyecho_cli.errors import user_errors
from pyecho_cli.options import (
    THETA_DEFAULT, AlphaXY, AlphaZ, Backend, CenterKhz, Device, DtUs, Dtype, FieldEvery, Gamma1, Gamma2, Gamma3,
    Geometry, Kernel, KernelParam, Lattice, LinewidthKhz, SchemeOpt, Sequence, T2Us, TauUs, Theta, echo_params,
)


@app.command()
@user_errors
def echo(
    kernel: Kernel = "gaussian",
    kernel_param: KernelParam = 8.0,
    alpha_xy: AlphaXY = 0.05,
    alpha_z: AlphaZ = 0.03,
    lattice: Lattice = 100,
    tau_us: TauUs = 100.0,
    dt_us: DtUs = 0.16,
    theta: Theta = THETA_DEFAULT,
    linewidth_khz: LinewidthKhz = 8.0,
    t2_us: T2Us = None,
    gamma1_per_us: Gamma1 = 0.0,
    gamma2_per_us: Gamma2 = 0.0,
    gamma3_per_us: Gamma3 = 0.0,
    sequence: Sequence = "hahn",
    scheme: SchemeOpt = "explicit",
    field_every: FieldEvery = None,
    geometry: Geometry = "square",
    center_khz: CenterKhz = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the detuning field.")] = 0,
    backend: Backend = "torch",
    device: Device = "auto",
    dtype: Dtype = "float32",
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write (t_us, re_M, im_M, abs_M).")] = Path("echo.csv"),
    png: Annotated[Optional[Path], typer.Option(help="PNG of |M(t)|; default: the CSV path with .png.")] = None,
) -> None:
    """Simulate one spin echo (or echo train) and write its series M(t) as CSV and a plot of |M(t)|."""
    params = echo_params(
        kernel=kernel, kernel_param=kernel_param, alpha_xy=alpha_xy, alpha_z=alpha_z, lattice=lattice,
        tau_us=tau_us, dt_us=dt_us, theta=theta, linewidth_khz=linewidth_khz, t2_us=t2_us,
        gamma1_per_us=gamma1_per_us, gamma2_per_us=gamma2_per_us, gamma3_per_us=gamma3_per_us,
        sequence=sequence, scheme=scheme, field_every=field_every, geometry=geometry, center_khz=center_khz,
    )
    if out.suffix.lower() != ".csv":
        raise ParameterError(f"--out: got {str(out)!r}; must end in .csv")
    png = png or out.with_suffix(".png")
    start = time.perf_counter()
    m = simulate(params, seed=seed, backend=backend, device=device, dtype=dtype)
    seconds = time.perf_counter() - start
    t_us = params.time_grid_us()
    write_echo_csv(out, t_us, m)
    title = (
        f"{kernel} (kernel_param={params.kernel_param:g}, L={params.L:.2f}), alpha_xy={alpha_xy:g}, "
        f"alpha_z={alpha_z:g}, W={params.W:.3g} rad/us, {lattice}x{lattice}"
    )
    plot_echo(png, params, m, title)
    tops = ", ".join(f"{abs(m[k]):.5f}" for k in params.echo_samples[:8])
    more = " ..." if len(params.echo_samples) > 8 else ""
    Console().print(
        f"echo tops |M| = {tops}{more}  ({params.n_samples} samples, {seconds:.2f} s on {backend})\n"
        f"wrote [bold]{out}[/] and [bold]{png}[/]"
    )
