"""`pyecho demo`: the README's main job, end to end on the small built-in default."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pyecho import EchoParams, simulate
from pyecho.data.echo_file import write_echo_csv
from pyecho.data.sampling import PRESETS
from pyecho_cli.app import app
from pyecho_cli.errors import user_errors
from pyecho_cli.learn import learn, predict
from pyecho_cli.sim import sim


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Directory for data/, report/ and example_echo.csv.")] = Path(
        "runs/demo"),
    seed: Annotated[int, typer.Option(help="Dataset and learning seed.")] = 0,
    n_jobs: Annotated[int, typer.Option("--n-jobs", min=1, help="Parallel workers for learning.")] = 2,
) -> None:
    """Simulate the `quick` dataset, learn from it, write the report, and predict one fresh echo.

    Rerunning resumes: finished dataset parts are kept.
    """
    console = Console()
    quick = PRESETS["quick"]
    console.rule("[bold]1/3 simulate[/] the quick dataset (pyecho sim --preset quick)")
    sim(out=out / "data", preset="quick", seed=seed)
    console.rule("[bold]2/3 learn[/] (pyecho learn)")
    learn(data=out / "data", out=out / "report", seed=seed, n_jobs=n_jobs)
    console.rule("[bold]3/3 predict[/] a fresh echo the models have not seen (pyecho predict)")
    truth = EchoParams(kernel="power", kernel_param=1.6, alpha_xy=0.06, alpha_z=0.05, lattice=quick.lattice,
                       tau_us=quick.tau_us, dt_us=quick.dt_us, theta=math.pi / 2)
    m = simulate(truth, seed=10**9 + seed)
    echo_csv = out / "example_echo.csv"
    write_echo_csv(echo_csv, truth.time_grid_us(), m)
    console.print(f"true values: kernel power (P), W = {truth.W:.3g} rad/us, L = {truth.L:.3g}, "
                  f"alpha_xy = {truth.alpha_xy:g}, alpha_z = {truth.alpha_z:g}")
    predict(model_dir=out / "report", inputs=[echo_csv])
    console.print(f"\n[green]done[/]: open [bold]{out / 'report' / 'report.md'}[/]")
