"""`pyecho converge`: accuracy of the integration schemes against a fine-step reference."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from pyecho import EchoParams
from pyecho.atomic import atomic_path
from pyecho.bench import Scheme
from pyecho.convergence import ConvergencePoint, convergence_study, plot_convergence
from pyecho.errors import ParameterError
from pyecho_cli.app import app
from pyecho_cli.errors import user_errors


def _floats(option: str, text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"{option}: got {text!r}; must be comma-separated numbers") from None
    if not values or any(not v > 0 for v in values):
        raise ParameterError(f"{option}: got {text!r}; give positive numbers")
    return values


def _kernels(text: str) -> list[tuple[str, float]]:
    pairs = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        name, _, value = item.partition(":")
        try:
            pairs.append((name, float(value) if value else 0.0))
        except ValueError:
            raise ParameterError(f"--kernels: got {item!r}; use NAME:PARAM, e.g. gaussian:8,power:2") from None
    if not pairs:
        raise ParameterError(f"--kernels: got {text!r}; give at least one NAME:PARAM")
    return pairs


@app.command()
@user_errors
def converge(
    kernels: Annotated[str, typer.Option(help="Kernels as NAME:PARAM.")] = "gaussian:8,power:2,rkky:13",
    schemes: Annotated[str, typer.Option(help="Schemes: explicit and/or extrapolated:K.")] =
        "explicit,extrapolated:1,extrapolated:2,extrapolated:4,extrapolated:8",
    dts_us: Annotated[str, typer.Option(help="Time steps (us); each must divide tau.")] = "0.4,0.2,0.16,0.08",
    refine: Annotated[int, typer.Option(help="The reference runs at min(dt) / REFINE.")] = 8,
    lattice: Annotated[int, typer.Option(help="Lattice side n.")] = 48,
    alpha_xy: Annotated[float, typer.Option(help="alpha_x = alpha_y (rad/us).")] = 0.1,
    alpha_z: Annotated[float, typer.Option(help="alpha_z (rad/us).")] = 0.1,
    tau_us: Annotated[float, typer.Option(help="Pulse spacing tau (us).")] = 100.0,
    linewidth_khz: Annotated[float, typer.Option(help="Detuning FWHM (kHz).")] = 8.0,
    seed: Annotated[int, typer.Option(help="Seed of the detunings.")] = 0,
    png: Annotated[Path, typer.Option(help="Figure: error vs dt per kernel and scheme.")] = Path("convergence.png"),
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write every point as JSON here.")] = None,
) -> None:
    """Measure each scheme's error against a fine-step reference (float64, torch) and its
    observed order of convergence; print a table, draw the figure."""
    base = EchoParams(lattice=lattice, alpha_xy=alpha_xy, alpha_z=alpha_z, tau_us=tau_us, linewidth_khz=linewidth_khz)
    try:
        scheme_list = [Scheme.parse(s) for s in schemes.split(",") if s.strip()]
    except ValueError as exc:
        raise ParameterError(f"--{exc}") from None
    kernel_list = _kernels(kernels)
    for name, value in kernel_list:  # validate before the long run
        base.replace(kernel=name, kernel_param=value)
    console = Console()
    start = time.perf_counter()

    def show(p: ConvergencePoint) -> None:
        console.print(f"  {p.kernel} {p.label} dt={p.dt_us:g}: max|dM| = {p.max_abs_error:.3e}", highlight=False)

    study = convergence_study(base, kernel_list, [(s.name, s.field_every) for s in scheme_list],
                              _floats("--dts-us", dts_us), refine=refine, seed=seed, on_point=show)
    table = Table("kernel", "scheme", "FFTs/step", *(f"dt={dt:g}" for dt in study.dts), "order",
                  title=f"max |M - M_ref|, reference extrapolated:1 at dt = {study.reference_dt_us:g} us")
    for kernel in study.kernels:
        for label in study.labels:
            k = next(p.field_every for p in study.points if p.label == label)
            table.add_row(kernel, label, f"1/{k}" if k > 1 else "1",
                          *(f"{study.error(kernel, label, dt):.2e}" for dt in study.dts), f"{study.order(kernel, label):.2f}")
    console.print(table)
    plot_convergence(study, png)
    console.print(f"wrote [bold]{png}[/] ({time.perf_counter() - start:.0f} s)")
    if json_out is not None:
        payload = {"base": base.to_dict(), "reference_dt_us": study.reference_dt_us,
                   "points": [{**vars(p), "label": p.label} for p in study.points],
                   "orders": {k: {lab: study.order(k, lab) for lab in study.labels} for k in study.kernels}}
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(payload, indent=2))
