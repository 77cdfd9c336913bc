"""One record against one family: the residual and Jacobian the fit minimises and the bound uses.

:class:`RecordProblem` holds a binned record, its error model and the simulator at a set of
detuning draws; ``residual(x)`` is the whitened part of the record that no gain of the model
at point x explains (pyecho.fit.error_model.profile), and ``jacobian(x)`` its finite-difference
derivative in the fitted coordinates, every point on the same draws. The Cramér-Rao bound
(pyecho.fit.limits) is the inverse of JᵀJ at the truth with the record replaced by the model's
own noise-free mean; the fit's intervals are the same at its optimum: one residual, one
Jacobian, one error model.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from pyecho.fit.error_model import ErrorModel, Profile, Scatter, profile, real_stack
from pyecho.fit.forward import SCATTER_DTYPE, Binning, DetuningDraws, Engine, simulate_points
from pyecho.fit.space import KERNEL_PARAM, FamilySpace
from pyecho.physics.protocol import RecordGrid

#: finite-difference steps as a fraction of each parameter's prior width, by precision: in
#: float64 the difference quotient is the derivative to ~1e-3; float32's rounding needs the
#: larger step (still ~40 % off for Γ₁: good enough to steer the optimiser, not for the
#: covariance, which is always made in float64; docs/fit.md measures both)
FD_STEP = {"float64": 2e-3, "float32": 1e-2}


@dataclass
class RecordProblem:
    """A binned record (``data`` (Nb,) complex, record units) against ``space``'s simulator.

    ``draws``: the detuning draws of the model's mean (every point); ``error``: the current
    error model (replaced when the covariance is re-estimated). ``engine``: where the
    simulations run. Simulated means are cached per point.
    """

    space: FamilySpace
    grid: RecordGrid
    binning: Binning
    data: np.ndarray
    draws: DetuningDraws
    error: ErrorModel
    engine: Engine = Engine()
    simulations: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.measurement = self.binning.measurement
        self.n_measurements = len(self.grid.protocol)
        self.white_data = self.error.whiten(real_stack(self.data))

    def set_error(self, error: ErrorModel) -> None:
        self.error = error
        self.white_data = error.whiten(real_stack(self.data))

    def means(self, X, n_draws: int | None = None) -> np.ndarray:
        """The binned model records (P, Nb) at points X (P, n_params), each the mean over the
        draws (the first ``n_draws`` of them); simulated in one batch (cached points are not
        simulated again)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        draws = self.draws if n_draws is None else self.draws.first(n_draws)
        keys = [(len(draws), x.tobytes()) for x in X]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        if todo:
            records = simulate_points(self.space, self.grid, X[todo], draws, engine=self.engine)
            self.simulations += len(todo) * len(draws)
            binned = self.binning.apply(records).mean(axis=1)  # (P, Nb)
            for i, b in zip(todo, binned):
                self._cache[keys[i]] = b
        return np.stack([self._cache[k] for k in keys])

    def seed_mean(self, x, mean: np.ndarray) -> None:
        """Store ``mean`` as the model record at ``x`` (a mean already simulated elsewhere)."""
        self._cache[len(self.draws), np.asarray(x, dtype=np.float64).tobytes()] = mean

    def profile_of(self, mean: np.ndarray) -> Profile:
        return profile(self.white_data, mean, self.error, self.measurement, self.n_measurements)

    def residual(self, x) -> np.ndarray:
        return self.profile_of(self.means(x)[0]).residual

    def steps(self, x) -> np.ndarray:
        """Signed finite-difference steps: FD_STEP of each prior width, inwards at a bound."""
        h = FD_STEP[self.engine.dtype] * self.space.widths
        return np.where(np.asarray(x) + h > self.space.upper, -h, h)

    def jacobian(self, x, *, central: bool = False, n_draws: int | None = None) -> np.ndarray:
        """d residual / dx (2Nb, n_params) by forward (or central) differences, all points in one
        simulation batch on the same draws (the model's mean over the first ``n_draws``)."""
        x = np.asarray(x, dtype=np.float64)
        h = self.steps(x)
        eye = np.diag(h)
        if central:  # central steps need room on both sides: shrink them near a bound
            room = np.minimum(x - self.space.lower, self.space.upper - x)
            h = np.minimum(np.abs(h), np.maximum(room, 1e-12 * self.space.widths))
            eye = np.diag(h)
            means = self.means(np.vstack([x + eye, x - eye]), n_draws)
            n = len(x)
            cols = [(self.profile_of(means[j]).residual - self.profile_of(means[n + j]).residual) / (2 * h[j])
                    for j in range(n)]
        else:
            means = self.means(np.vstack([x[None], x + eye]), n_draws)
            r0 = self.profile_of(means[0]).residual
            cols = [(self.profile_of(means[1 + j]).residual - r0) / h[j] for j in range(len(x))]
        return np.column_stack(cols)

    def minimise(self, x, max_evaluations: int, steering_draws: int | None = None):
        """scipy's trust-region reflective least squares of :meth:`residual` from ``x``, inside the
        prior's box, in units of the prior widths; its OptimizeResult. ``steering_draws``: the
        Jacobian that steers it is that of the mean over the first of the draws only (None: all)."""
        space = self.space
        return least_squares(self.residual, x, jac=lambda y: self.jacobian(y, n_draws=steering_draws),
                             bounds=(space.lower, space.upper),
                             x_scale=space.widths, method="trf", max_nfev=max_evaluations, ftol=1e-6, xtol=1e-6,
                             gtol=1e-8)

    def scan_kernel_param(self, x, points: int) -> np.ndarray:
        """``x`` with its kernel parameter set to the best of ``points`` values across the prior
        (and its own), the other coordinates held: the residual's valleys along the range are far
        apart."""
        space = self.space
        if points < 1 or KERNEL_PARAM not in space.names:
            return x
        i = space.index(KERNEL_PARAM)
        lo, hi = space.parameters[i].lo, space.parameters[i].hi
        candidates = np.repeat(np.asarray(x, dtype=np.float64)[None], points + 1, axis=0)
        candidates[1:, i] = lo + (hi - lo) * (np.arange(points) + 0.5) / points
        chi2 = [self.profile_of(m).chi2 for m in self.means(candidates)]
        return candidates[int(np.argmin(chi2))]


def scatter_at(space: FamilySpace, grid: RecordGrid, x, draws: DetuningDraws, binning: Binning, site_groups: int,
               engine: Engine = Engine(), more_draws: DetuningDraws | None = None) -> Scatter:
    """The binned records' mean and draw scatter at point ``x`` from one grouped simulation per
    draw (and the plain records of ``more_draws``), in float32."""
    engine = engine.at(SCATTER_DTYPE)
    grouped = simulate_points(space, grid, x, draws, site_groups=site_groups, engine=engine)
    more = None if more_draws is None else binning.apply(simulate_points(space, grid, x, more_draws, engine=engine))[0]
    return Scatter.of(binning.apply(grouped)[0], more)


def draw_deviations(space: FamilySpace, grid: RecordGrid, x, draws: DetuningDraws, binning: Binning,
                    engine: Engine = Engine()) -> np.ndarray:
    """Binned records (M, Nb) of ``draws`` at point ``x`` minus their mean (float32): samples of
    the draw scatter, independent of the model's own draws when ``draws`` are."""
    records = binning.apply(simulate_points(space, grid, x, draws, engine=engine.at(SCATTER_DTYPE)))[0]
    return records - records.mean(axis=0)


def default_site_groups(lattice: int) -> int:
    """Site groups per axis: the largest divisor of the lattice side up to 16 that leaves at least
    four sites per group (16 x 16 = 256 groups on 64 x 64, 10 x 10 on 100 x 100)."""
    return max(g for g in range(1, 17) if lattice % g == 0 and (lattice // g) ** 2 >= 4)
