"""Information limits: the Cramér-Rao bound of every parameter, for any protocol, lattice and SNR.

At a parameter point x of a family, the bound is what the records themselves allow: the inverse
Fisher information of the binned records (pyecho.fit.forward) under their error model
(pyecho.fit.error_model) -- complex white noise at the given SNR (pyecho.data.records'
definition: σ = the largest first-sample |M| of the noise-free records over the SNR), the
receiver's dead time, a free complex gain per measurement (profiled out), and the scatter of
the lattice's own detuning draw as a full covariance. Every nuisance the prior draws (T2, the
carrier offset, Γ₁) is a free parameter. The Jacobian is the same finite difference of the
same whitened residual the fit uses (pyecho.fit.problem), central here, every point on the
same draws; the model's mean is taken as exact (``mean_draws=None``): the bound is the
records', not an estimator's. Derived quantities follow by the delta method: L through dL/dk,
W = 2 alpha_xy + alpha_z, T2 = exp(log T2).

:func:`bound_map` evaluates it across each family's prior: along its kernel parameter, the
other parameters at the prior's middle.

The family is a discrete parameter, with no Fisher information; what the records tell of it is
how far one family's records lie from the nearest of another's (:func:`family_separation`): the
squared whitened distance D² between the two mean records under the same error model, the
variance V of the likelihood-ratio statistic along that gap measured against independent draws
(the error model under-states the scatter along some directions), and Φ(−D²/2√V), the measured
error of the likelihood-ratio test between the two points: the records tell them apart at least
that well (:func:`separation_map`: across the prior).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from scipy.stats import norm

from pyecho.atomic import atomic_path
from pyecho.fit.defaults import BOUND_DRAWS, BOUND_MEAN_DRAWS, BOUND_MORE_DRAWS
from pyecho.fit.error_model import ErrorModel, Scatter, least_squares_covariance, real_stack
from pyecho.fit.forward import (CHECK_DRAWS, DEFAULT_BIN_SIZE, SCATTER_DTYPE, Binning, DetuningDraws, Engine,
                                simulate_points)
from pyecho.fit.problem import RecordProblem, default_site_groups, draw_deviations, scatter_at
from pyecho.fit.space import ALPHA_XY, ALPHA_Z, KERNEL_PARAM, LOG_T2, FamilySpace
from pyecho.physics.protocol import DEFAULT_DEAD_TIME_US, RecordGrid

#: the quantities a bound reports beside the fitted coordinates
DERIVED = ("L", "W", "t2_us")
#: the nearest record of another family: kernel-parameter values scanned, and residual
#: evaluations of each minimisation (more than a fit's: the distance is the answer, not a start)
SEPARATION_SCAN_POINTS, SEPARATION_EVALUATIONS = 7, 20
#: independent draws a separation's variance is measured against (as a fit's sandwich is)
SEPARATION_CHECK_DRAWS = 32


@dataclass(frozen=True)
class BoundSettings:
    """How a bound is computed: draws for the scatter (with site groups, ``draws``, and plain,
    ``more_draws``: the collective part of the scatter has many more directions than a few draws
    span, and a bound from too few is optimistic; docs/fit.md measures how it converges) and for
    the mean, bin size, dead time (µs), the draws' seed, independent draws a family separation's
    variance is measured against (``check_draws``), the engine."""

    draws: int = BOUND_DRAWS
    more_draws: int = BOUND_MORE_DRAWS
    mean_draws: int = BOUND_MEAN_DRAWS
    bin_size: int = DEFAULT_BIN_SIZE
    dead_time_us: float = DEFAULT_DEAD_TIME_US
    seed: int = 0
    check_draws: int = SEPARATION_CHECK_DRAWS
    engine: Engine = Engine()


@dataclass(frozen=True)
class Bound:
    """The Cramér-Rao bound at one point of one family.

    kernel, names : the family and its fitted coordinates; x : the point; snr; lattice;
    covariance : (n, n) the bound on the fitted coordinates' covariance;
    sd : name -> Cramér-Rao standard deviation, for every fitted coordinate and for L, W and
    t2_us (µs); value : name -> the point's value of each;
    scatter_share : the share of the error model's total variance that is the detuning draw's
    (the rest is noise)."""

    kernel: str
    names: tuple[str, ...]
    x: np.ndarray = field(repr=False)
    snr: float
    lattice: int
    covariance: np.ndarray = field(repr=False)
    sd: dict
    value: dict
    scatter_share: float


def derived_sd(space: FamilySpace, x: np.ndarray, covariance: np.ndarray) -> tuple[dict, dict]:
    """(sd, value) of every fitted coordinate and of L, W, t2_us at ``x`` from a covariance of
    the fitted coordinates (delta method; a coordinate the prior fixes has sd 0)."""
    names = space.names
    sd = {n: float(math.sqrt(max(covariance[i, i], 0.0))) for i, n in enumerate(names)}
    value = {n: float(v) for n, v in zip(names, x)}
    physical = space.values(x)
    value["L"] = space.length(physical[KERNEL_PARAM])
    sd["L"] = abs(space.length_slope(physical[KERNEL_PARAM])) * sd.get(KERNEL_PARAM, 0.0)
    gradient = np.array([{ALPHA_XY: 2.0, ALPHA_Z: 1.0}.get(n, 0.0) for n in names])
    value["W"] = 2.0 * physical[ALPHA_XY] + physical[ALPHA_Z]
    used = gradient != 0  # an unseen coordinate elsewhere has infinite variance: leave it out of W's
    sd["W"] = float(math.sqrt(max(gradient[used] @ covariance[np.ix_(used, used)] @ gradient[used], 0.0)))
    if "t2_us" in physical:
        value["t2_us"] = physical["t2_us"]
        sd["t2_us"] = value["t2_us"] * sd.get(LOG_T2, 0.0)
    return sd, value


def cramer_rao(space: FamilySpace, grid: RecordGrid, x, snr: float, settings: BoundSettings = BoundSettings(), *,
               draws: DetuningDraws | None = None) -> Bound:
    """The Cramér-Rao bound at point ``x`` of ``space`` for records on ``grid`` at ``snr``
    (inf: no noise, the draw scatter alone). ``draws``: the detuning draws (default: drawn from
    ``settings.seed``; pass the same draws to compare points). A point outside the prior's box
    is a ParameterError: the bound is computed where the fit could go, not at a clipped point."""
    x = space.require_inside(x)
    problem, scatter = _records_at(space, grid, x, snr, settings, draws)
    J = problem.jacobian(x, central=True)
    covariance = least_squares_covariance(J, space.widths)
    sd, value = derived_sd(space, x, covariance)
    scatter_var = float(np.trace(scatter.covariance))
    share = scatter_var / (scatter_var + float(np.sum(problem.error.noise_var)))
    return Bound(space.kernel, space.names, x, float(snr), space.config.lattice, covariance, sd, value, share)


def _records_at(space: FamilySpace, grid: RecordGrid, x: np.ndarray, snr: float, settings: BoundSettings,
                draws: DetuningDraws | None) -> tuple[RecordProblem, Scatter]:
    """The records of point ``x`` as a bound sees them: the problem whose data is the model's own
    noise-free mean (gains 1), under the error model of noise at ``snr`` and the draw scatter at
    ``x``; and that scatter."""
    n = space.config.lattice
    draws = draws or DetuningDraws.draw(settings.draws + settings.more_draws, n, space.config.linewidth_khz,
                                        settings.seed)
    binning = Binning.outside_dead_time(grid, settings.dead_time_us, settings.bin_size)
    grouped, more = draws.split(settings.draws)
    scatter = scatter_at(space, grid, x, grouped, binning, default_site_groups(n), settings.engine,
                         more_draws=more if len(more) else None)
    mean_draws = draws.first(settings.mean_draws)
    first = simulate_points(space, grid, x, mean_draws, engine=settings.engine)
    amplitude = max(float(np.abs(R[0, :, 0].mean())) for R in first)  # the SNR's A0 (pyecho.data.records)
    K = len(grid.protocol)
    error = ErrorModel.build(scatter, np.ones(K, complex), binning.measurement, np.full(K, amplitude / snr),
                             settings.bin_size, mean_draws=None)
    data = binning.apply(first).mean(axis=1)[0]
    problem = RecordProblem(space, grid, binning, data, mean_draws, error, settings.engine)
    problem.seed_mean(x, data)
    return problem, scatter


@dataclass(frozen=True)
class Separation:
    """How far one family's records at a point lie from the nearest records of another family.

    kernel, x : the family and its point; other, x_other : the other family and its point whose
    mean record comes nearest; value, other_value : the two points' physical values and L;
    distance2 : D² = dᵀC⁻¹d, d the difference of the two mean records (every receiver gain
    free), C the error model of records at ``x`` (noise at ``snr`` and the draw scatter);
    variance : V, the variance of dᵀC⁻¹y over records y at x, measured against independent
    draws and the noise (D² if the error model described the scatter along d exactly);
    noise_variance : the noise's part of V; snr; lattice; direction : C⁻¹d (2Nb,: the binned
    records' real parts, then their imaginary parts; gains 1), along which the test looks: a
    record y at x gives the statistic D² + 2 directionᵀ(y − its mean).
    """

    kernel: str
    other: str
    x: np.ndarray = field(repr=False)
    x_other: np.ndarray = field(repr=False)
    value: dict
    other_value: dict
    distance2: float
    variance: float
    noise_variance: float
    snr: float
    lattice: int
    direction: np.ndarray = field(repr=False)

    @property
    def calibrated_distance2(self) -> float:
        """D⁴/V: the squared separation of the likelihood-ratio statistic between the two points
        (its mean D² over its measured sd), the error model's claim discounted by what it
        under-states along d."""
        return self.distance2**2 / self.variance if self.variance > 0 else self.distance2

    @property
    def error_rate(self) -> float:
        """Φ(−D²/2√V): the measured error of the likelihood-ratio test between the two points
        (equal priors, the error model's metric, threshold at its middle). The best test errs
        at most this often, so the records tell the two points apart at least this well."""
        return float(norm.cdf(-0.5 * math.sqrt(max(self.calibrated_distance2, 0.0))))

    @property
    def claimed_error_rate(self) -> float:
        """Φ(−D/2): the least error of any test between the two points if the error model were
        exact (normal records, equal priors)."""
        return float(norm.cdf(-0.5 * math.sqrt(max(self.distance2, 0.0))))


def family_separation(space: FamilySpace, other: FamilySpace, grid: RecordGrid, x, snr: float,
                      settings: BoundSettings = BoundSettings(), *, draws: DetuningDraws | None = None,
                      scan_points: int = SEPARATION_SCAN_POINTS,
                      max_evaluations: int = SEPARATION_EVALUATIONS) -> Separation:
    """The nearest ``other`` family's records come to ``space``'s at point ``x`` (records on
    ``grid`` at ``snr``; draws and error model as :func:`cramer_rao`'s, the other family's mean
    on the same draws). The other family's point is found as a fit finds it: from the point with
    x's shared coordinates and L, its kernel parameter scanned across the prior, trust-region
    least squares of the whitened distance (float32), and the distance at the end in float64.
    The variance along the gap is measured on ``settings.check_draws`` independent draws at x:
    the error model, from a few hundred draws, under-states the scatter along some directions
    (docs/fit.md measures by how much along the gaps)."""
    return separations_at(space, (other,), grid, x, snr, settings, draws=draws, scan_points=scan_points,
                          max_evaluations=max_evaluations)[0]


def separations_at(space: FamilySpace, others, grid: RecordGrid, x, snr: float,
                   settings: BoundSettings = BoundSettings(), *, draws: DetuningDraws | None = None,
                   scan_points: int = SEPARATION_SCAN_POINTS, max_evaluations: int = SEPARATION_EVALUATIONS,
                   on_pair=None) -> tuple[Separation, ...]:
    """:func:`family_separation` of each family in ``others`` from point ``x``: the point's
    records, error model and check draws made once for all of them; ``on_pair()`` after each."""
    x = space.require_inside(x)
    problem, _ = _records_at(space, grid, x, snr, settings, draws)
    value = space.values(x)
    value["L"] = space.length(value[KERNEL_PARAM])
    n = space.config.lattice
    check = DetuningDraws.draw(settings.check_draws, n, space.config.linewidth_khz, settings.seed, CHECK_DRAWS)
    deviations = real_stack(draw_deviations(space, grid, x, check, problem.binning, settings.engine))
    out = []
    for other in others:
        fast = RecordProblem(other, grid, problem.binning, problem.data, problem.draws, problem.error,
                             settings.engine.at(SCATTER_DTYPE))
        best = fast.minimise(other.matching(value, value["L"]), max_evaluations).x
        scanned = fast.scan_kernel_param(best, scan_points)
        if not np.array_equal(scanned, best):
            again = fast.minimise(scanned, max_evaluations).x
            if fast.profile_of(fast.means(again)[0]).chi2 < fast.profile_of(fast.means(best)[0]).chi2:
                best = again
        exact = RecordProblem(other, grid, problem.binning, problem.data, problem.draws, problem.error,
                              settings.engine)
        gap = exact.profile_of(exact.means(best)[0]).residual  # L⁻¹ d
        other_value = other.values(best)
        other_value["L"] = other.length(other_value[KERNEL_PARAM]) if KERNEL_PARAM in other_value else math.nan
        out.append(Separation(space.kernel, other.kernel, x, best, value, other_value, float(gap @ gap),
                              problem.error.variance_along(gap, deviations),
                              problem.error.noise_along(gap), float(snr), n,
                              problem.error.direction(gap)))
        if on_pair is not None:
            on_pair()
    return tuple(out)


def prior_sd(space: FamilySpace) -> dict:
    """The prior's standard deviation of every fitted coordinate (uniform in its range) and of L
    (the kernel parameter uniform in its range), W and t2_us: what a bound is measured against."""
    out = {p.name: p.width / math.sqrt(12.0) for p in space.parameters}
    grid = np.linspace(space.ranges[0].lo, space.ranges[0].hi, 257)
    out["L"] = float(np.std([space.length(k) for k in grid]))
    if ALPHA_XY in out and ALPHA_Z in out:
        out["W"] = math.sqrt(4 * out[ALPHA_XY] ** 2 + out[ALPHA_Z] ** 2)  # the W window narrows it a little
    if LOG_T2 in space.names:
        log_t2 = space.parameters[space.index(LOG_T2)]
        out["t2_us"] = float(np.std(np.exp(np.linspace(log_t2.lo, log_t2.hi, 257))))
    return out


@dataclass(frozen=True)
class BoundMap:
    """Bounds along each family's kernel parameter (the other parameters at the prior's middle):
    ``bounds`` in order of family, then kernel parameter."""

    bounds: tuple[Bound, ...]
    snr: float
    protocol: str
    lattice: int

    def family(self, kernel: str) -> tuple[Bound, ...]:
        return tuple(b for b in self.bounds if b.kernel == kernel)

    def rms_sd(self, kernel: str, name: str) -> float:
        """The root mean square of ``name``'s Cramér-Rao sd over the family's points: the bound on
        an unbiased estimator's RMSE over the map, the scale a model's RMSE is set against."""
        return float(math.sqrt(np.mean([b.sd[name] ** 2 for b in self.family(kernel)])))

    def to_rows(self) -> list[dict]:
        """One dict per bound: family, point, and each quantity's value and Cramér-Rao sd."""
        rows = []
        for b in self.bounds:
            row = {"kernel": b.kernel, "snr": b.snr, "lattice": b.lattice, "protocol": self.protocol,
                   "scatter_share": b.scatter_share}
            for name in (*b.names, *DERIVED):
                if name in b.sd:
                    row[name], row[f"{name}_sd"] = b.value[name], b.sd[name]
            rows.append(row)
        return rows


def map_points(space: FamilySpace, points: int) -> list[np.ndarray]:
    """``points`` points across the family's prior: its kernel parameter evenly spaced (ends
    excluded by half a step), the other coordinates at the prior's middle."""
    if KERNEL_PARAM not in space.names:
        return [space.center()]
    lo, hi = space.ranges[0].lo, space.ranges[0].hi
    step = (hi - lo) / points
    return [space.point(kernel_param=k) for k in lo + step * (np.arange(points) + 0.5)]


def bound_map(spaces: dict[str, FamilySpace], grid: RecordGrid, snr: float, points: int = 5,
              settings: BoundSettings = BoundSettings(), on_point=None) -> BoundMap:
    """:func:`cramer_rao` at :func:`map_points` of each family, the same draws everywhere;
    ``on_point()`` is called after each."""
    bounds = []
    draws = _map_draws(spaces, settings)
    for space in spaces.values():
        for x in map_points(space, points):
            bounds.append(cramer_rao(space, grid, x, snr, settings, draws=draws))
            if on_point is not None:
                on_point()
    first = next(iter(spaces.values()))
    return BoundMap(tuple(bounds), float(snr), grid.protocol.text, first.config.lattice)


def separation_map(spaces: dict[str, FamilySpace], grid: RecordGrid, snr: float, points: int = 5,
                   settings: BoundSettings = BoundSettings(), on_point=None) -> tuple[Separation, ...]:
    """:func:`family_separation` of every other family from :func:`map_points` of each family,
    the same draws everywhere; ``on_point()`` is called after each separation."""
    out = []
    draws = _map_draws(spaces, settings)
    for kernel, space in spaces.items():
        others = [s for k, s in spaces.items() if k != kernel]
        for x in map_points(space, points):
            out += separations_at(space, others, grid, x, snr, settings, draws=draws, on_pair=on_point)
    return tuple(out)


def _map_draws(spaces: dict[str, FamilySpace], settings: BoundSettings) -> DetuningDraws:
    config = next(iter(spaces.values())).config
    return DetuningDraws.draw(settings.draws + settings.more_draws, config.lattice, config.linewidth_khz,
                              settings.seed)


def separation_rows(separations) -> list[dict]:
    """One dict per separation: both families, their points' kernel parameter and L, D², V, D⁴/V
    and the two error rates."""
    return [{"kernel": s.kernel, "kernel_param": s.value.get(KERNEL_PARAM, math.nan), "L": s.value["L"],
             "other": s.other, "other_kernel_param": s.other_value.get(KERNEL_PARAM, math.nan),
             "other_L": s.other_value["L"], "distance2": s.distance2, "variance": s.variance,
             "calibrated_distance2": s.calibrated_distance2, "error_rate": s.error_rate,
             "claimed_error_rate": s.claimed_error_rate, "snr": s.snr, "lattice": s.lattice} for s in separations]


def write_bound_map(result: BoundMap, out: str | Path) -> tuple[Path, Path]:
    """``limits.parquet`` and ``limits.csv`` in folder ``out``: one row per point (atomically)."""
    return _write_rows(result.to_rows(), Path(out) / "limits")


def write_separations(separations, out: str | Path) -> tuple[Path, Path]:
    """``separation.parquet`` and ``separation.csv`` in folder ``out``: one row per pair (atomically)."""
    return _write_rows(separation_rows(separations), Path(out) / "separation")


def _write_rows(rows: list[dict], stem: Path) -> tuple[Path, Path]:
    frame = pl.DataFrame(rows)
    paths = stem.with_suffix(".parquet"), stem.with_suffix(".csv")
    with atomic_path(paths[0]) as tmp:
        frame.write_parquet(tmp)
    with atomic_path(paths[1]) as tmp:
        frame.write_csv(tmp)
    return paths
