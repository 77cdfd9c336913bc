"""`pyecho learn` (train and report) and `pyecho predict` (apply the saved models to one echo)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

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
) -> None:
    """Learn kernel family, W, L and the alphas from a simulated dataset; write a report."""
    from pyecho.learn.pipeline import run_learn

    console = Console(stderr=True)
    t0 = time.perf_counter()
    m = run_learn(data, out, quick=quick, seed=seed, n_jobs=n_jobs, window=window, console=console)
    console.print(
        f"[green]done[/] in {time.perf_counter() - t0:.0f} s: F1 P vs NP {m['f1_power_vs_nonpower']:.3f}, "
        f"R² W {m['r2_W']:.3f}, L {m['r2_L']:.3f}, alpha_xy {m['r2_alpha_xy']:.3f}, alpha_z {m['r2_alpha_z']:.3f} "
        f"-> {out / 'report.md'}"
    )


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
    from pyecho.learn.predict import predict_file

    if features not in ("pointwise", "polynomial"):
        fail(f"--features must be pointwise or polynomial, not {features!r}")
    res = predict_file(model_dir, echo_file, row=row, features=features)
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    table = Table("quantity", "prediction", title=f"pyecho predict: {echo_file.name} ({features} features)")
    table.add_row("kernel", f"{res['kernel']} (p = {res['kernel_probability']:.2f})")
    table.add_row("range", f"{'P (power law, long range)' if res['range'] == 'P' else 'NP (short range)'} "
                           f"(p_power = {res['p_power']:.2f})")
    for k, unit in (("W", "rad/µs"), ("L", "lattice spacings"), ("alpha_xy", "rad/µs"), ("alpha_z", "rad/µs")):
        table.add_row(k, f"{res[k]:.4g} {unit}")
    Console().print(table)
