"""`pyecho fit`: the simulator fitted to measured samples, starting from a learned model's prediction."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pyecho.errors import ParameterError
from pyecho.fit.defaults import (DEFAULT_FAMILY_RULE, DEFAULT_MIN_PROBABILITY, FAMILY_RULES, FIT_CHECK_DRAWS,
                                 FIT_DRAWS, FIT_MEAN_DRAWS, FIT_MORE_DRAWS, FIT_STEERING_DRAWS, MIN_FIT_LATTICE)
from pyecho_cli.app import app
from pyecho_cli.console import table_console
from pyecho_cli.errors import user_errors
from pyecho_cli.options import SchedulerOpt
from pyecho_cli.sim import executor_option

#: the fit's simulations are hundreds of small batches on one lattice and time grid: compiling
#: them always pays (docs/fit.md); a value the user set wins
COMPILE_POLICY = "always"


@app.command()
@user_errors
def fit(
    model_dir: Annotated[Path, typer.Argument(help="Output directory of `pyecho learn` (its prediction starts each "
                                                   "fit; its dataset's prior bounds it).")],
    inputs: Annotated[list[Path], typer.Argument(
        help="The records, as `pyecho predict` reads them: one file per measurement of the model's protocol (CSV, NPY "
        "(T,) or (B, T), Bruker, Varian or NMRPipe), or one `pyecho sim` dataset.")],
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Run folder: fits.parquet and fits.csv (one row per record), records/ (one JSON per record: a "
        "rerun fits only the records not there), figures/ (measured vs fitted, each record).")] = None,
    tau_us: Annotated[Optional[float], typer.Option("--tau-us", help="Pulse spacing (us) of a CSV or spectrometer "
                                                                     "file that does not record it.")] = None,
    start_us: Annotated[Optional[float], typer.Option(
        "--start-us", help="Time (us) of the records' first point after the excitation (a dead time).")] = None,
    row: Annotated[Optional[int], typer.Option("--row", min=0, help="Fit only record N of the input.")] = None,
    families: Annotated[Optional[str], typer.Option(
        "--families", help="Kernel families to fit, e.g. gaussian,rkky (default: those the learned model gives at "
        "least --min-probability).")] = None,
    min_probability: Annotated[float, typer.Option(
        "--min-probability", help="A family the learned model gives less than this is not fitted.",
    )] = DEFAULT_MIN_PROBABILITY,
    lattice: Annotated[Optional[int], typer.Option(
        "--lattice", help="Lattice side of the fit's simulations (default: the model's dataset's; larger: less "
        "detuning-draw scatter, slower).")] = None,
    draws: Annotated[int, typer.Option("--draws", help="Detuning draws of the error model's scatter.")] = FIT_DRAWS,
    mean_draws: Annotated[int, typer.Option(
        "--mean-draws", help="The first of --draws that the model's mean averages (more: closer to the records' "
        "mean, slower; docs/fit.md).")] = FIT_MEAN_DRAWS,
    steering_draws: Annotated[int, typer.Option(
        "--steering-draws", help="The first of --mean-draws whose mean's Jacobian steers the minimiser (the "
        "residual and the intervals use them all; more: slower, docs/fit.md).")] = FIT_STEERING_DRAWS,
    more_draws: Annotated[int, typer.Option(
        "--more-draws", help="Plain detuning draws added to the error model's scatter (more: the record weighed "
        "better, slower; docs/fit.md).")] = FIT_MORE_DRAWS,
    check_draws: Annotated[int, typer.Option(
        "--check-draws", help="Independent draws the estimates' covariance is measured against.")] = FIT_CHECK_DRAWS,
    family_rule: Annotated[str, typer.Option(
        "--family-rule", help=f"How the families' fits become their probabilities: {', '.join(FAMILY_RULES)} "
                              "(docs/fit.md).")] = DEFAULT_FAMILY_RULE,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fit's detuning draws.")] = 0,
    level: Annotated[float, typer.Option("--level", help="Level of the intervals.")] = 0.9,
    device: Annotated[str, typer.Option("--device", help="Simulation device: auto, cpu or cuda.")] = "auto",
    executor: Annotated[str, typer.Option(
        "--executor", help="dask (one task per record and family on a Dask cluster: a local one with a single-threaded "
        "worker per core, or --scheduler's) or serial (one after another in this process).")] = "dask",
    scheduler: SchedulerOpt = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", help="Worker processes of the local Dask cluster, one thread each (default: one per core).")] = None,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="A figure per record (with --out).")] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start the --out run over.")] = False,
) -> None:
    """Fit the simulator to each record for every plausible kernel family: estimates with intervals, family
    probabilities from the fitted likelihoods, χ² per measurement and whether the model fits at all."""
    os.environ.setdefault("PYECHO_TORCH_COMPILE", COMPILE_POLICY)
    from pyecho.fit.batch import FitJob, RecordInput, prepare_run, results_frame, run_fits, write_table
    from pyecho.fit.space import FAMILIES, load_prior
    from pyecho.learn.base import TARGETS
    from pyecho.learn.predict import headline_dir, predict_echoes

    if executor == "dask" and scheduler is None and workers is None:
        from dask.system import CPU_COUNT  # the cores this process may use

        workers = CPU_COUNT
    where = executor_option(executor, scheduler, workers)
    if lattice is not None and lattice < MIN_FIT_LATTICE:
        raise ParameterError(f"--lattice: got {lattice}; must be at least {MIN_FIT_LATTICE}")
    family_list = None if families is None else tuple(f.strip() for f in families.split(",") if f.strip())
    settings = _settings(draws, mean_draws, steering_draws, more_draws, check_draws, family_rule, seed, level, device)
    prior = load_prior(headline_dir(model_dir))
    prediction = predict_echoes(model_dir, inputs, tau_us=tau_us, start_us=start_us, row=row)
    job = FitJob(prior, prediction.records.grid, settings, lattice, family_list, min_probability,
                 figures=figures and out is not None)
    if out is not None:  # a folder of another run is refused before any fitting
        prepare_run(job, out, overwrite=overwrite)
    err = Console(stderr=True)
    for line in prediction.read_as:
        err.print(f"read {line}")
    frame = prediction.frame
    targets = [str(t) for t in TARGETS if t in frame.columns]
    items = []
    for r in frame.iter_rows(named=True):
        i = r["index"]
        items.append(RecordInput(i, tuple(M[i] for M in prediction.records.M), {t: r[t] for t in targets},
                                 {k: r[f"p_{k}"] for k in FAMILIES}))
    n = lattice or prior.lattice
    err.print(f"fitting {len(items)} record(s) on {n}x{n} ({settings.engine.device})" + (f" -> {out}" if out else ""))
    t0 = time.perf_counter()
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err) as progress:
        task = progress.add_task("fitting", total=len(items))
        results = run_fits(job, items, out, executor=where,
                           on_record=lambda res: (progress.advance(task),
                                                  progress.console.print(f"record {res.index}: {res.kernel}, "
                                                                         f"{'fits' if res.fits else 'does not fit'}, "
                                                                         f"{res.seconds:.0f} core-s")))
    seconds = time.perf_counter() - t0
    per_record = f"{seconds / max(len(results), 1):.0f} s per record"
    if out is not None:
        paths = write_table(results, out)
        err.print(f"{len(results)} record(s) in {seconds:.0f} s ({per_record}) -> {paths[0]}, {paths[1]}")
    else:
        err.print(f"{len(results)} record(s) in {seconds:.0f} s ({per_record})")
    if len(results) == 1:
        _print_one(results[0])
    elif out is None:
        typer.echo(str(results_frame(results)))


def _settings(draws: int, mean_draws: int, steering_draws: int, more_draws: int, check_draws: int, family_rule: str,
              seed: int, level: float, device: str):
    from pyecho.fit.batch import engine_for
    from pyecho.fit.estimate import FitSettings

    try:
        return FitSettings(draws=draws, mean_draws=mean_draws, steering_draws=steering_draws, more_draws=more_draws,
                           check_draws=check_draws, family_rule=family_rule, seed=seed, level=level,
                           engine=engine_for(device))
    except ParameterError as exc:
        option, _, detail = str(exc).partition(": ")
        raise ParameterError(f"--{option.replace('_', '-')}: {detail}") from None


def _print_one(res) -> None:
    """The rich table of one record's fit."""
    from pyecho.fit.space import KERNEL_PARAM_SYMBOL
    from pyecho.learn.base import TARGET_UNITS

    table = Table("quantity", f"fit [{res.level:.0%} interval]", title=f"pyecho fit: record {res.index}")
    probs = ", ".join(f"p_{k} = {p:.2f}" for k, p in res.probability.items())
    table.add_row("kernel", f"{res.kernel} ({probs}; fitted: {', '.join(res.families)})")
    units = {str(t): unit for t, unit in TARGET_UNITS.items()}
    names = {**{k: k for k in units}, "kernel_param": KERNEL_PARAM_SYMBOL[res.kernel][0]}
    for name, label in names.items():
        if name in res.estimates:
            value, lo, hi = res.estimates[name]
            table.add_row(label, f"{value:.5g} [{lo:.5g}, {hi:.5g}] {units.get(name, '')}")
    chi2 = ", ".join(f"{c:.2f}" for c in res.chi2_by_measurement)
    table.add_row("χ²/dof (per measurement)", f"{res.chi2_per_dof:.3f} ({chi2})")
    verdict = "yes" if res.fits else "[bold red]no[/]: the mean-field model does not describe the record"
    table.add_row("fits", f"{verdict} (p = {res.gof_p_value:.2f}: the share of genuine records' χ² at least this one's)")
    table.add_row("time", f"{res.seconds:.0f} s of one core's fitting, {res.simulations} simulations")
    table_console().print(table)
