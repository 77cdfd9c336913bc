"""Run a DatasetConfig or SweepConfig into a directory of Parquet parts: resumable, shardable, atomic.

The sample indices 0..n_total-1 are cut into parts of ``config.part_size`` consecutive
indices; part j holds ``part-{first:06d}-{last:06d}.parquet``. Shard K/N owns the parts with
j % N == K - 1, so N shards together write exactly the unsharded dataset (bit-identical on the
same engine, device, dtype and batch size: every sample's randomness depends on its index
alone). A part that exists is complete (parts are renamed into place only once written), so a
rerun skips it; ``overwrite`` deletes parts first instead.

Usage::

    plan = plan_run(PRESETS["quick"], "data/quick")   # validates, touches nothing
    result = run_plan(plan, on_progress=print)        # simulates and writes the parts
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
from typing import Callable

from pyecho.data.sampling import ConfigError, DatasetConfig
from pyecho.data.store import DatasetError, PART_GLOB, build_frame, inspect_part, run_metadata, write_part
from pyecho.data.sweep import SweepConfig
from pyecho.engines.base import check_dtype, get_engine, resolve_device
from pyecho.simulate import simulate_batch


def part_name(first: int, last: int) -> str:
    """File name of the part holding sample ids first..last (inclusive)."""
    return f"part-{first:06d}-{last:06d}.parquet"


def part_ranges(config: DatasetConfig | SweepConfig) -> list[tuple[int, int]]:
    """(first, last) sample ids of every part, in order."""
    size, total = config.part_size, config.n_total
    return [(first, min(first + size, total) - 1) for first in range(0, total, size)]


def parse_shard(text: str) -> tuple[int, int]:
    """Parse "K/N" (1 <= K <= N) into (K, N)."""
    k, sep, n = str(text).partition("/")
    try:
        k, n = int(k), int(n)
    except ValueError:
        raise ConfigError("shard", f"got {text!r}; must be K/N with integers 1 <= K <= N, e.g. 2/8") from None
    if not sep or not 1 <= k <= n:
        raise ConfigError("shard", f"got {text!r}; must be K/N with integers 1 <= K <= N, e.g. 2/8")
    return k, n


def auto_batch_size(lattice: int, device: str, part_size: int) -> int:
    """Simulations per engine call: up to 512 on a GPU, 32 on CPU (8 above 128 x 128), balanced
    so that every call of a part has about the same size. On 2 CPU cores at 100 x 100 the
    compiled torch step measured 38 M spin-steps/s at batch 8 and 61 M at batch 32."""
    if device == "cuda":
        cap = 512 if lattice <= 128 else 256
    else:
        cap = 32 if lattice <= 128 else 8
    calls = -(-part_size // cap)
    return -(-part_size // calls)


@dataclass(frozen=True)
class RunPlan:
    """A validated run: which parts to write, which exist already, which to delete first."""

    config: DatasetConfig | SweepConfig
    out: Path
    backend: str
    device: str
    dtype: str
    batch_size: int
    shard: tuple[int, int]
    todo: tuple[tuple[int, int], ...]
    done: tuple[tuple[int, int], ...]
    remove: tuple[Path, ...]

    @property
    def samples_todo(self) -> int:
        return sum(last - first + 1 for first, last in self.todo)

    @property
    def samples_done(self) -> int:
        return sum(last - first + 1 for first, last in self.done)

    @property
    def simulations_todo(self) -> int:
        """Simulations to run: one per sample and simulated measurement (a measurement that is the
        beginning of a longer one of the protocol is sliced from it, not simulated)."""
        return self.samples_todo * len(self.config.protocol.sources(self.config.dt_us))


@dataclass(frozen=True)
class RunResult:
    """What :func:`run_plan` did; ``spin_steps_per_s`` = spins x time steps simulated per second."""

    samples_written: int
    samples_skipped: int
    wall_s: float
    spin_steps_per_s: float
    files: tuple[Path, ...]


def plan_run(
    config: DatasetConfig | SweepConfig,
    out: str | Path,
    backend: str = "torch",
    device: str = "auto",
    dtype: str = "float32",
    batch_size: int | str = "auto",
    shard: tuple[int, int] = (1, 1),
    overwrite: bool = False,
) -> RunPlan:
    """Validate a run and decide its parts, without writing anything.

    Raises ConfigError / BackendUnavailable for bad options, DatasetError when ``out`` holds
    parts of another config (naming the differing keys) or an unreadable part.
    ``overwrite`` deletes, when run, every part in ``out`` (with a shard: only that shard's
    parts, so concurrent shards never delete each other's work).
    """
    check_dtype(dtype)
    device = resolve_device(device)
    get_engine(backend, device)  # raises BackendUnavailable saying why
    if batch_size == "auto":
        batch_size = auto_batch_size(config.lattice, device, config.part_size)
    else:
        try:
            batch_size = int(batch_size)
        except ValueError:
            raise ConfigError("batch_size", f"got {batch_size!r}; must be an integer >= 1 or 'auto'") from None
        if batch_size < 1:
            raise ConfigError("batch_size", f"got {batch_size}; must be an integer >= 1 or 'auto'")
    k, n = shard
    if not 1 <= k <= n:
        raise ConfigError("shard", f"got {k}/{n}; must be K/N with 1 <= K <= N")
    out = Path(out)
    existing_ancestor = next(p for p in (out, *out.parents) if p.exists())
    if not existing_ancestor.is_dir():
        raise ConfigError("out", f"{existing_ancestor} exists and is not a directory, so {out} cannot be one")

    mine = [r for j, r in enumerate(part_ranges(config)) if j % n == k - 1]
    my_names = {part_name(*r) for r in mine}
    existing = sorted(out.glob(PART_GLOB)) if out.is_dir() else []
    remove = [p for p in existing if overwrite and (n == 1 or p.name in my_names)]
    kept = {p.name: inspect_part(p) for p in existing if p not in remove}
    for part in kept.values():
        if part.config != config:  # a config of another kind is never equal
            keys = ", ".join(config.differing_keys(part.config))
            raise DatasetError(
                f"out: {out} holds parts of a different dataset config ({part.path.name} differs in: {keys}); "
                "use another directory or --overwrite"
            )
    done = [r for r in mine if part_name(*r) in kept]
    for first, last in done:
        rows = kept[part_name(first, last)].num_rows
        expected = (last - first + 1) * len(config.protocol)
        if rows != expected:
            raise DatasetError(f"{out / part_name(first, last)}: holds {rows} rows, expected {expected}")
    todo = [r for r in mine if r not in done]
    return RunPlan(config, out, backend, device, dtype, batch_size, (k, n), tuple(todo), tuple(done), tuple(remove))


def simulate_part(config: DatasetConfig | SweepConfig, first: int, last: int, *, backend: str, device: str,
                  dtype: str, batch_size: int, on_progress: Callable[[int], None] | None = None
                  ) -> tuple[pl.DataFrame, int]:
    """The rows of samples first..last (inclusive) and the spin-steps it took to simulate them.

    Rows come in (sample, measurement) order, every measurement of a sample with the same
    parameters and detunings; each simulated measurement runs as one batch over the samples,
    and a measurement that begins a longer one of the protocol is its first samples.
    ``on_progress(k)`` after every k simulations.
    """
    sample_params, sample_seeds = config.draw(range(first, last + 1))
    seeds = [int(s) for s in sample_seeds]
    plan = config.protocol.simulated(config.dt_us)
    simulated = {}
    spin_steps = 0
    for source in sorted({r.source for r in plan}):
        params = [config.measured(p, source) for p in sample_params]
        simulated[source] = simulate_batch(params, seeds=seeds, backend=backend, device=device, dtype=dtype,
                                           batch_size=batch_size, on_progress=on_progress)
        spin_steps += sum(p.lattice**2 * p.n_samples for p in params)
    n = len(sample_params)
    rows = [(b, r) for b in range(n) for r in plan]  # (sample, measurement) order
    frame = build_frame(
        sample_ids=[first + b for b, _ in rows],
        params=[config.measured(sample_params[b], r.index) for b, r in rows],
        seeds=np.asarray(sample_seeds)[[b for b, _ in rows]],
        records=[simulated[r.source][b, :r.n_samples] for b, r in rows],
        measurements=[r.index for _, r in rows],
    )
    return frame, spin_steps


def write_one_part(plan: RunPlan, first: int, last: int, on_progress: Callable[[int], None] | None = None
                   ) -> tuple[Path, int]:
    """Simulate the part holding samples first..last and write it atomically: (path, spin-steps)."""
    frame, spin_steps = simulate_part(plan.config, first, last, backend=plan.backend, device=plan.device,
                                      dtype=plan.dtype, batch_size=plan.batch_size, on_progress=on_progress)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    meta = run_metadata(plan.config, plan.backend, plan.device, plan.dtype, created)
    return write_part(plan.out / part_name(first, last), frame, meta), spin_steps


def run_plan(plan: RunPlan, on_progress: Callable[[int], None] | None = None) -> RunResult:
    """Simulate and write the plan's parts; ``on_progress(k)`` after every k simulations (one
    per sample and simulated measurement, :attr:`RunPlan.simulations_todo` in all).

    Each part is written atomically as soon as it is simulated, so an interruption keeps
    every finished part and leaves no partial file.
    """
    start = time.perf_counter()
    plan.out.mkdir(parents=True, exist_ok=True)
    for path in plan.remove:
        path.unlink(missing_ok=True)
    written = []
    spin_steps = 0
    for first, last in plan.todo:
        path, steps = write_one_part(plan, first, last, on_progress)
        written.append(path)
        spin_steps += steps
    wall = time.perf_counter() - start
    return RunResult(plan.samples_todo, plan.samples_done, wall, spin_steps / wall if wall > 0 else 0.0,
                     tuple(written))
