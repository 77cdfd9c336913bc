"""`pyecho design`: which measurements determine the correlations best (pyecho.learn.design)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from pyecho.data.factory import plan_run
from pyecho.data.sampling import PRESETS, ConfigError
from pyecho.errors import ParameterError
from pyecho_cli.app import app
from pyecho_cli.console import table_console
from pyecho_cli.errors import fail, user_errors
from pyecho_cli.options import ExecutorOpt, SchedulerOpt, WorkersOpt
from pyecho_cli.sim import executor_option, simulate_with_progress

#: rows of the ranked table printed (all of them are in design.csv)
SHOWN = 15


@app.command()
@user_errors
def design(
    cache: Annotated[Path, typer.Option(help="Dataset directory of the candidates' simulations (created, or "
                                             "resumed and reused: a `pyecho sim` dataset)")],
    out: Annotated[Path, typer.Option(help="Directory for design.csv, design.json, design.png, identifiability.png")],
    candidates: Annotated[Optional[str], typer.Option(
        help="Candidate measurements, SEQUENCE@ANGLE_DEG\\[/TAU_US],... (default: Hahn at 30-90 degrees, CPMG and CP "
             "trains of 2-32 pulses at tau 100, 50 and 25 us)")] = None,
    lattice: Annotated[Optional[int], typer.Option(help="Lattice side n (default 100)")] = None,
    n_per_kernel: Annotated[Optional[int], typer.Option(help="Samples per kernel (default 300)")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the samples, the noise, the split and the folds")] = 0,
    max_measurements: Annotated[int, typer.Option(help="Budget: measurements per sample")] = 3,
    max_time_us: Annotated[Optional[float], typer.Option(
        help="Budget: spectrometer time per sample (us, the records' summed durations); default none")] = None,
    snr: Annotated[float, typer.Option(help="SNR the protocols are compared at (initial |M| over the noise std)")] = 200.0,
    folds: Annotated[int, typer.Option(help="Cross-validation folds on the design rows")] = 5,
    device: Annotated[str, typer.Option(help="Simulation device: auto, cpu or cuda")] = "auto",
    bound_top: Annotated[int, typer.Option(
        min=0, help="Also rank the probe's best N protocols (and the 90-degree Hahn echo) by their Cramér-Rao bound on "
        "L (pyecho limits; minutes per protocol and point)")] = 0,
    bound_points: Annotated[int, typer.Option(min=1, help="Points per family of each protocol's bound")] = 2,
    bound_more_draws: Annotated[int, typer.Option(min=0, help="Plain detuning draws of each bound's scatter")] = 64,
    executor: ExecutorOpt = "serial",
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Rank protocols by what they tell about the kernel family, W, L, the alphas and T2.

    Simulates (or reuses) every candidate measurement of the same samples, then adds
    measurements greedily by a linear probe's cross-validated scores within the budget.
    """
    where = executor_option(executor, scheduler, workers)
    from pyecho.data.store import load_dataset
    from pyecho.learn.base import LearnData
    from pyecho.learn.design.identifiability import identifiability_map, plot_identifiability
    from pyecho.learn.design.output import write_design
    from pyecho.learn.design.study import DesignBudget, ProtocolProbe, forward_selection, table_value

    given = {"protocol": candidates, "lattice": lattice, "n_per_kernel": n_per_kernel, "seed": seed}
    try:
        config = PRESETS["design"].replace(**{k: v for k, v in given.items() if v is not None})
        plan = plan_run(config, cache, device=device)
    except ConfigError as exc:
        option = "candidates" if exc.option == "protocol" else exc.option
        fail(f"--{option.replace('_', '-')}: {exc.detail}")
    try:
        budget = DesignBudget(max_measurements, max_time_us)
    except ParameterError as exc:
        option, _, detail = str(exc).partition(": ")
        fail(f"--{option.replace('_', '-')}: {detail}")
    if not snr > 0:
        raise ParameterError(f"--snr: got {snr}; must be > 0 (inf: no noise)")
    if folds < 2:
        raise ParameterError(f"--folds: got {folds}; must be >= 2")
    console = Console(stderr=True)
    simulate_with_progress(plan, console, title="pyecho design: simulations", executor=where)
    data = LearnData.from_dataset(load_dataset(cache))
    with console.status("forward selection") as status:
        probe = ProtocolProbe(data, snr=snr, seed=seed, folds=folds)
        result = forward_selection(probe, budget, note=lambda text: status.update(f"forward selection: {text}"))
        status.update("identifiability map")
        best = result.best
        maps = {best.label: best.indices}
        found = data.protocol.hahn_90()  # the probe reads whole candidates: only a candidate that is the echo itself
        if found is not None and found[1] in data.protocol.measurements and found[1].text not in best.measurements:
            maps = {f"{found[1].text} alone": (data.protocol.index(found[1]),), **maps}
        idmap = identifiability_map(probe, maps)
    files = [*write_design(result, out)]
    plot_identifiability(idmap, out / "identifiability.png")
    if bound_top:
        files += _rank_by_bound(config, data, result, snr, bound_top, bound_points, bound_more_draws, seed, device, out,
                                console)

    tasks = [(t, title) for t, title in (("pvnp", "F1 P"), ("kernel3", "macro-F1"), ("L", "R² L"), ("W", "R² W"),
                                          ("alpha_z", "R² α_z"), ("t2_us", "R² log T2"))
             if table_value(best.cv, t) is not None]
    table = Table("#", "protocol", "time (ms)", "score", *(title for _, title in tasks),
                  title=f"pyecho design: out-of-fold scores, SNR {snr:g}, {result.n_design} samples (best first)")
    for rank, e in enumerate(result.ranked()[:SHOWN], 1):
        table.add_row(str(rank), e.label, f"{e.time_us / 1000:.2f}", f"{e.score:.3f}",
                      *(f"{table_value(e.cv, t):.3f}" for t, _ in tasks))
    table_console().print(table)
    console.print(f"best protocol: [bold]{best.label}[/] (design score {best.score:.3f}); test rows: "
                  + ", ".join(f"{title} {table_value(best.test, t):.3f}" for t, title in tasks))
    console.print(f"[green]wrote[/] {', '.join(str(f) for f in files)}, {out / 'identifiability.png'}")


def _rank_by_bound(config, data, result, snr: float, top: int, points: int, more_draws: int, seed: int, device: str,
                   out: Path, console: Console) -> list[Path]:
    """The probe's ``top`` protocols and the 90-degree Hahn echo ranked by their Cramér-Rao bound
    on L; written to design_bound.csv and printed."""
    import os

    import polars as pl

    from pyecho.atomic import atomic_path
    from pyecho.fit.batch import engine_for
    from pyecho.fit.limits import BoundSettings
    from pyecho.learn.design.limits import rank_by_bound
    from pyecho_cli.fit import COMPILE_POLICY

    os.environ.setdefault("PYECHO_TORCH_COMPILE", COMPILE_POLICY)
    protocols = {e.label: ",".join(e.measurements) for e in result.ranked()[:top]}
    found = data.protocol.hahn_90()  # the 90-degree Hahn echo at the candidates' own tau, as learn reads it
    if found is not None:
        protocols.setdefault(found[1].text, found[1].text)
    settings = BoundSettings(more_draws=more_draws, seed=seed, engine=engine_for(device))
    with console.status("Cramér-Rao bounds") as status:
        done = [0]

        def advance() -> None:
            done[0] += 1
            status.update(f"Cramér-Rao bounds: {done[0]} of {len(protocols) * points * len(config.kernels)}")

        ranked = rank_by_bound(config, protocols, snr, points, settings, on_point=advance)
    table = Table("#", "protocol", "time (ms)", "bound score", *(f"L sd / prior sd, {k}" for k in ranked[0].ratio),
                  title=f"pyecho design: protocols by their Cramér-Rao bound on L, SNR {snr:g} (lower is better)")
    rows = []
    for rank, b in enumerate(ranked, 1):
        table.add_row(str(rank), b.label, f"{b.time_us / 1000:.2f}", f"{b.score:.3f}", *(f"{v:.3f}" for v in b.ratio.values()))
        rows.append({"protocol": b.label, "time_us": b.time_us, "bound_score": b.score,
                     **{f"L_sd_over_prior_{k}": v for k, v in b.ratio.items()}})
    table_console().print(table)
    path = out / "design_bound.csv"
    with atomic_path(path) as tmp:
        pl.DataFrame(rows).write_csv(tmp)
    return [path]
