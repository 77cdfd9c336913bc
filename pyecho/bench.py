"""Engine throughput in spin-steps per second, and speed-ups over the NumPy reference.

A spin-step is one site advanced by one time step; a 100 x 100 echo of 1875 steps is 1.875e7
of them, and the paper's dataset (15 000 such echoes) 2.81e11.
"""
from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from contextlib import contextmanager

from pyecho.engines.base import availability, get_engine, resolve_device
from pyecho.physics.detuning import sample_detuning_mhz
from pyecho.physics.params import EchoParams, ParameterError
from pyecho.physics.problem import build_batch

#: spin-steps of the paper preset: 3 x 5000 echoes, 100 x 100 sites, 3 x 625 steps
PAPER_SPIN_STEPS = 15_000 * 100 * 100 * 1875
#: the reference's dense N x N coupling needs N^2 doubles; above this lattice it is skipped
REFERENCE_MAX_LATTICE = 64


@dataclass
class BenchRow:
    engine: str
    device: str
    dtype: str
    lattice: int
    batch: int
    steps: int
    seconds: float
    spin_steps_per_s: float
    speedup_vs_reference: float | None
    projected_paper_s: float | None
    compiled: bool = False


def _batch(lattice: int, batch: int, steps: int):
    n_tau = max(1, steps // 3)
    kernels = [("gaussian", 8.0), ("power", 2.0), ("rkky", 13.0)]
    params = [
        EchoParams(
            kernel=kernels[i % 3][0], kernel_param=min(kernels[i % 3][1], lattice / 2), alpha_xy=0.05,
            alpha_z=0.03, lattice=lattice, tau_us=0.16 * n_tau, dt_us=0.16,
        )
        for i in range(batch)
    ]
    return build_batch(params, [sample_detuning_mhz(i, lattice) for i in range(batch)])


@contextmanager
def _torch_compile_policy(policy: str):
    """Run the torch engine with PYECHO_TORCH_COMPILE set to ``policy``."""
    saved = os.environ.get("PYECHO_TORCH_COMPILE")
    os.environ["PYECHO_TORCH_COMPILE"] = policy
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PYECHO_TORCH_COMPILE"]
        else:
            os.environ["PYECHO_TORCH_COMPILE"] = saved


def measure(engine_name: str, device: str, dtype: str, lattice: int, batch: int, steps: int, repeats: int = 2) -> float:
    """Best wall time (s) of ``repeats`` runs of ``batch`` echoes of 3*(steps//3) steps, after a
    warm-up run of the same shapes (FFT plans, torch.compile, allocator)."""
    engine = get_engine(engine_name, device)
    problem = _batch(lattice, batch, steps)
    engine.run(_batch(lattice, batch, 3), device=device, dtype=dtype)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        engine.run(problem, device=device, dtype=dtype)
        best = min(best, time.perf_counter() - start)
    return best


def run_bench(
    engines: Sequence[str] = ("numpy", "torch", "julia"),
    lattices: Sequence[int] = (8, 16, 32, 64, 100),
    batch_sizes: Sequence[int] = (1, 8, 32),
    device: str = "auto",
    dtype: str = "float32",
    steps: int = 150,
    reference_steps: int = 15,
    torch_compile: Sequence[str] = ("never", "always"),
    on_row: Callable[[BenchRow], None] | None = None,
) -> tuple[list[BenchRow], list[str]]:
    """Measure every available engine; returns the rows and notes on what was skipped.

    torch runs once per entry of ``torch_compile`` ("never": eager, "always": torch.compile,
    which large `pyecho sim` runs use; each compiled shape costs a one-off 10-30 s).

    The reference runs once per lattice (batch 1, ``reference_steps`` steps: its cost per
    spin-step does not depend on either) and only up to REFERENCE_MAX_LATTICE.
    """
    for name, value in (("steps", steps), ("reference_steps", reference_steps)):
        if value < 3:
            raise ParameterError(f"{name}: got {value}; must be >= 3 (one step per pulse period)")
    if not lattices or any(n < 2 for n in lattices):
        raise ParameterError(f"lattices: got {list(lattices)}; every lattice must be >= 2")
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ParameterError(f"batch_sizes: got {list(batch_sizes)}; every batch size must be >= 1")
    if not torch_compile or set(torch_compile) - {"never", "always"}:
        raise ParameterError(f"torch_compile: got {tuple(torch_compile)}; use 'never' and/or 'always'")
    device = resolve_device(device)
    rows: list[BenchRow] = []
    notes: list[str] = []
    reference_rate: dict[int, float] = {}

    def add(row: BenchRow) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    for engine_name in engines:
        engine_device = "cpu" if engine_name == "numpy" else device
        reason = availability(engine_name, engine_device)
        if reason is not None:
            notes.append(f"{engine_name}/{engine_device} skipped: {reason}")
            continue
        for lattice in lattices:
            if engine_name == "numpy":
                if lattice > REFERENCE_MAX_LATTICE:
                    notes.append(f"numpy reference skipped at lattice {lattice} (> {REFERENCE_MAX_LATTICE}: N^2 memory)")
                    continue
                sizes, n_steps = (1,), reference_steps
            else:
                sizes, n_steps = batch_sizes, steps
            modes = tuple(torch_compile) if engine_name == "torch" else (None,)
            for batch in sizes:
                for mode in modes:
                    done_steps = 3 * max(1, n_steps // 3)
                    run_dtype = "float64" if engine_name == "numpy" else dtype
                    with _torch_compile_policy(mode or "never"):
                        seconds = measure(engine_name, engine_device, run_dtype, lattice, batch, n_steps)
                    rate = batch * lattice * lattice * done_steps / seconds
                    if engine_name == "numpy":
                        reference_rate[lattice] = rate
                    ref = reference_rate.get(lattice)
                    add(BenchRow(
                        engine=engine_name, device=engine_device, dtype=run_dtype, lattice=lattice, batch=batch,
                        steps=done_steps, seconds=seconds, spin_steps_per_s=rate,
                        speedup_vs_reference=rate / ref if ref else None,
                        projected_paper_s=PAPER_SPIN_STEPS / rate if lattice == 100 else None,
                        compiled=mode == "always",
                    ))
    return rows, notes


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def rows_as_dicts(rows: Sequence[BenchRow]) -> list[dict]:
    return [asdict(r) for r in rows]
