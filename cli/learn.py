"""`pyecho learn` (train and report) and `pyecho predict` (apply the saved models to echoes)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from pyecho.errors import ParameterError
from pyecho.physics.protocol import DEFAULT_DEAD_TIME_US
from pyecho_cli.app import app
from pyecho_cli.console import table_console
from pyecho_cli.errors import fail, user_errors


@app.command()
@user_errors
def learn(
    data: Annotated[Path, typer.Argument(help="Parquet file or directory written by `pyecho sim`.")],
    out: Annotated[Path, typer.Option("--out", help="Report directory (report.md, metrics.json, figures/, models/).")],
    quick: Annotated[bool, typer.Option("--quick", help="Small models for tiny datasets and tests.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split, SMOTE, every model and the VAE.")] = 0,
    n_jobs: Annotated[int, typer.Option("--n-jobs", min=1, help="Parallel workers (forests, kNN, torch threads).")] = 1,
    window: Annotated[Optional[int], typer.Option("--window", min=8,
                                                  help="Area-of-interest width in samples (default 400).")] = None,
    seeds: Annotated[Optional[str], typer.Option(
        "--seeds", help="Comma-separated seeds, e.g. 0,1,2: the paper's headline forests and every model beyond the "
        "paper are refitted on each seed's own split and reported as mean ± std (default: --seed only).")] = None,
    level: Annotated[float, typer.Option("--level", help="Level of the calibrated prediction intervals and sets.")] = 0.9,
    learning_curve: Annotated[bool, typer.Option(
        "--learning-curve", help="Also refit every model on 1k, 2k, 4k, 8k and 12k fit rows, those the dataset has "
        "(F1 and R² L against data size; adds about a run's time).")] = False,
    dead_time_us: Annotated[float, typer.Option(
        "--dead-time-us", help="The models beyond the paper never read the samples within this time after a pulse "
        "(a receiver's dead time): they then take records that start up to this late (pyecho predict --start-us).")
    ] = DEFAULT_DEAD_TIME_US,
    stream: Annotated[bool, typer.Option(
        "--stream", help="For datasets larger than memory: read the records part by part into memory-mapped files "
        "under OUT/cache/records (a rerun on the same dataset reuses them) instead of memory, and keep the linear "
        "and MiniRocket models' and the domain guard's training features in scratch files under OUT/cache.")] = False,
) -> None:
    """Learn kernel family, W, L, the alphas (and T2) from a simulated dataset; write a report."""
    from dataclasses import replace

    from pyecho.learn.base import COUPLING_TARGETS, FULL, QUICK, Task
    from pyecho.learn.pipeline import run_learn

    seed_list = None if seeds is None else parse_seeds(seeds)
    if not 0.5 <= level < 1:
        raise ParameterError(f"--level: got {level}; must be at least 0.5 and below 1 (e.g. 0.9)")
    if not 0 <= dead_time_us <= MAX_DEAD_TIME_US:
        raise ParameterError(f"--dead-time-us: got {dead_time_us}; must be from 0 to {MAX_DEAD_TIME_US:g} µs")
    console = Console(stderr=True)
    t0 = time.perf_counter()
    budget = replace(QUICK if quick else FULL, dead_time_us=float(dead_time_us))
    run = run_learn(data, out, quick=quick, seed=seed, n_jobs=n_jobs, window=window, console=console, seeds=seed_list,
                    level=level, learning_curve=learning_curve, budget=budget, stream=stream)
    rf = {s.task: s.scores for s in run.results.seeds.model_scores()}  # the paper's forests, mean over seeds
    rf_r2 = ", ".join(f"{t.value} {rf[t].r2:.3f}" for t in COUPLING_TARGETS)
    console.print(f"paper's RF: P vs NP F1 of the power-law class {rf[Task.PVNP].f1_power:.3f}, weighted F1 "
                  f"{rf[Task.PVNP].f1_weighted:.3f}; 3-class macro F1 {rf[Task.KERNEL3].f1_macro:.3f}; R² {rf_r2}")
    studies = [run.results.candidate_seeds] + ([run.results.hahn_seeds] if run.results.hahn_seeds else [])
    for study in studies:
        get = lambda t: study.headline(t).scores  # noqa: E731
        r2 = ", ".join(f"{t} {get(t).r2:.3f}" for t in study.tasks[2:])
        console.print(f"best, {study.label}: P vs NP F1 of the power-law class {get(Task.PVNP).f1_power:.3f}, weighted "
                      f"F1 {get(Task.PVNP).f1_weighted:.3f}; 3-class macro F1 {get(Task.KERNEL3).f1_macro:.3f}; R² {r2}")
    console.print(f"[green]done[/] in {time.perf_counter() - t0:.0f} s -> {out / 'report.md'}")


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> (0, 1, 2); ValueError naming --seeds otherwise."""
    from pyecho.learn.paper.seeds import check_seeds

    try:
        return check_seeds(int(s) for s in text.split(","))
    except ValueError:
        raise ParameterError(f"--seeds must be distinct non-negative integers separated by commas, such as 0,1,2, "
                         f"not {text!r}") from None


#: the longest dead time --dead-time-us accepts (µs): a receiver's dead time is a few µs, up to ~20
MAX_DEAD_TIME_US = 100.0
#: `pyecho predict --model`: the headline predictor, or the paper's |M| random forests
HEADLINE, PAPER = "headline", "paper"


@app.command()
@user_errors
def predict(
    model_dir: Annotated[Path, typer.Argument(help="Output directory of `pyecho learn` (or its models/ folder).")],
    inputs: Annotated[Optional[list[Path]], typer.Argument(
        help="The records, one file per measurement of the model's protocol, in its order (`pyecho predict MODEL_DIR` "
        "without inputs prints the measurements to make): each a CSV (t_us, re_M, im_M), an NPY of complex records "
        "(T,) or (B, T) on the model's grid (NaN: missing samples), or a Bruker or Varian experiment directory or "
        "an NMRPipe file; or one `pyecho sim` dataset (.parquet or directory) that holds the measurements.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Write the table (one row per echo) to this .csv or .parquet file.")] = None,
    tau_us: Annotated[Optional[float], typer.Option(
        "--tau-us", help="Pulse spacing tau (us) of a CSV or spectrometer file (default: the file's, else the "
        "model's).")] = None,
    start_us: Annotated[Optional[float], typer.Option(
        "--start-us", help="Time (us) of the records' first point after the excitation, after the receiver's dead "
        "time (default 0): earlier samples are missing (an NPY may hold the whole record or the shorter one that "
        "starts then); the model takes up to its own dead time (20 us by default).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    model: Annotated[str, typer.Option(
        "--model", help="headline (complex echoes, calibrated intervals, out-of-domain flags) or paper (the paper's "
        "|M| random forests: one echo, point values).")] = HEADLINE,
    row: Annotated[Optional[int], typer.Option(
        "--row", min=0, help="Predict only echo N of the input (a dataset row, an NPY's first index); --model paper: "
        "default 0.")] = None,
) -> None:
    """Predict the kernel class, P vs NP, W, L, the alphas (and T2) of samples, with intervals at their SNR."""
    if model not in (HEADLINE, PAPER):
        fail(f"--model must be {HEADLINE} or {PAPER}, not {model!r}")
    if not inputs:
        if model == PAPER:
            fail("--model paper reads one echo: give INPUT, a CSV, NPY or dataset")
        _print_needs(model_dir)
        return
    if model == PAPER:
        _predict_paper(model_dir, inputs, out, tau_us, start_us, as_json, row)
        return
    import polars as pl

    from pyecho.learn.predict import check_prediction_path, predict_echoes, write_predictions

    if out is not None:
        check_prediction_path(out)  # before any work: a bad suffix writes nothing
    t0 = time.perf_counter()
    res = predict_echoes(model_dir, inputs, tau_us=tau_us, start_us=start_us, row=row)
    seconds = time.perf_counter() - t0
    frame = res.frame
    err = Console(stderr=True)
    for path, how in zip(res.paths, res.read_as):
        err.print(f"read {path}: {how}", highlight=False)
    if out is not None:
        write_predictions(frame, out)
        n_out = frame.height - int(frame["in_domain"].sum())
        err.print(f"{frame.height} echo(es) in {seconds:.1f} s ({n_out} out of domain) -> {out}")
    if as_json:
        typer.echo(json.dumps(frame.to_dicts(), indent=1))
    elif out is None and frame.height == 1:
        _print_one(frame.row(0, named=True), res.level, ", ".join(map(str, res.paths)))
    elif out is None:
        with pl.Config(tbl_cols=-1, tbl_width_chars=1000, fmt_str_lengths=80):
            typer.echo(str(frame))
        err.print(f"{frame.height} echoes in {seconds:.1f} s; all rows: --out preds.csv or --json")


def _print_needs(model_dir: Path) -> None:
    """What the model's records must be: its protocol, one file per measurement, its dead time."""
    from pyecho.learn.predict import headline_dir
    from pyecho.learn.predictor import EchoPredictor
    from pyecho.physics.protocol import RecordGrid

    header = EchoPredictor.read_header(headline_dir(model_dir))
    grid = RecordGrid.from_dict(header["grid"])
    table = Table("#", "measurement", "sequence", "angle (deg)", "tau (us)", "samples", "duration (us)",
                  title=f"pyecho predict {model_dir}: the measurements to make, one file each, in this order")
    for k, m in enumerate(grid.protocol):
        table.add_row(str(k + 1), m.text, m.text.split("@")[0], f"{m.theta_deg:g}", f"{m.tau_us:g}",
                      str(grid.lengths[k]), f"{grid.lengths[k] * grid.dt_us:g}")
    table_console().print(table)
    Console().print(f"dt {grid.dt_us:g} us; records may start up to {header['dead_time_us']:g} us after each pulse "
                    f"(--start-us); targets: {', '.join(header['headline']['targets'])}")


def _range_rule(label: str, name: str, p: float, threshold: float) -> str:
    """The range decision and the rule it follows, e.g. "P (power law, long range): p_power_law
    0.42 ≥ threshold 0.34" (``name``: the probability's column)."""
    from pyecho.learn.base import RANGE_P

    if label == RANGE_P:
        return f"P (power law, long range): {name} {p:.2f} ≥ threshold {threshold:.2f}"
    return f"NP (short range): {name} {p:.2f} < threshold {threshold:.2f}"


def _print_one(res: dict, level: float, title: str) -> None:
    """The rich table of one echo's prediction (a row of the prediction frame)."""
    from pyecho.learn.base import TARGET_UNITS
    from pyecho.learn.models.targets import KERNEL_CLASSES

    table = Table("quantity", f"prediction [{level:.0%} interval]", title=f"pyecho predict: {title}")
    probs = ", ".join(f"p_{k} = {res[f'p_{k}']:.2f}" for k in KERNEL_CLASSES)
    table.add_row("kernel", f"{res['kernel']} ({probs})")
    table.add_row("range", _range_rule(res["range"], "p_power_law", res["p_power_law"], res["p_power_law_threshold"]))
    for target, unit in TARGET_UNITS.items():
        t = target.value
        if t in res:  # T2 only from a model that learned it
            table.add_row(t, f"{res[t]:.4g} [{res[f'{t}_lo']:.4g}, {res[f'{t}_hi']:.4g}] {unit}")
    table.add_row("SNR (estimated)", f"{res['snr']:.3g}")
    table.add_row("in domain", "yes" if res["in_domain"] else f"[bold red]no[/]: {res['ood_reasons']}")
    table_console().print(table)


def _predict_paper(model_dir: Path, inputs: list[Path], out, tau_us, start_us, as_json: bool, row) -> None:
    """--model paper: the paper's |M| random forests on one echo, point values."""
    from pyecho.learn.base import COUPLING_TARGETS, TARGET_UNITS
    from pyecho.learn.paper.models import predict_file

    for option, value in (("--out", out), ("--tau-us", tau_us), ("--start-us", start_us)):
        if value is not None:
            fail(f"{option} is for the headline model; --model paper predicts one echo from a CSV, NPY or dataset")
    if len(inputs) != 1:
        fail(f"--model paper reads one echo from one file; {len(inputs)} inputs given")
    res = predict_file(model_dir, inputs[0], row=row or 0)
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    table = Table("quantity", "prediction", title=f"pyecho predict --model paper: {inputs[0].name} "
                                                  f"({res['features']} features)")
    table.add_row("kernel", f"{res['kernel']} (p = {res['kernel_probability']:.2f})")
    table.add_row("range", _range_rule(res["range"], "p_power", res["p_power"], res["p_power_threshold"]))
    for target in COUPLING_TARGETS:
        table.add_row(target.value, f"{res[target.value]:.4g} {TARGET_UNITS[target]}")
    table_console().print(table)
