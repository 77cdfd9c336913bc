"""`pyecho sweep` (a grid over any EchoParams fields, as a dataset) and `pyecho sweep-plot`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from pyecho.data.factory import parse_shard, plan_run
from pyecho.data.store import load_dataset
from pyecho.data.figures import plot_sweep
from pyecho.data.sweep import SweepConfig
from pyecho.errors import ParameterError
from pyecho.physics.params import EchoParams
from pyecho_cli.app import app
from pyecho_cli.errors import user_errors
from pyecho_cli.options import Backend, Device, Dtype, ExecutorOpt, SchedulerOpt, WorkersOpt, with_echo_params


@app.command()
@user_errors
@with_echo_params(scheme="extrapolated")  # the base experiment's options kernel .. center_khz, as `params`
def sweep(
    out: Annotated[Path, typer.Option(help="Dataset directory (created; parts already there are resumed).")],
    axis: Annotated[list[str], typer.Option(help="A swept field: FIELD=v1,v2,... or FIELD=start:stop:count; repeat "
                                                 "for a grid (the last varies fastest).")],
    params: EchoParams,
    seed: Annotated[int, typer.Option(help="Seed of the detunings.")] = 0,
    own_detunings: Annotated[bool, typer.Option(help="A detuning field per grid point (default: one for all, so "
                                                     "only the swept values differ).")] = False,
    part_size: Annotated[int, typer.Option(help="Grid points per part file.")] = 64,
    backend: Backend = "torch",
    device: Device = "auto",
    dtype: Dtype = "float32",
    batch_size: Annotated[str, typer.Option(help="Simulations per engine call, N or auto.")] = "auto",
    shard: Annotated[str, typer.Option(help="Write only shard K of N.")] = "1/1",
    overwrite: Annotated[bool, typer.Option(help="Delete the directory's parts (this shard's) first.")] = False,
    executor: ExecutorOpt = "serial",
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Simulate a grid of experiments into OUT as Parquet parts (the `pyecho sim` schema; the swept
    fields are columns like every other parameter). Resumable, shardable and runs on Dask like `pyecho sim`."""
    from pyecho_cli.sim import describe_executor, executor_option, run_or_fail

    where = executor_option(executor, scheduler, workers)
    config = SweepConfig(params, tuple(axis), seed=seed, same_detunings=not own_detunings, part_size=part_size)
    plan = plan_run(config, out, backend=backend, device=device, dtype=dtype, batch_size=batch_size,
                    shard=parse_shard(shard), overwrite=overwrite)
    console = Console()
    grid = " x ".join(f"{name} ({len(values)})" for name, values in config.axes)
    console.print(f"sweep {grid} = {config.n_total} echoes; {plan.samples_todo} to simulate, "
                  f"{plan.samples_done} already done, {describe_executor(plan, where)} -> {plan.out}")
    with console.status("simulating"):
        result = run_or_fail(plan, where)
    console.print(f"wrote {result.samples_written} echoes in {result.wall_s:.1f} s "
                  f"({result.spin_steps_per_s:.3g} spin-steps/s) to [bold]{plan.out}[/]")


@app.command("sweep-plot")
@user_errors
def sweep_plot(
    data: Annotated[Path, typer.Argument(help="A dataset written by pyecho sweep.")],
    axis: Annotated[str, typer.Option(help="The swept field along which to plot.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("sweep.png"),
    tops: Annotated[bool, typer.Option(help="Plot the echo height against AXIS instead of |M(t)| curves.")] = False,
    hue: Annotated[Optional[str], typer.Option(help="With --tops: one line per value of this swept field.")] = None,
    at: Annotated[Optional[list[str]], typer.Option(help="Hold another swept field at a value: FIELD=VALUE.")] = None,
) -> None:
    """Plot a sweep: |M(t)| for every value of AXIS (the paper's Fig. 2 is a sweep over W), or the echo
    height against AXIS with --tops."""
    held = {}
    for item in at or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ParameterError(f"--at: got {item!r}; use FIELD=VALUE")
        held[name.strip()] = value
    n = plot_sweep(load_dataset(data), axis, out, hue=hue, at=held, tops=tops)
    Console().print(f"wrote [bold]{out}[/] ({n} echoes)")
