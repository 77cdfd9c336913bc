"""Engine throughput in spin-steps per second, speed-ups, and where the torch step's time goes.

A spin-step is one site advanced by one time step; a 100 x 100 echo of 1875 steps is 1.875e7
of them, and the paper's dataset (15 000 such echoes) 2.81e11.

Every row is measured in the same process as the rows it is compared with:
``speedup_vs_reference`` (the NumPy reference, same lattice), ``speedup_vs_baseline`` (a
straightforward batched torch loop: FFT field and Rodrigues rotation every step, no blocks, no
compile; same lattice and batch) and ``speedup_vs_explicit`` (the same engine and compile mode
with the explicit scheme).
"""
from __future__ import annotations

import math
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from pyecho.engines.base import availability, get_engine, resolve_device
from pyecho.physics.detuning import sample_detuning_mhz
from pyecho.physics.params import SCHEMES, EchoParams, ParameterError
from pyecho.physics.problem import EchoBatch, build_batch

#: spin-steps of the paper preset: 3 x 5000 echoes, 100 x 100 sites, 3 x 625 steps
PAPER_SPIN_STEPS = 15_000 * 100 * 100 * 1875
#: the reference's dense N x N coupling needs N^2 doubles; above this lattice it is skipped
REFERENCE_MAX_LATTICE = 64
#: the engine name of the straightforward torch loop every torch row is compared with
BASELINE = "torch-loop"


@dataclass(frozen=True)
class Scheme:
    """An integrator setting: ``name`` in SCHEMES and its ``field_every``."""

    name: str
    field_every: int = 1

    @property
    def label(self) -> str:
        return self.name if self.name == "explicit" else f"{self.name}:{self.field_every}"

    @classmethod
    def parse(cls, text: str) -> "Scheme":
        """"explicit" or "extrapolated:K" (K >= 1; "extrapolated" alone is K = 4)."""
        name, _, k = text.strip().partition(":")
        try:
            if name not in SCHEMES or (name == "explicit" and k):
                raise ValueError(name)
            return cls(name, EchoParams(lattice=4, scheme=name, field_every=int(k) if k else None).field_every)
        except ValueError:
            raise ParameterError(f"schemes: got {text!r}; allowed: explicit, extrapolated:K (K >= 1)") from None


EXPLICIT = Scheme("explicit")


@dataclass(frozen=True)
class BenchRow:
    """One measurement: ``batch`` echoes of ``steps`` steps on an n x n ``lattice``."""

    engine: str
    scheme: str
    sequence: str
    device: str
    dtype: str
    lattice: int
    batch: int
    steps: int
    compiled: bool
    seconds: float
    spin_steps_per_s: float
    speedup_vs_reference: float | None
    speedup_vs_baseline: float | None
    speedup_vs_explicit: float | None
    projected_paper_s: float | None


def bench_batch(lattice: int, batch: int, steps: int, scheme: Scheme = EXPLICIT, sequence: str = "hahn") -> EchoBatch:
    """``batch`` echoes of ``sequence`` (hahn, cpmg:N, cp:N) of about ``steps`` steps, (2N + 1)
    n_tau with n_tau = steps // (2N + 1): the three paper kernels in turn, alpha_z > 0."""
    periods = EchoParams(lattice=4, tau_us=0.16, sequence=sequence).n_samples  # 2N + 1 at n_tau = 1
    n_tau = max(1, steps // periods)
    kernels = [("gaussian", 8.0), ("power", 2.0), ("rkky", 13.0)]
    params = [
        EchoParams(
            kernel=kernels[i % 3][0], kernel_param=min(kernels[i % 3][1], lattice / 2), alpha_xy=0.05,
            alpha_z=0.03, lattice=lattice, tau_us=0.16 * n_tau, dt_us=0.16, scheme=scheme.name,
            field_every=scheme.field_every, sequence=sequence,
        )
        for i in range(batch)
    ]
    return build_batch(params, [sample_detuning_mhz(i, lattice) for i in range(batch)])


def torch_loop(batch: EchoBatch, device: str = "cpu", dtype: str = "float32") -> np.ndarray:
    """The straightforward batched torch loop (the explicit step, no T2): every step an FFT mean
    field and a Rodrigues rotation, each pulse where it falls, eager. The baseline the engine's
    speed-ups refer to."""
    import torch

    from pyecho.engines.torch_engine import apply_pulse

    real = torch.float32 if dtype == "float32" else torch.float64
    n = batch.lattice
    with torch.inference_mode():
        khat = torch.fft.rfft2(torch.as_tensor(batch.kernel_grid, device=device)).real.to(real)
        alpha = torch.as_tensor(np.stack([batch.alpha_xy, batch.alpha_xy, batch.alpha_z]), dtype=real,
                                device=device).view(3, -1, 1, 1)
        omega = torch.as_tensor(batch.omega, dtype=real, device=device)
        as_t = lambda a: torch.as_tensor(a, dtype=real, device=device).view(-1, 1, 1)  # noqa: E731
        pulses = {}
        for p, k in enumerate(batch.pulse_steps):
            angle, phase = batch.pulse_angle[:, p], batch.pulse_phase[:, p]
            pulses.setdefault(k, []).append((as_t(np.cos(angle)), as_t(np.sin(angle)), as_t(np.cos(phase)),
                                             as_t(np.sin(phase))))
        m = torch.zeros((3, batch.size, n, n), dtype=real, device=device)
        m[2] = 0.5
        out = torch.empty((batch.n_steps, batch.size), dtype=torch.complex128, device=device)
        for k in range(batch.n_steps):
            for pulse in pulses.get(k, ()):
                m = apply_pulse(m, *pulse)
            f = torch.fft.irfft2(torch.fft.rfft2(m) * khat, s=(n, n)) * alpha
            b = torch.stack((f[0], f[1], omega + f[2]))
            norm = torch.linalg.vector_norm(b, dim=0).clamp(min=1e-30)
            axis, angle = b / norm, norm * batch.dt_us
            cos, sin = torch.cos(angle), torch.sin(angle)
            m = cos * m + sin * torch.linalg.cross(m, axis, dim=0) + (1 - cos) * (axis * m).sum(0) * axis
            out[k] = torch.complex(m[0].mean((1, 2)).double(), m[1].mean((1, 2)).double())
        return out.T.cpu().numpy()


@contextmanager
def torch_compile_policy(policy: str):
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


def best_time(run: Callable[[], object], repeats: int = 2) -> float:
    """Best wall time (s) of ``repeats`` calls of ``run`` after one warm-up call (FFT plans,
    torch.compile, allocator)."""
    run()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def run_bench(
    engines: Sequence[str] = ("numpy", "torch", "julia"),
    lattices: Sequence[int] = (16, 32, 64, 100),
    batch_sizes: Sequence[int] = (8, 32),
    schemes: Sequence[Scheme] = (EXPLICIT, Scheme("extrapolated", 4)),
    device: str = "auto",
    dtype: str = "float32",
    steps: int = 150,
    reference_steps: int = 15,
    torch_compile: Sequence[str] = ("never", "always"),
    baseline: bool = True,
    on_row: Callable[[BenchRow], None] | None = None,
    sequence: str = "hahn",
) -> tuple[list[BenchRow], list[str]]:
    """Measure every available engine; returns the rows and notes on what was skipped.

    torch runs once per entry of ``torch_compile`` ("never": eager, "always": torch.compile,
    which large `pyecho sim` runs use) and per scheme; ``baseline`` adds the straightforward
    torch loop (:func:`torch_loop`) at every lattice and batch size. The reference runs the
    explicit scheme once per lattice (batch 1, ``reference_steps`` steps: its cost per spin-step
    depends on neither) and only up to REFERENCE_MAX_LATTICE. Every run records ``sequence``
    (hahn, cpmg:N or cp:N: a train's pulses and segments in the measured time).
    """
    try:
        EchoParams(lattice=4, sequence=sequence)
    except ParameterError as exc:
        raise ParameterError(f"sequence: {exc}") from None
    for name, value in (("steps", steps), ("reference_steps", reference_steps)):
        if value < 3:
            raise ParameterError(f"{name}: got {value}; must be >= 3 (one step per pulse period)")
    if not lattices or any(n < 2 for n in lattices):
        raise ParameterError(f"lattices: got {list(lattices)}; every lattice must be >= 2")
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ParameterError(f"batch_sizes: got {list(batch_sizes)}; every batch size must be >= 1")
    if not torch_compile or set(torch_compile) - {"never", "always"}:
        raise ParameterError(f"torch_compile: got {tuple(torch_compile)}; use 'never' and/or 'always'")
    if not schemes:
        raise ParameterError("schemes: got none; give at least one")
    device = resolve_device(device)
    rows: list[BenchRow] = []
    notes: list[str] = []
    rate_of: dict[tuple, float] = {}

    def add(engine: str, scheme: Scheme, lattice: int, batch: int, n_steps: int, compiled: bool, run_dtype: str,
            engine_device: str, seconds: float) -> None:
        rate = batch * lattice * lattice * n_steps / seconds
        rate_of[(engine, scheme.label, compiled, lattice, batch)] = rate
        ref = rate_of.get(("numpy", EXPLICIT.label, False, lattice, 1))
        base = rate_of.get((BASELINE, EXPLICIT.label, False, lattice, batch))
        explicit = rate_of.get((engine, EXPLICIT.label, compiled, lattice, batch))
        row = BenchRow(
            engine=engine, scheme=scheme.label, sequence=sequence, device=engine_device, dtype=run_dtype, lattice=lattice, batch=batch,
            steps=n_steps, compiled=compiled, seconds=seconds, spin_steps_per_s=rate,
            speedup_vs_reference=rate / ref if ref and engine != "numpy" else None,
            speedup_vs_baseline=rate / base if base and engine != BASELINE else None,
            speedup_vs_explicit=rate / explicit if explicit and scheme != EXPLICIT else None,
            projected_paper_s=PAPER_SPIN_STEPS / rate if lattice == 100 else None,
        )
        rows.append(row)
        if on_row is not None:
            on_row(row)

    order = ["numpy", *([BASELINE] if baseline and "torch" in engines else []), *(e for e in engines if e != "numpy")]
    for engine_name in dict.fromkeys(e for e in order if e == BASELINE or e in engines):
        is_baseline = engine_name == BASELINE
        engine_device = "cpu" if engine_name == "numpy" else device
        reason = availability("torch" if is_baseline else engine_name, engine_device)
        if reason is not None:
            notes.append(f"{engine_name}/{engine_device} skipped: {reason}")
            continue
        for lattice in lattices:
            if engine_name == "numpy":
                if lattice > REFERENCE_MAX_LATTICE:
                    notes.append(f"numpy reference skipped at lattice {lattice} (> {REFERENCE_MAX_LATTICE}: N^2 memory)")
                    continue
                problem = bench_batch(lattice, 1, reference_steps, sequence=sequence)
                seconds = best_time(lambda: get_engine("numpy").run(problem), repeats=1)
                add("numpy", EXPLICIT, lattice, 1, problem.n_steps, False, "float64", "cpu", seconds)
                continue
            for batch in batch_sizes:
                if is_baseline:
                    problem = bench_batch(lattice, batch, steps, sequence=sequence)
                    seconds = best_time(lambda: torch_loop(problem, engine_device, dtype))
                    add(BASELINE, EXPLICIT, lattice, batch, problem.n_steps, False, dtype, engine_device, seconds)
                    continue
                engine = get_engine(engine_name, engine_device)
                modes = tuple(torch_compile) if engine_name == "torch" else ("never",)
                for mode in modes:
                    for scheme in dict.fromkeys((EXPLICIT, *schemes)) if EXPLICIT in schemes else schemes:
                        problem = bench_batch(lattice, batch, steps, scheme, sequence)
                        with torch_compile_policy(mode):
                            seconds = best_time(lambda: engine.run(problem, device=engine_device, dtype=dtype))
                        add(engine_name, scheme, lattice, batch, problem.n_steps, mode == "always", dtype,
                            engine_device, seconds)
    return rows, notes


@dataclass(frozen=True)
class StepProfile:
    """Where one compiled torch block's time goes (seconds per step, batch x lattice^2 sites).

    ``fft_s``: the mean field (two real FFTs and the kernel product) per evaluation, divided by
    field_every; ``site_update_s``: the block's fused per-site work per step (rotation,
    relaxation, magnetisation sums; the block time minus its FFT); ``overhead_s``: the same block
    on a 2 x 2 lattice, i.e. the per-call Python and dispatch cost, per step.
    """

    lattice: int
    batch: int
    scheme: str
    fft_s: float
    site_update_s: float
    overhead_s: float

    @property
    def step_s(self) -> float:
        return self.fft_s + self.site_update_s


def profile_torch_step(lattice: int = 100, batch: int = 32, scheme: Scheme = Scheme("extrapolated", 4),
                       dtype: str = "float32", repeats: int = 20) -> StepProfile:
    """Time the parts of the compiled torch block on the CPU (see :class:`StepProfile`)."""
    import torch

    from pyecho.engines import torch_engine

    real = torch.float32 if dtype == "float32" else torch.float64

    def inputs(n: int):
        problem = bench_batch(n, batch, 3, scheme)
        m = torch.zeros((3, batch, n, n), dtype=real)
        m[1], m[2] = -0.5, 1e-3
        khat = torch.fft.rfft2(torch.as_tensor(problem.kernel_grid)).real.to(real).contiguous()
        alpha = torch.full((3, batch, 1, 1), 0.05, dtype=real)
        omega = torch.as_tensor(problem.omega, dtype=real)
        prev = torch.zeros_like(m) if scheme.name == "extrapolated" else None
        weight = torch.full((), 1.0 / scheme.field_every, dtype=real)
        return m, prev, weight, khat, alpha, omega

    with torch.inference_mode(), torch_compile_policy("always"):
        compiled = torch_engine._block_function(math.inf)
        timings = {}
        for n in (lattice, 2):
            m, prev, weight, khat, alpha, omega = inputs(n)
            call = lambda: compiled(m, prev, weight, khat, alpha, omega, None, 0.16, scheme.field_every)  # noqa: E731
            timings[n] = best_time(lambda: [call() for _ in range(repeats)]) / repeats
        m, _, _, khat, alpha, _ = inputs(lattice)
        fft = best_time(lambda: [torch_engine.mean_field(m, khat, alpha) for _ in range(repeats)]) / repeats
    k = scheme.field_every
    return StepProfile(lattice, batch, scheme.label, fft / k, (timings[lattice] - fft) / k, timings[2] / k)


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


# ---- the shape of pyecho fit's simulations ------------------------------------------------------
@dataclass(frozen=True)
class FitShapeRow:
    """One of a fit's simulation shapes: ``points`` parameter points x ``draws`` detuning draws of
    the whole protocol (``site_groups`` > 1: the error model's grouped records), simulated as
    one engine call per measurement (``one_call``) or one call per point, on ``threads`` torch
    threads in ``dtype``; its wall time and spin-steps/s."""

    shape: str
    points: int
    draws: int
    site_groups: int
    dtype: str
    threads: int
    one_call: bool
    seconds: float
    spin_steps_per_s: float


def run_fit_bench(lattice: int = 64, protocol: str | None = None, *, threads: Sequence[int] = (1, 2),
                  device: str = "auto", on_row: Callable[[FitShapeRow], None] | None = None) -> list[FitShapeRow]:
    """Time the shapes of one family's fit (pyecho.fit.estimate) on the `range` prior at ``lattice``
    (``protocol`` overrides its measurements), with the fit's default draw counts
    (pyecho.fit.defaults): a residual (1 point x the mean's 4 draws, float32), a forward-difference
    Jacobian (7 points) on the 2 steering draws in float32 and on the mean's 4 in float64, as one
    engine call per measurement against a call per point, the error model's grouped draws (8
    draws, site groups) and plain ones (64), and the check draws (32), each on every thread count
    of ``threads``; compiled torch."""
    import torch

    from pyecho.data.sampling import PRESETS
    from pyecho.fit.defaults import FIT_CHECK_DRAWS, FIT_DRAWS, FIT_MEAN_DRAWS, FIT_MORE_DRAWS, FIT_STEERING_DRAWS
    from pyecho.fit.forward import DetuningDraws, Engine, simulate_points
    from pyecho.fit.problem import default_site_groups
    from pyecho.fit.space import FamilySpace
    from pyecho.physics.protocol import RecordGrid

    config = PRESETS["range"].replace(lattice=lattice, **({"protocol": protocol} if protocol else {}))
    grid = RecordGrid(config.protocol, config.dt_us)
    space = FamilySpace("gaussian", config)
    x = space.point(kernel_param=12.0)
    steps = sum(grid.lengths[r] for r in config.protocol.sources(config.dt_us))
    engine = Engine(device=resolve_device(device))
    groups = default_site_groups(lattice)
    shapes = [("residual", 1, FIT_MEAN_DRAWS, 1, "float32", (True,)),
              ("Jacobian", 7, FIT_STEERING_DRAWS, 1, "float32", (True, False)),
              ("Jacobian", 7, FIT_MEAN_DRAWS, 1, "float64", (True, False)),
              ("error model", 1, FIT_DRAWS, groups, "float32", (True,)),
              ("error model, plain", 1, FIT_MORE_DRAWS, 1, "float32", (True,)),
              ("check draws", 1, FIT_CHECK_DRAWS, 1, "float32", (True,))]
    saved = torch.get_num_threads()
    rows = []
    try:
        with torch_compile_policy("always"):
            for n_threads in threads:
                torch.set_num_threads(n_threads)
                for label, points, n_draws, site_groups, dtype, modes in shapes:
                    draws = DetuningDraws.draw(n_draws, lattice, config.linewidth_khz)
                    X = np.repeat(x[None], points, axis=0)
                    run_engine = engine.at(dtype)
                    for one_call in modes:
                        def run():
                            if one_call:
                                return simulate_points(space, grid, X, draws, site_groups=site_groups, engine=run_engine)
                            return [simulate_points(space, grid, p, draws, engine=run_engine) for p in X]

                        seconds = best_time(run, repeats=1)
                        rate = points * n_draws * lattice**2 * steps / seconds
                        row = FitShapeRow(label, points, n_draws, site_groups, dtype, n_threads, one_call, seconds,
                                          rate)
                        rows.append(row)
                        if on_row is not None:
                            on_row(row)
    finally:
        torch.set_num_threads(saved)
    return rows
