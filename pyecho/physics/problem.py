"""EchoBatch: the arrays every engine consumes, built once from EchoParams and detunings.

Engines never see seeds or kernel formulas: only this batch. Keeping its construction in one
place is what makes the engines comparable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pyecho.physics.kernels import normalized_kernel_grid
from pyecho.physics.params import EchoParams, ParameterError


@dataclass(frozen=True)
class EchoBatch:
    """B simulations that share lattice, n_tau and dt_us.

    Arrays (float64): ``omega`` (B, n, n) angular detunings 2 pi Delta-nu (rad/us);
    ``kernel_grid`` (B, n, n) K/kappa on the displacement grid; ``alpha_xy``, ``alpha_z``,
    ``theta``, ``coherence_decay`` (B,), the latter exp(-dt/T2) or 1 without relaxation.
    """

    params: tuple[EchoParams, ...]
    omega: np.ndarray
    kernel_grid: np.ndarray
    alpha_xy: np.ndarray
    alpha_z: np.ndarray
    theta: np.ndarray
    coherence_decay: np.ndarray
    lattice: int
    n_tau: int
    dt_us: float

    @property
    def size(self) -> int:
        return len(self.params)

    @property
    def n_samples(self) -> int:
        return 3 * self.n_tau

    def subset(self, start: int, stop: int) -> "EchoBatch":
        """Simulations start..stop-1 as their own batch (for memory-bounded chunking)."""
        s = slice(start, stop)
        return EchoBatch(
            self.params[s], self.omega[s], self.kernel_grid[s], self.alpha_xy[s], self.alpha_z[s],
            self.theta[s], self.coherence_decay[s], self.lattice, self.n_tau, self.dt_us,
        )


def time_grid_key(p: EchoParams) -> tuple[int, int, float]:
    """Simulations with equal keys can share one batch."""
    return (p.lattice, p.n_tau, p.dt_us)


def build_batch(params: Sequence[EchoParams], detunings_mhz: Sequence[np.ndarray]) -> EchoBatch:
    """Assemble the engine input; all params must share lattice, n_tau and dt_us."""
    params = tuple(params)
    if not params:
        raise ParameterError("params: got an empty list; need at least one EchoParams")
    keys = {time_grid_key(p) for p in params}
    if len(keys) != 1:
        raise ParameterError(
            f"params: got {len(keys)} different (lattice, n_tau, dt_us) combinations; one batch needs one"
        )
    n = params[0].lattice
    omega = np.empty((len(params), n, n))
    for b, d in enumerate(detunings_mhz):
        d = np.asarray(d, dtype=np.float64)
        if d.shape != (n, n):
            raise ParameterError(f"detuning_mhz: got shape {d.shape}; must be ({n}, {n}) for lattice {n}")
        if not np.all(np.isfinite(d)):
            raise ParameterError("detuning_mhz: contains NaN or inf; must be finite (MHz)")
        omega[b] = 2.0 * np.pi * d
    kernel_grid = np.stack([normalized_kernel_grid(p.kernel, p.kernel_param, n) for p in params])
    dt = params[0].dt_us
    return EchoBatch(
        params=params,
        omega=omega,
        kernel_grid=kernel_grid,
        alpha_xy=np.array([p.alpha_xy for p in params]),
        alpha_z=np.array([p.alpha_z for p in params]),
        theta=np.array([p.theta for p in params]),
        coherence_decay=np.array([1.0 if p.t2_us is None else np.exp(-dt / p.t2_us) for p in params]),
        lattice=n,
        n_tau=params[0].n_tau,
        dt_us=dt,
    )
