"""`pyecho learn` (train and report) and `pyecho predict` (apply the saved models to one echo)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pyecho.errors import ParameterError
from pyecho_cli.app import app
from pyecho_cli.errors import fail, user_errors


@app.command()
@user_errors
def learn(
    data: Path = typer.Argument(..., help="Parquet file or directory written by `pyecho sim`."),
    out: Path = typer.Option(..., "--out", help="Report directory (report.md, metrics.json, figures/, models/)."),
    quick: bool = typer.Option(False, "--quick", help="Small models for tiny datasets and tests."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, SMOTE, every model and the VAE."),
    n_jobs: int = typer.Option(1, "--n-jobs", min=1, help="Parallel workers (forests, kNN, torch threads)."),
    window: int = typer.Option(None, "--window", min=8, help="Area-of-interest width in samples (default 400)."),
    seeds: str = typer.Option(None, "--seeds", help="Comma-separated seeds, e.g. 0,1,2: the headline random "
                              "forests are refitted on each seed's own split and reported as mean ± std "
                              "(default: --seed only)."),
) -> None:
    """Learn kernel family, W, L and the alphas from a simulated dataset; write a report."""
    from pyecho.learn.base import TARGETS, Task
    from pyecho.learn.pipeline import run_learn

    seed_list = None if seeds is None else parse_seeds(seeds)
    console = Console(stderr=True)
    t0 = time.perf_counter()
    run = run_learn(data, out, quick=quick, seed=seed, n_jobs=n_jobs, window=window, console=console, seeds=seed_list)
    rf = {s.task: s.scores for s in run.results.seeds.model_scores()}  # the paper's forests, mean over seeds
    r2 = ", ".join(f"{t.value} {rf[t].r2:.3f}" for t in TARGETS)
    console.print(
        f"[green]done[/] in {time.perf_counter() - t0:.0f} s: P vs NP F1 of the power-law class "
        f"{rf[Task.PVNP].f1_power:.3f}, weighted F1 {rf[Task.PVNP].f1_weighted:.3f}; R² {r2} -> {out / 'report.md'}"
    )


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> (0, 1, 2); ValueError naming --seeds otherwise."""
    from pyecho.learn.seeds import check_seeds

    try:
        return check_seeds(int(s) for s in text.split(","))
    except ValueError:
        raise ParameterError(f"--seeds must be distinct non-negative integers separated by commas, such as 0,1,2, "
                         f"not {text!r}") from None


@app.command()
@user_errors
def predict(
    model_dir: Path = typer.Argument(..., help="Output directory of `pyecho learn` (or its models/ folder)."),
    echo_file: Path = typer.Argument(..., help="CSV (t_us + abs_M or re_M/im_M), NPY, or pyecho Parquet."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    row: int = typer.Option(0, "--row", min=0, help="Row of a Parquet dataset."),
    features: str = typer.Option("pointwise", "--features", help="pointwise or polynomial models."),
) -> None:
    """Predict the kernel class, P vs NP, W, L, alpha_xy and alpha_z of one echo."""
    from pyecho.learn.base import FEATURE_SETS, RANGE_P, TARGET_UNITS
    from pyecho.learn.predict import predict_file

    if features not in FEATURE_SETS:
        fail(f"--features must be one of {', '.join(FEATURE_SETS)}, not {features!r}")
    res = predict_file(model_dir, echo_file, row=row, features=features)
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    table = Table("quantity", "prediction", title=f"pyecho predict: {echo_file.name} ({features} features)")
    table.add_row("kernel", f"{res['kernel']} (p = {res['kernel_probability']:.2f})")
    table.add_row("range", f"{'P (power law, long range)' if res['range'] == RANGE_P else 'NP (short range)'} "
                           f"(p_power = {res['p_power']:.2f})")
    for target, unit in TARGET_UNITS.items():
        table.add_row(target.value, f"{res[target.value]:.4g} {unit}")
    Console().print(table)
