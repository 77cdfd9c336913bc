"""How close each integration scheme comes to the converged echo, and its order in dt.

Every scheme and step dt is compared with one reference run of the second-order scheme
(extrapolated, a field evaluation every step) at ``dt_min / refine`` on the same detunings, at
the times both grids share (multiples of dt). The error of a run is max_k |M(t_k) - M_ref(t_k)|;
the observed order is the least-squares slope of log(error) against log(dt).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from pyecho.physics.detuning import sample_detuning_mhz
from pyecho.physics.params import EchoParams, ParameterError
from pyecho.simulate import simulate_batch

#: the reference's scheme: second order with the fewest approximations (a field every step)
REFERENCE_SCHEME = ("extrapolated", 1)


@dataclass(frozen=True)
class ConvergencePoint:
    """One run: ``max_abs_error`` of M against the reference at step ``dt_us``."""

    kernel: str
    scheme: str
    field_every: int
    dt_us: float
    max_abs_error: float

    @property
    def label(self) -> str:
        return self.scheme if self.scheme == "explicit" else f"{self.scheme}:{self.field_every}"

    @property
    def ffts_per_step(self) -> float:
        return 1.0 / self.field_every


@dataclass(frozen=True)
class ConvergenceStudy:
    """All runs of :func:`convergence_study` and what they were run on."""

    points: tuple[ConvergencePoint, ...]
    base: EchoParams
    reference_dt_us: float

    def order(self, kernel: str, label: str) -> float:
        """Observed order of convergence: slope of log(error) vs log(dt)."""
        pts = [p for p in self.points if p.kernel == kernel and p.label == label]
        x = np.log([p.dt_us for p in pts])
        y = np.log([p.max_abs_error for p in pts])
        return float(np.polyfit(x, y, 1)[0])

    def error(self, kernel: str, label: str, dt_us: float) -> float:
        return next(p.max_abs_error for p in self.points
                    if p.kernel == kernel and p.label == label and math.isclose(p.dt_us, dt_us))

    @property
    def kernels(self) -> list[str]:
        return list(dict.fromkeys(p.kernel for p in self.points))

    @property
    def labels(self) -> list[str]:
        return list(dict.fromkeys(p.label for p in self.points))

    @property
    def dts(self) -> list[float]:
        return sorted({p.dt_us for p in self.points}, reverse=True)


def convergence_study(
    base: EchoParams,
    kernels: Sequence[tuple[str, float]],
    schemes: Sequence[tuple[str, int]],
    dts_us: Sequence[float],
    *,
    refine: int = 8,
    seed: int = 0,
    backend: str = "torch",
    device: str = "cpu",
    on_point: Callable[[ConvergencePoint], None] | None = None,
) -> ConvergenceStudy:
    """Run every (kernel, scheme, dt) of a Hahn echo like ``base`` and measure its error.

    ``kernels``: (kernel, kernel_param) pairs; ``schemes``: (scheme, field_every) pairs; every
    dt must divide ``base.tau_us`` (so the pulse sits on every grid). float64 throughout.
    """
    if refine < 2:
        raise ParameterError(f"refine: got {refine}; must be >= 2")
    if len(dts_us) < 2:
        raise ParameterError(f"dts_us: got {list(dts_us)}; need at least two steps to measure an order")
    dt_ref = min(dts_us) / refine
    detuning = sample_detuning_mhz(seed, base.lattice, base.linewidth_khz, center_khz=base.center_khz)
    for dt in (*dts_us, dt_ref):
        n = base.tau_us / dt
        if abs(n - round(n)) > 1e-9 * n:
            raise ParameterError(f"dts_us: {dt:g} us does not divide tau_us = {base.tau_us:g} us")
    # every kernel of one (scheme, dt) in one batch: same grid, own kernel
    kernel_params = [base.replace(kernel=kernel, kernel_param=value) for kernel, value in kernels]

    def run(dt: float, scheme: str, k: int) -> np.ndarray:
        return simulate_batch([p.replace(dt_us=dt, scheme=scheme, field_every=k) for p in kernel_params],
                              backend=backend, device=device, detunings_mhz=[detuning] * len(kernel_params),
                              dtype="float64")

    reference = run(dt_ref, *REFERENCE_SCHEME)
    points = []
    for scheme, k in schemes:
        for dt in dts_us:
            stride = round(dt / dt_ref)
            errors = np.max(np.abs(run(dt, scheme, k) - reference[:, stride - 1::stride]), axis=1)
            for params, error in zip(kernel_params, errors):
                point = ConvergencePoint(params.kernel, scheme, params.replace(scheme=scheme, field_every=k).field_every,
                                         dt, float(error))
                points.append(point)
                if on_point is not None:
                    on_point(point)
    return ConvergenceStudy(tuple(points), base, dt_ref)


def plot_convergence(study: ConvergenceStudy, path) -> None:
    """One log-log panel per kernel: error vs dt for every scheme, with its observed order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pyecho.atomic import atomic_path

    kernels = study.kernels
    fig, axes = plt.subplots(1, len(kernels), figsize=(4.2 * len(kernels), 3.8), sharey=True, constrained_layout=True)
    axes = np.atleast_1d(axes)
    for ax, kernel in zip(axes, kernels):
        for label in study.labels:
            dts = study.dts
            errs = [study.error(kernel, label, dt) for dt in dts]
            style = "--" if label == "explicit" else "-"
            ax.loglog(dts, errs, style, marker="o", ms=4, label=f"{label} (order {study.order(kernel, label):.2f})")
        ax.set_title(f"{kernel}", fontsize=10)
        ax.set_xlabel("dt (µs)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(r"max$_t$ |M − M$_{ref}$|")
    b = study.base
    fig.suptitle(f"{b.lattice}×{b.lattice}, α_xy = {b.alpha_xy:g}, α_z = {b.alpha_z:g} rad/µs, τ = {b.tau_us:g} µs; "
                 f"reference: extrapolated:1 at dt = {study.reference_dt_us:g} µs", fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
