"""EchoBatch: the arrays every engine consumes, built once from EchoParams and detunings.

Engines never see seeds, kernel formulas, sequence presets or Lindblad rates: only this
batch. Keeping its construction in one place is what makes the engines comparable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pyecho.physics.kernels import normalized_kernel_grid
from pyecho.physics.params import EchoParams, ParameterError


@dataclass(frozen=True)
class EchoBatch:
    """B simulations that share the lattice size, the step grid, the pulse times and the scheme.

    Per-simulation arrays (float64): ``omega`` (B, n, n) angular detunings 2 pi Delta-nu
    (rad/us); ``kernel_grid`` (B, n, n) K/kappa on the index-displacement grid of each
    simulation's geometry; ``alpha_xy``, ``alpha_z`` (B,) couplings (rad/us); ``pulse_angle``,
    ``pulse_phase`` (B, P) rad; ``transverse_decay``, ``longitudinal_decay``,
    ``longitudinal_shift`` (B,): the per-step relaxation map m_xy *= transverse_decay,
    m_z = longitudinal_decay m_z + longitudinal_shift.

    Shared: pulse ``p`` acts after ``pulse_steps[p]`` steps; ``n_steps`` samples are recorded,
    one after every step of ``dt_us``; ``scheme`` and ``field_every`` as in EchoParams;
    ``site_groups`` g: the record is the mean over all sites (g = 1) or, for g > 1, one record
    per interleaved site group (:func:`site_group_means`).
    """

    params: tuple[EchoParams, ...]
    omega: np.ndarray
    kernel_grid: np.ndarray
    alpha_xy: np.ndarray
    alpha_z: np.ndarray
    pulse_angle: np.ndarray
    pulse_phase: np.ndarray
    transverse_decay: np.ndarray
    longitudinal_decay: np.ndarray
    longitudinal_shift: np.ndarray
    lattice: int
    pulse_steps: tuple[int, ...]
    n_steps: int
    dt_us: float
    scheme: str
    field_every: int
    site_groups: int = 1

    @property
    def size(self) -> int:
        return len(self.params)

    @property
    def n_groups(self) -> int:
        """Records per simulation: 1, or g² site groups."""
        return self.site_groups**2

    @property
    def n_samples(self) -> int:
        return self.n_steps

    @property
    def has_relaxation(self) -> bool:
        return not (np.all(self.transverse_decay == 1.0) and np.all(self.longitudinal_decay == 1.0)
                    and np.all(self.longitudinal_shift == 0.0))

    def segments(self) -> list[tuple[int, int, list[int]]]:
        """(first step, end step, pulses applied before the first step) between pulse times.

        The field history of the extrapolated scheme restarts at every segment."""
        starts = sorted(set(self.pulse_steps) | {0})
        ends = [*starts[1:], self.n_steps]
        return [(s, e, [p for p, at in enumerate(self.pulse_steps) if at == s]) for s, e in zip(starts, ends)]

    def subset(self, start: int, stop: int) -> "EchoBatch":
        """Simulations start..stop-1 as their own batch (for memory-bounded chunking)."""
        s = slice(start, stop)
        return EchoBatch(
            self.params[s], self.omega[s], self.kernel_grid[s], self.alpha_xy[s], self.alpha_z[s],
            self.pulse_angle[s], self.pulse_phase[s], self.transverse_decay[s], self.longitudinal_decay[s],
            self.longitudinal_shift[s], self.lattice, self.pulse_steps, self.n_steps, self.dt_us, self.scheme,
            self.field_every, self.site_groups,
        )


def batch_key(p: EchoParams) -> tuple:
    """Simulations with equal keys can share one batch (same lattice, step grid, pulse times, scheme)."""
    plan = p.step_plan()
    return (p.lattice, plan.n_steps, p.dt_us, plan.pulse_steps, p.scheme, p.field_every)


def check_site_groups(site_groups, lattice: int) -> int:
    """``site_groups`` as an int g >= 1 that divides ``lattice`` (ParameterError otherwise)."""
    if isinstance(site_groups, bool) or not isinstance(site_groups, (int, np.integer)) or site_groups < 1:
        raise ParameterError(f"site_groups: got {site_groups!r}; must be an integer >= 1")
    if lattice % site_groups:
        raise ParameterError(f"site_groups: got {site_groups}; must divide the lattice side {lattice} (the groups "
                             "interleave along both axes)")
    return int(site_groups)


def site_group_means(values: np.ndarray, site_groups: int) -> np.ndarray:
    """Means of ``values`` (..., n, n) over the interleaved site groups, shape (..., g²).

    Group a·g + b holds the sites (i, j) with i ≡ a and j ≡ b (mod g), in the index grid of the
    detunings (``omega[b, i, j]``): every group spreads evenly over the lattice, and the mean of
    the group means is the mean over all sites. Each group's record is the mean magnetisation
    of its own n²/g² sites; their spread within one simulation measures how much a record
    moves with the draw of the detunings (pyecho.fit.error_model).
    """
    n = values.shape[-1]
    g = check_site_groups(site_groups, n)
    shaped = values.reshape(*values.shape[:-2], n // g, g, n // g, g)
    return shaped.mean(axis=(-4, -2)).reshape(*values.shape[:-2], g * g)


def build_batch(params: Sequence[EchoParams], detunings_mhz: Sequence[np.ndarray], *, site_groups: int = 1
                ) -> EchoBatch:
    """Assemble the engine input; all params must share one :func:`batch_key`. ``site_groups``
    g > 1 asks the engine for one record per interleaved site group (:func:`site_group_means`)."""
    params = tuple(params)
    if not params:
        raise ParameterError("params: got an empty list; need at least one EchoParams")
    keys = {batch_key(p) for p in params}
    if len(keys) != 1:
        raise ParameterError(
            f"params: got {len(keys)} different (lattice, n_steps, dt_us, pulse steps, scheme, field_every) "
            "combinations; one batch needs one"
        )
    n = params[0].lattice
    site_groups = check_site_groups(site_groups, n)
    omega = np.empty((len(params), n, n))
    for b, d in enumerate(detunings_mhz):
        d = np.asarray(d, dtype=np.float64)
        if d.shape != (n, n):
            raise ParameterError(f"detuning_mhz: got shape {d.shape}; must be ({n}, {n}) for lattice {n}")
        if not np.all(np.isfinite(d)):
            raise ParameterError("detuning_mhz: contains NaN or inf; must be finite (MHz)")
        omega[b] = 2.0 * np.pi * d
    kernel_grid = np.stack([normalized_kernel_grid(p.kernel, p.kernel_param, n, p.geometry) for p in params])
    plans = [p.step_plan() for p in params]
    relax = [p.relaxation() for p in params]
    first = params[0]
    return EchoBatch(
        params=params,
        omega=omega,
        kernel_grid=kernel_grid,
        alpha_xy=np.array([p.alpha_xy for p in params]),
        alpha_z=np.array([p.alpha_z for p in params]),
        pulse_angle=np.array([plan.pulse_angle for plan in plans]),
        pulse_phase=np.array([plan.pulse_phase for plan in plans]),
        transverse_decay=np.array([r.transverse for r in relax]),
        longitudinal_decay=np.array([r.longitudinal for r in relax]),
        longitudinal_shift=np.array([r.shift for r in relax]),
        lattice=n,
        pulse_steps=plans[0].pulse_steps,
        n_steps=plans[0].n_steps,
        dt_us=first.dt_us,
        scheme=first.scheme,
        field_every=first.field_every,
        site_groups=site_groups,
    )
