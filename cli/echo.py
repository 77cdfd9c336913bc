"""`pyecho echo`: one simulation from options -> CSV series and PNG plot."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from pyecho import EchoParams, simulate
from pyecho.data.echo_file import plot_echo, write_echo_csv
from pyecho.physics.kernels import KERNELS
from pyecho_cli.app import app
from pyecho_cli.errors import user_errors
from pyecho_cli.options import sequence_option


@app.command()
@user_errors
def echo(
    kernel: str = typer.Option("gaussian", help=f"Interaction kernel: {', '.join(KERNELS)}."),
    kernel_param: float = typer.Option(8.0, help="xi (gaussian), p (power) or gamma (rkky); ignored for uniform."),
    alpha_xy: float = typer.Option(0.05, help="In-plane coupling alpha_x = alpha_y (rad/us)."),
    alpha_z: float = typer.Option(0.03, help="Out-of-plane coupling alpha_z (rad/us)."),
    lattice: int = typer.Option(100, help="Side n of the n x n periodic lattice."),
    tau_us: float = typer.Option(100.0, help="Pulse spacing tau (us); the echo forms at 2 tau."),
    dt_us: float = typer.Option(0.16, help="Time step (us)."),
    theta: float = typer.Option(math.pi / 2, help="Excitation angle (rad); refocusing is 2 theta about y."),
    linewidth_khz: float = typer.Option(8.0, help="FWHM of the Lorentzian detunings (kHz)."),
    t2_us: Optional[float] = typer.Option(None, help="Transverse relaxation time T2 (us) = 2/gamma3; default none."),
    gamma1_per_us: float = typer.Option(0.0, help="Lindblad rate of the I+ channel (1/us)."),
    gamma2_per_us: float = typer.Option(0.0, help="Lindblad rate of the I- channel (1/us)."),
    gamma3_per_us: float = typer.Option(0.0, help="Lindblad rate of the I^z dephasing channel (1/us)."),
    sequence: str = typer.Option("hahn", help="Pulse sequence: hahn, cpmg:N, cp:N or a TOML pulse-list file."),
    scheme: str = typer.Option("explicit", help="Integrator: explicit (the contract's step) or extrapolated."),
    field_every: Optional[int] = typer.Option(None, help="Steps per field evaluation of the extrapolated scheme (default 4)."),
    geometry: str = typer.Option("square", help="Lattice: square, rectangular:RATIO or triangular."),
    center_khz: float = typer.Option(0.0, help="Carrier offset: centre of the detuning Lorentzian (kHz)."),
    seed: int = typer.Option(0, help="Seed of the detuning field."),
    backend: str = typer.Option("torch", help="Engine: numpy (reference), torch, julia."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    dtype: str = typer.Option("float32", help="float32 or float64."),
    out: Path = typer.Option(Path("echo.csv"), "--out", "-o", help="CSV to write (t_us, re_M, im_M, abs_M)."),
    png: Optional[Path] = typer.Option(None, help="PNG of |M(t)|; default: the CSV path with .png."),
) -> None:
    """Simulate one spin echo (or echo train) and write its series M(t) as CSV and a plot of |M(t)|."""
    params = EchoParams(
        kernel=kernel, kernel_param=kernel_param, alpha_xy=alpha_xy, alpha_z=alpha_z, lattice=lattice,
        tau_us=tau_us, dt_us=dt_us, theta=theta, linewidth_khz=linewidth_khz, t2_us=t2_us,
        gamma1_per_us=gamma1_per_us, gamma2_per_us=gamma2_per_us, gamma3_per_us=gamma3_per_us,
        sequence=sequence_option(sequence), scheme=scheme, field_every=field_every, geometry=geometry,
        center_khz=center_khz,
    )
    if out.suffix.lower() != ".csv":
        raise ValueError(f"--out: got {str(out)!r}; must end in .csv")
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
