"""`pyecho sim`: simulate a dataset (the paper's protocol, docs/model.md) into a directory of Parquet parts.

Settings come, lowest precedence first, from the preset, the --config TOML file (keys are the
option names with underscores, ranges as [lo, hi], ``protocol`` as text or a list of
measurement texts) and the command-line options. The measurements are ``--protocol``, or, as
its special cases, ``--thetas`` (one measurement per angle) with ``--sequence`` and ``--tau-us``.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from pyecho.data.factory import SERIAL, Executor, RunPlan, RunResult, parse_shard, plan_run, run_plan
from pyecho.data.sampling import PRESET_NOTES, PRESETS, ConfigError, DatasetConfig
from pyecho.errors import InputFileError, ParameterError
from pyecho.physics.protocol import DEFAULT_TAU_US, Measurement, Protocol, ProtocolError
from pyecho_cli.app import app
from pyecho_cli.errors import fail, user_errors
from pyecho_cli.options import ExecutorOpt, SchedulerOpt, WorkersOpt, sequence_option

#: run options a config file may set besides the DatasetConfig fields, with their defaults
RUN_DEFAULTS = {"backend": "torch", "device": "auto", "dtype": "float32", "batch_size": "auto"}
RANGE_FIELDS = ("alpha_xy_range", "alpha_z_range", "w_range", "xi_range", "p_range", "gamma_range", "center_khz_range",
                "t2_us_range", "gamma1_per_us_range")
#: options that describe the measurements in the old way: special cases of --protocol
MEASUREMENT_OPTIONS = ("thetas", "sequence", "tau_us")
PRESET_HELP = "; ".join(f"{name} ({note})" for name, note in PRESET_NOTES.items())



def RangeOpt(help_: str):  # noqa: N802 (used like a type annotation)
    """A typer option that takes a range as "LO,HI"."""
    return typer.Option(help=f"{help_}, as LO,HI", metavar="LO,HI")


class EchoRateColumn(ProgressColumn):
    """Simulated echoes per second."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:.2f} echoes/s" if task.speed else "-- echoes/s", style="progress.data.speed")


def _as_range(option: str, value) -> tuple[float, float]:
    """A range from "LO,HI" (command line) or [LO, HI] (TOML); DatasetConfig checks the numbers."""
    parts = value.split(",") if isinstance(value, str) else value
    try:
        lo, hi = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise ConfigError(option, f"got {value!r}; must be two numbers LO,HI") from None
    return lo, hi


def _read_config_file(path: Path) -> dict:
    """The TOML file's settings; unknown keys and syntax errors name the file."""
    try:
        with path.open("rb") as fh:
            values = tomllib.load(fh)
    except FileNotFoundError:
        raise InputFileError(f"--config: {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("config", f"{path} is not valid TOML ({exc})") from None
    known = {"preset", *RUN_DEFAULTS, *MEASUREMENT_OPTIONS, *DatasetConfig.__dataclass_fields__}
    for key in values:
        if key not in known:
            raise ConfigError("config", f"{path}: unknown key {key!r}; known: {', '.join(sorted(known))}")
    return values


def _settings(preset: str | None, config_file: Path | None, cli: dict) -> tuple[DatasetConfig, dict]:
    """Merge preset < config file < command line into (DatasetConfig, run options)."""
    from_file = _read_config_file(config_file) if config_file is not None else {}
    preset = preset or from_file.pop("preset", None) or "paper"
    from_file.pop("preset", None)
    if preset not in PRESETS:
        raise ConfigError("preset", f"got {preset!r}; allowed: {', '.join(PRESETS)}")
    merged = {**from_file, **{k: v for k, v in cli.items() if v is not None}}
    run = {k: merged.pop(k, default) for k, default in RUN_DEFAULTS.items()}
    for key in RANGE_FIELDS:
        if key in merged:
            merged[key] = _as_range(key, merged[key])
    base = PRESETS[preset]
    measurement = {k: merged.pop(k) for k in MEASUREMENT_OPTIONS if k in merged}
    if "protocol" in merged or measurement:
        merged["protocol"] = _protocol(merged.get("protocol"), measurement, base.protocol)
    return base.replace(**merged), run


def _protocol(text, given: dict, preset: Protocol) -> Protocol:
    """--protocol, or the protocol --thetas / --sequence / --tau-us describe (their special case:
    one measurement per angle); --tau-us is also the default tau of --protocol's measurements."""
    tau_us = float(given.get("tau_us", DEFAULT_TAU_US))
    if text is not None:
        extra = [f"--{k.replace('_', '-')}" for k in ("thetas", "sequence") if k in given]
        if extra:
            raise ConfigError("protocol", f"{' and '.join(extra)} also set the measurements; give them "
                                          "once, in --protocol (e.g. hahn@90,cpmg:8@90)")
        try:
            return Protocol.of(text, tau_us)
        except ProtocolError as exc:
            raise ConfigError("protocol", str(exc).removeprefix("protocol: ")) from None
    thetas = given.get("thetas", preset.thetas)
    if isinstance(thetas, str):
        thetas = thetas.split(",")
    try:
        thetas = [float(t) for t in (thetas if isinstance(thetas, (list, tuple)) else [thetas])]
    except (TypeError, ValueError):
        raise ConfigError("thetas", f"got {given['thetas']!r}; must be angles in rad, e.g. 1.5708,0.7854") from None
    try:
        sequence = sequence_option(given["sequence"]) if "sequence" in given else preset[0].sequence
    except ParameterError as exc:
        raise ConfigError("sequence", str(exc).removeprefix("sequence: ")) from None
    tau_us = tau_us if "tau_us" in given else preset[0].tau_us
    try:
        return Protocol(tuple(Measurement(sequence, theta, tau_us) for theta in thetas))
    except ProtocolError as exc:
        option = "thetas" if "given twice" in str(exc) else "sequence" if "sequence" in str(exc) else "tau_us"
        raise ConfigError(option, str(exc).split(": ", 1)[-1]) from None


@app.command()
@user_errors
def sim(
    out: Annotated[Path, typer.Option(help="Dataset directory (created; parts already there are resumed)")],
    preset: Annotated[Optional[str], typer.Option(help=f"Starting settings: {PRESET_HELP} (default: paper)")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML file with option names (underscored) as keys")] = None,
    n_per_kernel: Annotated[Optional[int], typer.Option(help="Samples per kernel")] = None,
    kernels: Annotated[Optional[str], typer.Option(help="Comma-separated kernel blocks, e.g. gaussian,power,rkky")] = None,
    lattice: Annotated[Optional[int], typer.Option(help="Lattice side n (n x n sites)")] = None,
    protocol: Annotated[Optional[str], typer.Option(
        help="The measurements made on every sample, SEQUENCE@ANGLE_DEG\\[/TAU_US],... e.g. hahn@90,cpmg:8@90/50 "
             "(SEQUENCE: hahn, cpmg:N, cp:N; tau default 100 us or --tau-us)")] = None,
    tau_us: Annotated[Optional[float], typer.Option(help="Pulse spacing tau (us) of the measurements that do not give one")] = None,
    dt_us: Annotated[Optional[float], typer.Option(help="Time step (us)")] = None,
    thetas: Annotated[Optional[str], typer.Option(help="Excitation angle(s) (rad, read to 0.1 degree), comma-separated: "
                                                 "one measurement per angle, a special case of --protocol (default "
                                                 "1.5708, which is hahn@90)")] = None,
    t2_us: Annotated[Optional[float], typer.Option(help="Transverse relaxation T2 (us) of every sample; default none")] = None,
    t2_us_range: Annotated[Optional[str], RangeOpt("T2 drawn per sample, log-uniform (us)")] = None,
    linewidth_khz: Annotated[Optional[float], typer.Option(help="Lorentzian detuning FWHM (kHz)")] = None,
    center_khz_range: Annotated[Optional[str], RangeOpt("Carrier offset range, drawn per sample (kHz; default 0,0)")] = None,
    scheme: Annotated[Optional[str], typer.Option(help="Integrator: extrapolated (default) or explicit")] = None,
    field_every: Annotated[Optional[int], typer.Option(help="Steps per mean-field evaluation of the extrapolated scheme (default 4)")] = None,
    sequence: Annotated[Optional[str], typer.Option(help="Pulse sequence of the --thetas measurements: hahn (default), cpmg:N, cp:N or a TOML pulse-list file")] = None,
    gamma1_per_us: Annotated[Optional[float], typer.Option(help="Lindblad rate of the I+ channel (1/us)")] = None,
    gamma1_per_us_range: Annotated[Optional[str], RangeOpt("I+ rate drawn per sample, uniform (1/us)")] = None,
    gamma2_per_us: Annotated[Optional[float], typer.Option(help="Lindblad rate of the I- channel (1/us)")] = None,
    gamma3_per_us: Annotated[Optional[float], typer.Option(help="Lindblad rate of the I^z (dephasing) channel (1/us)")] = None,
    geometry: Annotated[Optional[str], typer.Option(help="Lattice: square (default), rectangular:RATIO, triangular")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Dataset seed (>= 0)")] = None,
    alpha_xy_range: Annotated[Optional[str], RangeOpt("alpha_x = alpha_y range (rad/us)")] = None,
    alpha_z_range: Annotated[Optional[str], RangeOpt("alpha_z range (rad/us)")] = None,
    w_range: Annotated[Optional[str], RangeOpt("Accepted W = 2 alpha_xy + alpha_z window (rad/us)")] = None,
    xi_range: Annotated[Optional[str], RangeOpt("Gaussian xi range (lattice spacings)")] = None,
    p_range: Annotated[Optional[str], RangeOpt("Power-law exponent p range")] = None,
    gamma_range: Annotated[Optional[str], RangeOpt("RKKY gamma range (lattice spacings)")] = None,
    part_size: Annotated[Optional[int], typer.Option(help="Samples per part file")] = None,
    backend: Annotated[Optional[str], typer.Option(help="Simulator backend (default: torch)")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda (default: auto)")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="float32 or float64 (default: float32)")] = None,
    batch_size: Annotated[Optional[str], typer.Option(help="Simulations per engine call, N or auto (default: auto)")] = None,
    shard: Annotated[str, typer.Option(help="Write only shard K of N (every part j with j % N == K-1)")] = "1/1",
    overwrite: Annotated[bool, typer.Option(help="Delete the directory's parts (this shard's, if sharded) first")] = False,
    executor: ExecutorOpt = "serial",
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Simulate a dataset of spin echoes into OUT as Parquet parts (resumable, shardable; serial or on Dask)."""
    # the dataset and run options as given (None = not given); must stay the first statement
    cli = {k: v for k, v in locals().items()
           if k not in ("out", "preset", "config", "shard", "overwrite", "executor", "scheduler", "workers")}
    where = executor_option(executor, scheduler, workers)
    try:
        cfg, run = _settings(preset, config, cli)
        plan = plan_run(cfg, out, shard=parse_shard(shard), overwrite=overwrite, **run)
    except ConfigError as exc:
        fail(f"--{exc.option.replace('_', '-')}: {exc.detail}")

    simulate_with_progress(plan, Console(), title="pyecho sim", executor=where)


def executor_option(executor: str, scheduler: str | None, workers: int | None) -> Executor:
    """The Executor of --executor, --scheduler and --workers; a bad value exits with one line naming it."""
    try:
        return Executor(executor, scheduler, workers)
    except ConfigError as exc:
        fail(f"--{exc.option}: {exc.detail}")


def describe_executor(plan: RunPlan, executor: Executor) -> str:
    """Where the plan's parts run, in words (for the run's first line)."""
    if executor.kind == "serial":
        return "serial"
    if executor.scheduler is not None:
        return f"dask at {executor.scheduler}" + (" (device auto: each worker's own)" if plan.auto_device else "")
    workers, threads = executor.local_cluster(plan.device)
    return f"dask on a local cluster of {workers} worker(s) x {threads} thread(s)"


def run_or_fail(plan: RunPlan, executor: Executor, on_progress=None) -> RunResult:
    """run_plan; a scheduler that cannot be reached exits with one line naming --scheduler."""
    try:
        return run_plan(plan, on_progress, executor)
    except ConfigError as exc:
        fail(f"--{exc.option.replace('_', '-')}: {exc.detail}")


def simulate_with_progress(plan: RunPlan, console: Console, *, title: str, executor: Executor = SERIAL
                           ) -> RunResult:
    """Run a plan with the rich progress bar (with Dask, advanced as parts finish), then print
    what was done (a table named ``title``)."""
    cfg = plan.config
    k, n = plan.shard
    console.print(
        f"[bold]{cfg.n_total}[/] samples ({', '.join(cfg.kernels)} x {cfg.n_per_kernel}) on "
        f"{cfg.lattice}x{cfg.lattice}, protocol {cfg.protocol.text} (T = {', '.join(map(str, cfg.record_lengths))} "
        f"samples), {cfg.scheme} scheme; shard {k}/{n}: {plan.samples_todo} samples to simulate, {plan.samples_done} already done; "
        f"{plan.backend}/{plan.device}/{plan.dtype}, batch {plan.batch_size}, {describe_executor(plan, executor)} "
        f"-> {plan.out}"
    )
    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        EchoRateColumn(), TimeRemainingColumn(), console=console,
    ) as progress:
        task = progress.add_task("simulating", total=plan.simulations_todo)
        result = run_or_fail(plan, executor, on_progress=lambda done: progress.advance(task, done))

    table = Table(title=title, show_header=False)
    table.add_row("samples written", str(result.samples_written))
    table.add_row("samples skipped (already done)", str(result.samples_skipped))
    table.add_row("wall time", f"{result.wall_s:.1f} s")
    table.add_row("spin-steps/s", f"{result.spin_steps_per_s:.3g}")
    table.add_row("files", f"{len(result.files)} new part(s) in {plan.out}")
    console.print(table)
    return result
