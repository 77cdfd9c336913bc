"""`pyecho bench`: spin-steps per second of every engine and scheme, speed-ups, step profile."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pyecho.atomic import atomic_path
from pyecho.bench import BenchRow, Scheme, machine_info, profile_torch_step, rows_as_dicts, run_bench
from pyecho.errors import ParameterError
from pyecho_cli.app import app
from pyecho_cli.console import table_console
from pyecho_cli.errors import user_errors


def _ints(option: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"{option}: got {text!r}; must be comma-separated integers, e.g. 8,16,32") from None
    if not values:
        raise ParameterError(f"{option}: got {text!r}; give at least one value")
    return values


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return ""
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.0f}" if x >= 10 else f"{x:.2f}"


def _projected_datasets(text: str) -> dict:
    """--project: preset names and protocols (measurements joined by +) -> DatasetConfig."""
    from pyecho.data.sampling import PRESETS, ConfigError

    out = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        try:
            out[item] = PRESETS[item] if item in PRESETS else PRESETS["paper"].replace(protocol=item.replace("+", ","))
        except ConfigError as exc:
            raise ParameterError(f"--project: {item!r} is neither a preset ({', '.join(PRESETS)}) nor a protocol "
                                 f"({exc.detail})") from None
    return out


def _projection(name: str, config, rows) -> dict:
    """The dataset's spin-steps over the fastest measured rate of its lattice and scheme (compiled
    torch where measured): a projection, not a measurement."""
    scheme = config.scheme if config.scheme == "explicit" else f"{config.scheme}:{config.field_every}"
    usable = [r for r in rows if r.lattice == config.lattice and r.scheme == scheme and r.engine != "numpy"]
    best = max(usable, key=lambda r: r.spin_steps_per_s, default=None)
    rate = None if best is None else best.spin_steps_per_s
    return {"dataset": name, "samples": config.n_total, "lattice": config.lattice, "spin_steps": config.spin_steps,
            "rate": rate, "measured_as": None if best is None else f"{best.engine} {best.sequence} B={best.batch}",
            "seconds": None if rate is None else config.spin_steps / rate}


@app.command()
@user_errors
def bench(
    engines: Annotated[str, typer.Option(help="Engines to measure (unavailable ones are reported).")] = "numpy,torch,julia",
    lattices: Annotated[str, typer.Option(help="Lattice sides n.")] = "16,32,64,100",
    batch_sizes: Annotated[str, typer.Option(help="Simulations per engine call (fast engines).")] = "8,32",
    schemes: Annotated[str, typer.Option(help="Integrators: explicit and/or extrapolated:K.")] = "explicit,extrapolated:4",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (the reference is always cpu).")] = "auto",
    dtype: Annotated[str, typer.Option(help="float32 or float64 for torch/julia.")] = "float32",
    steps: Annotated[int, typer.Option(help="Time steps per measured run (fast engines).")] = 150,
    reference_steps: Annotated[int, typer.Option(help="Time steps per reference run.")] = 15,
    torch_compile: Annotated[str, typer.Option(help="torch eager (never), compiled (always) or both.")] = "both",
    baseline: Annotated[bool, typer.Option(help="Also time the straightforward torch loop the speed-ups refer to.")] = True,
    profile: Annotated[bool, typer.Option(help="Also split the compiled torch step into FFT, site update and overhead (CPU).")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the results as JSON here.")] = None,
    sequence: Annotated[str, typer.Option(help="Pulse sequence measured: hahn, cpmg:N or cp:N.")] = "hahn",
    project: Annotated[str, typer.Option(
        help="Datasets whose simulation time is projected from the measured rates: preset names and/or protocols "
             "(SEQUENCE@ANGLE_DEG/TAU_US+... with + between measurements: the paper's samples measured that "
             "way), comma-separated.")] = "paper",
    fit: Annotated[bool, typer.Option(
        "--fit", help="Measure pyecho fit's simulation shapes instead (points x detuning draws of the range protocol "
                      "on --fit-lattice; one engine call per measurement against one per point; 1 and 2 threads).")
    ] = False,
    fit_lattice: Annotated[int, typer.Option("--fit-lattice", help="Lattice side of --fit.")] = 64,
) -> None:
    """Measure spin-steps/s per engine, scheme, lattice and batch size; speed-ups over the NumPy
    reference, the straightforward torch loop and the explicit step; the projected simulation
    time of any preset or protocol dataset on this machine."""
    from pyecho.engines.base import BACKENDS

    if fit:
        _fit_shapes(fit_lattice, device, json_out)
        return
    names = [e.strip() for e in engines.split(",") if e.strip()]
    unknown = [e for e in names if e not in BACKENDS]
    if unknown or not names:
        raise ParameterError(f"--engines: got {engines!r}; allowed: {', '.join(BACKENDS)}")
    lattice_list = _ints("--lattices", lattices)
    batch_list = _ints("--batch-sizes", batch_sizes)
    try:
        scheme_list = [Scheme.parse(s) for s in schemes.split(",") if s.strip()]
    except ValueError as exc:
        raise ParameterError(f"--{exc}") from None
    modes = {"both": ("never", "always"), "never": ("never",), "always": ("always",)}.get(torch_compile)
    if modes is None:
        raise ParameterError(f"--torch-compile: got {torch_compile!r}; allowed: both, never, always")
    projected = _projected_datasets(project)
    console = table_console()
    info = machine_info()
    table = Table("engine", "scheme", "dev", "n", "B", "M spin-steps/s", "x ref", "x loop", "x expl", "paper preset",
                  caption="x ref / x loop / x expl: speed-up over the NumPy reference, the straightforward torch loop "
                          "and the explicit step, same run; paper preset: projected time of 2.81e11 spin-steps")

    def show(row: BenchRow) -> None:
        label = row.engine + ("+compile" if row.compiled else "")
        console.print(f"  {label} {row.scheme}/{row.device} n={row.lattice} B={row.batch}: "
                      f"{row.spin_steps_per_s / 1e6:.2f} M spin-steps/s", highlight=False)
        table.add_row(label, row.scheme, row.device, str(row.lattice), str(row.batch),
                      f"{row.spin_steps_per_s / 1e6:.2f}", _ratio(row.speedup_vs_reference),
                      _ratio(row.speedup_vs_baseline), _ratio(row.speedup_vs_explicit), _fmt_seconds(row.projected_paper_s))

    start = time.perf_counter()
    try:
        rows, notes = run_bench(names, lattice_list, batch_list, scheme_list, device, dtype, steps, reference_steps,
                                modes, baseline, on_row=show, sequence=sequence)
    except ParameterError as exc:
        option, _, detail = str(exc).partition(": ")
        raise ParameterError(f"--{option.replace('_', '-')}: {detail}") from None
    table.title = (f"pyecho bench on {info.get('gpu') or info['platform']}, torch threads {info.get('torch_threads')}, "
                   f"{dtype}")
    console.print(table)
    profiles = []
    if profile:
        ptable = Table("n", "B", "scheme", "FFT ns", "site update ns", "call overhead us",
                       title="compiled torch step, per site-step (FFT amortised over field_every)")
        for lattice in lattice_list:
            for batch in batch_list:
                for scheme in scheme_list:
                    prof = profile_torch_step(lattice, batch, scheme, dtype)
                    profiles.append(prof)
                    sites = batch * lattice * lattice
                    ptable.add_row(str(lattice), str(batch), prof.scheme, f"{prof.fft_s / sites * 1e9:.2f}",
                                   f"{prof.site_update_s / sites * 1e9:.2f}", f"{prof.overhead_s * 1e6:.0f}")
        console.print(ptable)
    projections = [_projection(name, config, rows) for name, config in projected.items()]
    ptable = Table("dataset", "samples", "lattice", "spin-steps", "rate used (M/s)", "projected time",
                   title=f"projected `pyecho sim` time on this machine ({info.get('gpu') or 'CPU'})")
    for p in projections:
        ptable.add_row(p["dataset"], str(p["samples"]), str(p["lattice"]), f"{p['spin_steps']:.3g}",
                       "—" if p["rate"] is None else f"{p['rate'] / 1e6:.1f} ({p['measured_as']})",
                       f"not measured: bench --lattices {p['lattice']}" if p["seconds"] is None
                       else _fmt_seconds(p["seconds"]))
    console.print(ptable)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    if json_out is not None:
        payload = {"machine": info, "rows": rows_as_dicts(rows), "notes": notes, "projections": projections,
                   "profiles": [{**vars(p), "step_s": p.step_s} for p in profiles],
                   "wall_s": time.perf_counter() - start}
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(payload, indent=2))
        console.print(f"wrote [bold]{json_out}[/]")


def _fit_shapes(lattice: int, device: str, json_out: Path | None) -> None:
    """`pyecho bench --fit`: the fit's simulation shapes, as a table (and JSON)."""
    from pyecho.bench import run_fit_bench

    if lattice < 4:
        raise ParameterError(f"--fit-lattice: got {lattice}; must be at least 4")
    console = table_console()
    info = machine_info()
    table = Table("shape", "points x draws", "dtype", "threads", "engine calls", "seconds", "M spin-steps/s",
                  title=f"pyecho fit's simulations, range protocol on {lattice}x{lattice}, "
                        f"{info.get('gpu') or info['platform']}")
    rows = run_fit_bench(lattice, device=device, on_row=lambda r: console.print(
        f"  {r.shape} {r.points}x{r.draws} {r.dtype} threads {r.threads} one call {r.one_call}: {r.seconds:.2f} s",
        highlight=False))
    for r in rows:
        table.add_row(r.shape, f"{r.points} x {r.draws}" + (f" (groups {r.site_groups}²)" if r.site_groups > 1 else ""),
                      r.dtype, str(r.threads), "one per measurement" if r.one_call else "one per point and measurement",
                      f"{r.seconds:.2f}", f"{r.spin_steps_per_s / 1e6:.1f}")
    console.print(table)
    if json_out is not None:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps({"machine": info, "fit_rows": [vars(r) for r in rows]}, indent=2))
        console.print(f"wrote [bold]{json_out}[/]")
