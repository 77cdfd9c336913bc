"""`pyecho demo`: the README's main job, end to end on the small built-in default."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pyecho import simulate
from pyecho.data.echo_file import write_echo_csv
from pyecho.data.sampling import PRESETS
from pyecho_cli.app import app
from pyecho_cli.errors import user_errors
from pyecho_cli.fit import fit
from pyecho_cli.learn import learn, predict
from pyecho_cli.sim import sim


#: the demo's dataset: the recommended protocol, sized for a laptop
DEMO_PRESET = "quick-range"
#: the fresh sample's records start this late after each excitation (a receiver's dead time, µs)
DEMO_DEAD_TIME_US = 12.0


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Directory for data/, report/ and the example measurement CSVs.")] = Path(
        "runs/demo"),
    seed: Annotated[int, typer.Option(help="Dataset and learning seed.")] = 0,
    n_jobs: Annotated[int, typer.Option("--n-jobs", min=1, help="Parallel workers for learning.")] = 2,
) -> None:
    """Simulate the `quick-range` dataset, learn from it, write the report, predict one fresh
    sample from its measurement files (one CSV per measurement, the first 12 us missing), and
    fit the simulator to the same files (pyecho fit).

    Rerunning resumes: finished dataset parts are kept.
    """
    console = Console()
    config = PRESETS[DEMO_PRESET]
    console.rule(f"[bold]1/4 simulate[/] the {DEMO_PRESET} dataset (pyecho sim --preset {DEMO_PRESET}): "
                 f"{config.protocol.text}")
    sim(out=out / "data", preset=DEMO_PRESET, seed=seed)
    console.rule("[bold]2/4 learn[/] (pyecho learn)")
    learn(data=out / "data", out=out / "report", seed=seed, n_jobs=n_jobs)
    console.rule("[bold]3/4 predict[/] a fresh sample the models have not seen (pyecho predict, one CSV per measurement)")
    truth = config.echo_params(kernel="power", kernel_param=1.6, alpha_xy=0.06, alpha_z=0.05, t2_us=900.0)
    files = []
    for k, measurement in enumerate(config.protocol):
        params = measurement.apply(truth)
        m = simulate(params, seed=10**9 + seed)
        t_us = params.time_grid_us()
        late = t_us > DEMO_DEAD_TIME_US  # the receiver opens 12 us after the excitation
        name = measurement.text.replace(":", "").replace("@", "_").replace("/", "_")  # cpmg3_90_100: a plain file name
        files.append(out / f"measurement{k + 1}_{name}.csv")
        write_echo_csv(files[-1], t_us[late], m[late])
    console.print(f"true values: kernel power (P), W = {truth.W:.3g} rad/us, L = {truth.L:.3g}, "
                  f"alpha_xy = {truth.alpha_xy:g}, alpha_z = {truth.alpha_z:g}, T2 = {truth.t2_us:g} us")
    predict(model_dir=out / "report", inputs=files)
    console.rule("[bold]4/4 fit[/] the simulator to the same files, from that prediction (pyecho fit: minutes, at the "
                 "limit of what the records tell)")
    fit(model_dir=out / "report", inputs=files, out=out / "fit")
    console.print(f"\n[green]done[/]: open [bold]{out / 'report' / 'report.md'}[/] and "
                  f"[bold]{out / 'fit' / 'figures'}[/]")
