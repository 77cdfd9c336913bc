"""Run a DatasetConfig or SweepConfig into a directory of Parquet parts: resumable, shardable, atomic.

The sample indices 0..n_total-1 are cut into parts of ``config.part_size`` consecutive
indices; part j holds ``part-{first:06d}-{last:06d}.parquet``. Shard K/N owns the parts with
j % N == K - 1, so N shards together write exactly the unsharded dataset (bit-identical on the
same engine, device, dtype and batch size: every sample's randomness depends on its index
alone). A part that exists is complete (parts are renamed into place only once written), so a
rerun skips it; ``overwrite`` deletes parts first instead.

The parts run one after another in this process, or with ``Executor("dask")`` as one Dask
task per part on a cluster (a local one started for the run, or a running one at
``scheduler``); a task is :func:`write_one_part` (simulate, write atomically), so a lost worker
or client costs at most the parts in flight, and rerunning resumes. Dask is imported only then.

Usage::

    plan = plan_run(PRESETS["quick"], "data/quick")   # validates, touches nothing
    result = run_plan(plan, on_progress=print)        # simulates and writes the parts
    result = run_plan(plan, executor=Executor("dask", workers=2))   # the same rows, on 2 processes
"""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import polars as pl
from typing import Callable, Iterator

from pyecho.data.sampling import ConfigError, DatasetConfig
from pyecho.data.store import DatasetError, PART_GLOB, build_frame, inspect_part, run_metadata, write_part
from pyecho.data.sweep import SweepConfig
from pyecho.engines.base import check_dtype, get_engine, resolve_device
from pyecho.errors import PyechoError
from pyecho.simulate import simulate_batch

#: where run_plan runs the parts
EXECUTORS = ("serial", "dask")
#: seconds the client tries to reach a running Dask scheduler (Executor.scheduler) before giving up
CONNECT_TIMEOUT_S = 10.0
#: Dask settings of the local cluster. Its nannies set MALLOC_TRIM_THRESHOLD_ in their workers,
#: which fixes glibc's malloc thresholds, so that freed tensors go back to the system and come
#: back as fresh pages: a part of 10 samples on 64 x 64 took 1.3 s instead of 0.28 s (one
#: thread). No statistical profiler either (it samples the running task every 10 ms, for a
#: dashboard nobody sees).
LOCAL_CLUSTER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                        "distributed.worker.profile.enabled": False}


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
    #: the device was asked as "auto" (and the batch size, too): resolved again where a part runs
    auto_device: bool = False
    auto_batch_size: bool = False

    def here(self) -> RunPlan:
        """This plan on the machine that runs it: an ``auto`` device resolved here (a Dask worker
        with a GPU uses it, whatever the client has), with an ``auto`` batch size for it."""
        device = resolve_device("auto") if self.auto_device else self.device
        if device == self.device:
            return self
        get_engine(self.backend, device)
        batch_size = (auto_batch_size(self.config.lattice, device, self.config.part_size) if self.auto_batch_size
                      else self.batch_size)
        return replace(self, device=device, batch_size=batch_size)

    def simulations(self, first: int, last: int) -> int:
        """Simulations of the part first..last: one per sample and simulated measurement."""
        return (last - first + 1) * len(self.config.protocol.sources(self.config.dt_us))

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
        return sum(self.simulations(first, last) for first, last in self.todo)


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
    auto_device, auto_batch = device == "auto", batch_size == "auto"
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
    return RunPlan(config, out, backend, device, dtype, batch_size, (k, n), tuple(todo), tuple(done), tuple(remove),
                   auto_device, auto_batch)


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


@dataclass(frozen=True)
class Executor:
    """Where :func:`run_plan` simulates the parts.

    ``kind="serial"``: one after another in this process. ``kind="dask"``: one Dask task per
    part, on the running cluster whose scheduler listens at ``scheduler`` (``tcp://HOST:PORT``,
    reached within :data:`CONNECT_TIMEOUT_S` s), or else on a local cluster of ``workers``
    processes started for the run (default: one, with every core as its threads) that
    share the cores out as threads. A worker simulates one part at a time with torch on all
    of its threads, and resolves device ``auto`` itself (a worker with a GPU uses it).
    """

    kind: str = "serial"
    scheduler: str | None = None
    workers: int | None = None

    def __post_init__(self):
        if self.kind not in EXECUTORS:
            raise ConfigError("executor", f"got {self.kind!r}; allowed: {', '.join(EXECUTORS)}")
        for option in ("scheduler", "workers"):
            if self.kind != "dask" and getattr(self, option) is not None:
                raise ConfigError(option, f"only used with executor dask; got executor {self.kind!r}")
        if self.workers is not None:
            if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
                raise ConfigError("workers", f"got {self.workers!r}; must be an integer >= 1")
            if self.scheduler is not None:
                raise ConfigError("workers", "sizes the local cluster; the cluster at a scheduler has its own workers")
        if self.scheduler is not None:
            _check_address(self.scheduler)

    def local_cluster(self, device: str) -> tuple[int, int]:
        """(worker processes, threads per worker) of the local cluster for a plan on ``device``."""
        from dask.system import CPU_COUNT  # the cores this process may use (affinity, cgroup quota)

        # one worker with every core as its threads by default: on 2 cores it ran 600 samples on
        # 100 x 100 at 0.98x the serial run with the serial run's exact rows, where two
        # single-thread workers ran at 0.72x (each pays its own torch import and compile, and the
        # FFT's rounding depends on the thread count); --workers N splits the cores
        workers = self.workers or 1
        return workers, max(1, CPU_COUNT // workers)


SERIAL = Executor()


def _check_address(address: str) -> None:
    """A scheduler address is [tcp|tls]://HOST:PORT (HOST:PORT means tcp)."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ConfigError("scheduler", f"got {address!r}; must be tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786")


class PartsLost(PyechoError, RuntimeError):
    """Parts whose Dask task did not come back (the workers running it died, it was cancelled,
    the scheduler was lost): such a part may or may not be on disk, every part on disk is
    complete, and rerunning the same command writes the rest."""


def run_plan(plan: RunPlan, on_progress: Callable[[int], None] | None = None, executor: Executor = SERIAL
             ) -> RunResult:
    """Simulate and write the plan's parts; ``on_progress(k)`` after every k simulations (one
    per sample and simulated measurement, :attr:`RunPlan.simulations_todo` in all; with Dask,
    after every finished part).

    Each part is written atomically as soon as it is simulated, so an interruption keeps
    every finished part and leaves no partial file. With Dask, parts whose task is lost raise
    :class:`PartsLost` once the others are done; an exception inside a task is raised as is.
    ``wall_s`` includes starting the local cluster.
    """
    start = time.perf_counter()
    if executor.kind == "dask":
        done = _run_on_dask(plan, on_progress, executor)
    else:
        _prepare_out(plan)
        done = {(first, last): write_one_part(plan, first, last, on_progress) for first, last in plan.todo}
    wall = time.perf_counter() - start
    spin_steps = sum(steps for _, steps in done.values())
    return RunResult(plan.samples_todo, plan.samples_done, wall, spin_steps / wall if wall > 0 else 0.0,
                     tuple(done[r][0] for r in plan.todo))


def _prepare_out(plan: RunPlan) -> None:
    """Create the plan's directory and delete the parts it overwrites."""
    plan.out.mkdir(parents=True, exist_ok=True)
    for path in plan.remove:
        path.unlink(missing_ok=True)


#: a Dask worker runs one task at a time, with torch on all of the worker's threads
_ONE_TASK_AT_A_TIME = threading.Lock()


def run_alone(function: Callable, *args):
    """``function(*args)`` as a Dask task: alone on its worker, torch on all the worker's threads."""
    import torch
    from distributed import get_worker

    with _ONE_TASK_AT_A_TIME:
        torch.set_num_threads(get_worker().state.nthreads)  # per OS thread (OpenMP): set where it runs
        return function(*args)


def _write_part_here(plan: RunPlan, first: int, last: int) -> tuple[Path, int]:
    """:func:`write_one_part` on the worker that runs it (its own working directory and device)."""
    return write_one_part(plan.here(), first, last)


@contextmanager
def dask_client(executor: Executor, device: str) -> Iterator:
    """A distributed.Client of the executor's cluster, closed (and a local cluster shut down) on exit."""
    from distributed import Client, LocalCluster

    if executor.scheduler is not None:
        try:
            client = Client(executor.scheduler, timeout=CONNECT_TIMEOUT_S)
        except OSError:  # refused, unknown host, timed out
            raise ConfigError("scheduler", f"no Dask scheduler answered at {executor.scheduler} within "
                                           f"{CONNECT_TIMEOUT_S:g} s; start one (dask scheduler) or check the address"
                              ) from None
        with client:
            yield client
        return
    import dask

    workers, threads = executor.local_cluster(device)
    environ = dict(os.environ)  # the nannies set their workers' variables here too, before each spawn
    try:
        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            # the run reports lost tasks itself; the cluster's log would add shutdown races to its output
            cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                                   dashboard_address=":0", silence_logs=logging.CRITICAL)
        with cluster, Client(cluster) as client:
            yield client
    finally:
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)


def map_on_dask(client, function: Callable, tasks: dict, *, name: str, on_done: Callable) -> list[tuple]:
    """Run ``function(*args)`` alone on a worker (:func:`run_alone`) for every ``key: args`` of
    ``tasks``; ``on_done(key, result)`` as each comes back, which may return more ``key: args``
    tasks (submitted at once, ahead of the first tasks still waiting, so that what they finish is
    finished early; None: none). Returns (key, reason) of the tasks lost (workers died,
    cancelled), sorted; an exception inside a task is raised as is."""
    from distributed import KilledWorker, as_completed

    def submit(batch: dict, priority: int = 0) -> dict:
        return {client.submit(run_alone, function, *args, pure=False, priority=priority,
                              key=f"pyecho-{name}-{key}-{client.id}"): key for key, args in batch.items()}

    futures = submit(tasks)
    lost = []
    running = as_completed(futures)
    for future in running:
        key = futures.pop(future)
        try:
            result = future.result()
        except CancelledError:  # also when cancelled after as_completed handed it over
            lost.append((key, "cancelled"))
            continue
        except KilledWorker as exc:
            lost.append((key, str(exc)))
            continue
        future.release()  # a finished task is done: a worker that dies later must not redo it
        more = submit(on_done(key, result) or {}, priority=1)
        futures.update(more)
        for follow_up in more:
            running.add(follow_up)
    return sorted(lost)


def _run_on_dask(plan: RunPlan, on_progress: Callable[[int], None] | None, executor: Executor
                 ) -> dict[tuple[int, int], tuple[Path, int]]:
    """Run every part of the plan as a Dask task; {(first, last): (path, spin-steps)} of all."""
    remote = replace(plan, out=plan.out.absolute())  # the workers' working directories may differ
    done = {}

    def finished(part, result) -> None:
        done[part] = plan.out / part_name(*part), result[1]
        if on_progress is not None:
            on_progress(plan.simulations(*part))

    with dask_client(executor, plan.device) as client:
        _prepare_out(plan)
        lost = map_on_dask(client, _write_part_here, {(first, last): (remote, first, last) for first, last in plan.todo},
                           name=plan.out.name, on_done=finished)
    if lost:
        names = ", ".join(part_name(*part) for part, _ in lost[:3])
        if len(lost) > 3:
            names += f" and {len(lost) - 3} more"
        raise PartsLost(f"{plan.out}: {len(lost)} of {len(plan.todo)} part(s) did not come back from the Dask "
                        f"cluster ({names}; {lost[0][1]}); every part on disk is complete, rerun the same command to "
                        "write the rest")
    return done
