"""`pyecho limits`: what a protocol's records can tell at best -- Cramér-Rao bounds and maps."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pyecho.errors import ParameterError
from pyecho.fit.defaults import BOUND_MORE_DRAWS
from pyecho_cli.app import app
from pyecho_cli.console import table_console
from pyecho_cli.errors import user_errors
from pyecho_cli.fit import COMPILE_POLICY

#: the quantities the printed table shows, with their labels
SHOWN = (("kernel_param", "kernel param"), ("L", "L"), ("W", "W (rad/us)"), ("alpha_xy", "alpha_xy"),
         ("alpha_z", "alpha_z"), ("t2_us", "T2 (us)"))


def parse_point(text: str):
    """``KERNEL:NAME=VALUE,...`` -> (kernel, {name: value})."""
    kernel, _, rest = text.partition(":")
    values = {}
    for item in (i for i in rest.split(",") if i.strip()):
        name, eq, value = item.partition("=")
        try:
            values[name.strip()] = float(value)
        except ValueError:
            raise ParameterError(f"--at: {item!r} must be NAME=NUMBER, e.g. power:kernel_param=2,t2_us=1000") from None
        if not eq or not math.isfinite(values[name.strip()]):
            raise ParameterError(f"--at: {item!r} must be NAME=NUMBER (a finite number), e.g. "
                                 "power:kernel_param=2,t2_us=1000")
    return kernel.strip(), values


@app.command()
@user_errors
def limits(
    out: Annotated[Path, typer.Option("--out", help="Folder for limits.csv, limits.parquet and limits.png.")],
    model: Annotated[Optional[Path], typer.Option(
        "--model", help="A `pyecho learn` output: its dataset's prior, protocol and lattice (default: --preset).")] = None,
    preset: Annotated[str, typer.Option("--preset", help="The prior and protocol when no --model is given.")] = "range",
    protocol: Annotated[Optional[str], typer.Option(
        "--protocol", help="Measurements SEQUENCE@ANGLE_DEG\\[/TAU_US],... instead of the prior's.")] = None,
    lattice: Annotated[Optional[int], typer.Option("--lattice", help="Lattice side (default: the prior's).")] = None,
    snr: Annotated[float, typer.Option("--snr", help="SNR of the records (inf: the draw scatter alone).")] = 200.0,
    points: Annotated[int, typer.Option("--points", min=1, help="Points along each family's kernel parameter.")] = 5,
    kernels: Annotated[Optional[str], typer.Option("--kernels", help="Families, e.g. gaussian,power.")] = None,
    at: Annotated[Optional[str], typer.Option(
        "--at", help="One point instead of a map: KERNEL:NAME=VALUE,..., e.g. power:kernel_param=2,t2_us=1000 "
        "(coordinates left out: the prior's middle).")] = None,
    more_draws: Annotated[int, typer.Option(
        "--more-draws", min=0, help="Plain detuning draws added to the scatter's collective part (fewer: faster and "
        "more optimistic; docs/fit.md).")] = BOUND_MORE_DRAWS,
    separation: Annotated[bool, typer.Option(
        "--separation", help="Also how near each other family's records come to each point's (D², and the measured "
        "error of the likelihood-ratio test between the two points); about a fit's time per pair.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the detuning draws.")] = 0,
    device: Annotated[str, typer.Option("--device", help="Simulation device: auto, cpu or cuda.")] = "auto",
) -> None:
    """Cramér-Rao bounds of every parameter (kernel parameter, L, W, the alphas, T2 and the nuisances) for a
    protocol, lattice and SNR: with free receiver gains, the dead time and the detuning draw's scatter."""
    os.environ.setdefault("PYECHO_TORCH_COMPILE", COMPILE_POLICY)
    from pyecho.data.sampling import PRESETS, ConfigError
    from pyecho.fit.batch import engine_for
    from pyecho.fit.figures import plot_bound_map
    from pyecho.fit.limits import (BoundMap, BoundSettings, bound_map, cramer_rao, map_points, prior_sd,
                                   separation_map, separations_at, write_bound_map, write_separations)
    from pyecho.fit.space import FAMILIES, FamilySpace, load_prior
    from pyecho.learn.predict import headline_dir
    from pyecho.physics.protocol import RecordGrid

    if not snr > 0:
        raise ParameterError(f"--snr: got {snr}; must be > 0 (inf: no noise)")
    if preset not in PRESETS:
        raise ParameterError(f"--preset: got {preset!r}; allowed: {', '.join(PRESETS)}")
    config = load_prior(headline_dir(model)) if model is not None else PRESETS[preset]
    try:
        config = config.replace(**{k: v for k, v in (("protocol", protocol), ("lattice", lattice)) if v is not None})
    except ConfigError as exc:
        raise ParameterError(f"--{exc.option.replace('_', '-')}: {exc.detail}") from None
    families = [k for k in config.kernels if k in FAMILIES]
    if kernels is not None:
        wanted = [k.strip() for k in kernels.split(",") if k.strip()]
        unknown = [k for k in wanted if k not in families]
        if unknown or not wanted:
            raise ParameterError(f"--kernels: got {kernels!r}; the prior's families are {', '.join(families)}")
        families = wanted
    grid = RecordGrid(config.protocol, config.dt_us)
    settings = BoundSettings(more_draws=more_draws, seed=seed, engine=engine_for(device))
    spaces = {k: FamilySpace(k, config) for k in families}
    point = None
    if at is not None:  # checked before any work
        kernel, values = parse_point(at)
        if kernel not in spaces:
            raise ParameterError(f"--at: family {kernel!r} is not one of {', '.join(spaces)}")
        try:
            point = kernel, spaces[kernel].require_inside(spaces[kernel].point(**values))
        except ParameterError as exc:
            raise ParameterError(f"--at: {exc}") from None
    console = Console(stderr=True)
    console.print(f"bounds of {config.protocol.text} on {config.lattice}x{config.lattice} at SNR {snr:g}, "
                  f"{settings.draws} + {settings.more_draws} detuning draws -> {out}")
    others = len(spaces) - 1 if separation else 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        step = lambda: progress.advance(task)  # noqa: E731
        if point is not None:
            kernel, x = point
            task = progress.add_task("bound", total=1 + others)
            result = BoundMap((cramer_rao(spaces[kernel], grid, x, snr, settings),), float(snr),
                              config.protocol.text, config.lattice)
            step()
        else:
            n_points = sum(len(map_points(s, points)) for s in spaces.values())
            task = progress.add_task("bounds", total=n_points * (1 + others))
            result = bound_map(spaces, grid, snr, points, settings, on_point=step)
        paths = write_bound_map(result, out)  # kept should the slower separations be stopped
        plot_bound_map(result, {k: prior_sd(s) for k, s in spaces.items()}, out / "limits.png")
        separations = ()
        if separation and point is not None:
            separations = separations_at(spaces[kernel], [s for k, s in spaces.items() if k != kernel], grid, x, snr,
                                         settings, on_pair=step)
        elif separation:
            separations = separation_map(spaces, grid, snr, points, settings, on_point=step)
    table = Table("family", "point", *(label for _, label in SHOWN), "scatter share",
                  title=f"Cramér-Rao sd: {config.protocol.text}, {config.lattice}x{config.lattice}, SNR {snr:g}")
    for b in result.bounds:
        table.add_row(b.kernel, _point_text(spaces[b.kernel], b.value),
                      *(f"{b.sd[name]:.3g}" if name in b.sd else "" for name, _ in SHOWN), f"{b.scatter_share:.2f}")
    table_console().print(table)
    if separations:
        paths += write_separations(separations, out)
        table = Table("family", "point", "L", "nearest other", "its point", "its L", "D²", "D⁴/V", "test error",
                      title=f"Family separation: {config.protocol.text}, {config.lattice}x{config.lattice}, SNR {snr:g}")
        for sep in separations:
            table.add_row(sep.kernel, _point_text(spaces[sep.kernel], sep.value), f"{sep.value['L']:.3g}", sep.other,
                          _point_text(spaces[sep.other], sep.other_value), f"{sep.other_value['L']:.3g}",
                          f"{sep.distance2:.3g}", f"{sep.calibrated_distance2:.3g}", f"{sep.error_rate:.3f}")
        table_console().print(table)
    console.print(f"[green]wrote[/] {', '.join(map(str, paths))}, {out / 'limits.png'}")


def _point_text(space, value: dict) -> str:
    return f"{space.symbol} = {value.get('kernel_param', math.nan):.4g}"
