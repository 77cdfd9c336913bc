"""The simulator fitted to one measured sample: per family, then across families.

For each kernel family still plausible, :func:`fit_family`

1. bins the record (pyecho.fit.forward; missing samples and the dead time after every pulse
   left out) and reads each measurement's noise off the record itself
   (pyecho.data.records.estimate_noise);
2. estimates the error model at the start (pyecho.fit.error_model: the draw scatter from one
   grouped simulation per draw, the gains by least squares);
3. minimises the whitened, gain-profiled residual with scipy's trust-region reflective
   least squares inside the prior's box, on float32 simulations, the Jacobian by forward
   differences on the fit's common detuning draws;
4. estimates the error model again at that optimum, scans the kernel parameter across its prior
   at the optimum's other values (the learned models place W, the alphas and T2 well, the range
   poorly, and the residual's valleys along the range are far apart) and, where a scanned point
   beats the optimum, minimises again from it and keeps the better;
5. at the optimum, in float64: the Jacobian, one Gauss-Newton step, and the covariance of the
   estimate -- measured against independent draws (the sandwich, error_model.sandwich), since
   an error model estimated from a few draws under-states the scatter along exactly the
   directions the parameters move the record (docs/fit.md); (JᵀJ)⁻¹, what the error model
   alone would claim, is kept beside it (inverted as the bound's information is).

:func:`fit_record` does this for every family it is given, fits again from the best family's
optimum each family whose own optimum is clearly worse (:func:`restart_points`: the families
share every coordinate but the kernel's, and a family can settle in a valley that another
family's fit has left), and compares them by their Laplace evidence: the maximum likelihood
under one error model at a time (by default every family's in turn, the readings averaged;
FitSettings.family_rule names the others), calibrated against independent draws, the prior's density over the family's box, and
the posterior volume from the covariance, held within the prior's box; with the prior's family
probabilities, this gives each family's probability. The record *fits* when its χ² under the
chosen family is within what genuine records of the same point give: the χ² of the check draws'
scatter plus simulated noise, after the fit's own directions are taken out (a parametric null;
the record fits where its χ² lies below the null's ``1 - gof_level`` quantile).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm

from pyecho.data.records import estimate_noise
from pyecho.errors import ParameterError
from pyecho.fit.defaults import (DEFAULT_FAMILY_RULE, FAMILY_RULES, FIT_CHECK_DRAWS, FIT_DRAWS, FIT_MEAN_DRAWS,
                                 FIT_MORE_DRAWS, FIT_STEERING_DRAWS)
from pyecho.fit.error_model import (ErrorModel, Profile, least_squares_covariance, plain_gains, profile, real_stack,
                                    sandwich, scaled_pseudo_inverse)
from pyecho.fit.forward import CHECK_DRAWS, DEFAULT_BIN_SIZE, MEAN_DTYPE, SCATTER_DTYPE, Binning, DetuningDraws, Engine
from pyecho.fit.limits import derived_sd
from pyecho.fit.problem import RecordProblem, default_site_groups, draw_deviations, scatter_at
from pyecho.fit.space import KERNEL_PARAM, FamilySpace
from pyecho.physics.protocol import DEFAULT_DEAD_TIME_US, Protocol, RecordGrid

#: the interval level of a fit's estimates
DEFAULT_LEVEL = 0.9
#: the quantities a fit reports with intervals, besides the kernel's own parameter
REPORTED = ("L", "W", "alpha_xy", "alpha_z", "t2_us")
#: a family whose χ² ends more than this above the best family's is fitted again from the best
#: one's optimum: within it, the two likelihoods differ by less than e^0.5 and a better valley
#: could not change the comparison much (restart_points)
RESTART_CHI2 = 1.0


def check_family_rule(rule: str) -> None:
    """ParameterError unless ``rule`` is one of :data:`FAMILY_RULES`."""
    if rule not in FAMILY_RULES:
        raise ParameterError(f"family_rule: got {rule!r}; the rules are {', '.join(FAMILY_RULES)}")


@dataclass(frozen=True)
class FitSettings:
    """How a record is fitted.

    draws : detuning draws of the error model (each simulated once with site groups);
    mean_draws : the first of them that the model's mean (and every derivative) averages;
    more_draws : plain draws added to the error model's collective part (each error model costs
    them once; the collective part has many more directions than a few draws span, and the fit
    weighs the record better with more, docs/fit.md);
    check_draws : independent draws at the optimum, whose spread the estimate's covariance is
    measured against (the sandwich, pyecho.fit.error_model.sandwich); bin_size : samples per
    bin; dead_time_us : left out after every pulse (µs); scan_points : kernel-parameter values
    tried after the first minimisation; max_evaluations : residual evaluations of each
    minimisation; restarts : fit a family again from the best family's optimum where its own
    ends clearly worse (:func:`restart_points`); family_rule : how the families' fits become their
    probabilities (:data:`FAMILY_RULES`); gof_level : a record whose χ² exceeds all but
    this share of its null is marked as not fitting; level : the intervals' level; seed : the
    draws' seed; engine : where the simulations run; steering_draws : the first of the mean's
    draws that the minimiser's Jacobian averages; it only steers the minimisation -- the
    residual, the final Gauss-Newton step and the covariance use every mean draw -- and costs the
    fit (n_params + 1) x steering_draws simulations per iteration.
    """

    draws: int = FIT_DRAWS
    mean_draws: int = FIT_MEAN_DRAWS
    more_draws: int = FIT_MORE_DRAWS
    check_draws: int = FIT_CHECK_DRAWS
    bin_size: int = DEFAULT_BIN_SIZE
    dead_time_us: float = DEFAULT_DEAD_TIME_US
    scan_points: int = 7
    max_evaluations: int = 12
    restarts: bool = True
    family_rule: str = DEFAULT_FAMILY_RULE
    gof_level: float = 0.05
    level: float = DEFAULT_LEVEL
    seed: int = 0
    engine: Engine = Engine()
    steering_draws: int = FIT_STEERING_DRAWS

    def __post_init__(self) -> None:
        if self.mean_draws < 2:
            raise ParameterError(f"mean_draws: got {self.mean_draws}; need at least 2 (their spread is the model's own)")
        if self.draws < self.mean_draws:
            raise ParameterError(f"draws: got {self.draws}; need at least mean_draws ({self.mean_draws}), the draws "
                                 "the model's mean averages")
        if not 1 <= self.steering_draws <= self.mean_draws:
            raise ParameterError(f"steering_draws: got {self.steering_draws}; must be from 1 to mean_draws "
                                 f"({self.mean_draws})")
        if self.more_draws < 0:
            raise ParameterError(f"more_draws: got {self.more_draws}; must be at least 0")
        if self.check_draws < 8:
            raise ParameterError(f"check_draws: got {self.check_draws}; need at least 8 (they measure a covariance)")
        if not 0.5 <= self.level < 1:
            raise ParameterError(f"level: got {self.level}; must be at least 0.5 and below 1")
        check_family_rule(self.family_rule)
        if not 0 < self.gof_level < 0.5:
            raise ParameterError(f"gof_level: got {self.gof_level}; must be in (0, 0.5)")


@dataclass(frozen=True)
class FamilyFit:
    """One family fitted to one record.

    kernel; names : its fitted coordinates; x : the estimate; covariance : its covariance (n, n),
    measured against independent draws (the sandwich); fisher_covariance : what the error model
    alone claims, (JᵀJ)⁻¹ (inverted as a bound is: inf along a direction the record does not
    see); value / sd : name -> estimate and standard deviation of every fitted coordinate and of
    L, W, t2_us (from ``covariance``); chi2 : the whitened residual's squared norm, dof its
    degrees of freedom; chi2_by_measurement : (K,) each measurement's share, n_by_measurement its
    values; gains : (K,) complex receiver gains; simulations, evaluations,
    seconds. The binned record ``data`` (Nb,), its bins' ``times_us`` and ``measurement``, the
    ``model`` record, the error model and ``check_deviations`` (M, 2Nb: the independent draws'
    scatter at the optimum, record units) are kept for the comparison of families and the figure;
    ``null_chi2`` (M,): the χ² genuine records at the optimum would leave (:func:`null_chi2`).
    """

    kernel: str
    names: tuple[str, ...]
    x: np.ndarray = field(repr=False)
    covariance: np.ndarray = field(repr=False)
    fisher_covariance: np.ndarray = field(repr=False)
    value: dict
    sd: dict
    chi2: float
    dof: int
    chi2_by_measurement: tuple[float, ...]
    n_by_measurement: tuple[int, ...]
    gains: np.ndarray = field(repr=False)
    simulations: int
    evaluations: int
    seconds: float
    model: np.ndarray = field(repr=False)
    error: ErrorModel = field(repr=False)
    data: np.ndarray = field(repr=False)
    times_us: np.ndarray = field(repr=False)
    measurement: np.ndarray = field(repr=False)
    check_deviations: np.ndarray = field(repr=False)
    null_chi2: np.ndarray = field(repr=False)

    @property
    def chi2_per_dof(self) -> float:
        return self.chi2 / self.dof

    @property
    def gof_p_value(self) -> float:
        """The share of the null's χ² (genuine records at this point) at least the record's."""
        return float((1 + np.sum(self.null_chi2 >= self.chi2)) / (1 + len(self.null_chi2)))


def noise_per_measurement(grid: RecordGrid, records: tuple[np.ndarray, ...], dead_time_us: float) -> np.ndarray:
    """σ per quadrature of each measurement's record (its own receiver gain scales its noise)."""
    sigma = []
    for k, R in enumerate(records):
        one = RecordGrid(Protocol((grid.protocol[k],)), grid.dt_us)
        sigma.append(float(estimate_noise((np.asarray(R)[None],), one, dead_time_us=dead_time_us).sigma[0]))
    return np.array(sigma)


def fit_family(space: FamilySpace, grid: RecordGrid, records: tuple[np.ndarray, ...], start,
               settings: FitSettings = FitSettings()) -> FamilyFit:
    """Fit ``space``'s family to one sample's ``records`` (one complex (T_k,) array per
    measurement of ``grid``, NaN where missing), starting from ``start`` (fitted coordinates)."""
    t0 = time.perf_counter()
    records = tuple(np.asarray(R, dtype=np.complex128) for R in records)
    binning = Binning.outside_dead_time(grid, settings.dead_time_us, settings.bin_size, records)
    data = binning.apply(records)
    sigma = noise_per_measurement(grid, records, settings.dead_time_us)
    n, linewidth = space.config.lattice, space.config.linewidth_khz
    draws = DetuningDraws.draw(settings.draws + settings.more_draws, n, linewidth, settings.seed)
    grouped, more = draws.split(settings.draws)
    mean_draws = draws.first(settings.mean_draws)
    groups = default_site_groups(n)
    K = len(grid.protocol)
    measurement = binning.measurement
    x = space.clip(start)

    def error_at(point, gains) -> ErrorModel:
        scatter = scatter_at(space, grid, point, grouped, binning, groups, settings.engine,
                             more_draws=more if len(more) else None)
        return ErrorModel.build(scatter, gains, measurement, sigma, settings.bin_size, settings.mean_draws)

    # the minimisation runs on float32 simulations; the first error model is the scatter at the
    # start with the gains of plain least squares
    placeholder = ErrorModel(np.eye(2 * binning.n_bins), np.ones(2 * binning.n_bins), 0.0)
    fast = RecordProblem(space, grid, binning, data, mean_draws, placeholder, settings.engine.at(SCATTER_DTYPE))
    fast.set_error(error_at(x, plain_gains(data, fast.means(x)[0], measurement, K)))

    # first every coordinate from the start (the carrier offset and Γ₁, which no learned model
    # predicts, can move the residual more than the kernel does); then, with the error model of
    # that optimum, the kernel parameter scanned across its prior, and a second minimisation from
    # the best scanned point if it beats the first (the residual's valleys along the range are
    # far apart)
    first = fast.minimise(x, settings.max_evaluations, settings.steering_draws)
    x, evaluations = first.x, first.nfev
    fast.set_error(error_at(x, fast.profile_of(fast.means(x)[0]).gains))
    scanned = fast.scan_kernel_param(x, settings.scan_points)
    if not np.array_equal(scanned, x):
        second = fast.minimise(scanned, settings.max_evaluations, settings.steering_draws)
        evaluations += second.nfev
        if fast.profile_of(fast.means(second.x)[0]).chi2 < fast.profile_of(fast.means(x)[0]).chi2:
            x = second.x
    # float64: the Jacobian, one Gauss-Newton step from the float32 optimum, the covariance
    exact = RecordProblem(space, grid, binning, data, mean_draws, fast.error, settings.engine.at(MEAN_DTYPE))
    J = exact.jacobian(x)
    x = space.clip(x - scaled_pseudo_inverse(J, space.widths)[0] @ exact.residual(x))
    model = exact.means(x)[0]
    prof = exact.profile_of(model)
    check = DetuningDraws.draw(settings.check_draws, n, linewidth, settings.seed, CHECK_DRAWS)
    deviations = real_stack(draw_deviations(space, grid, x, check, binning, settings.engine) * prof.gains[measurement])
    covariance = sandwich(J, exact.error, deviations, settings.mean_draws, space.widths)
    null = null_chi2(J, exact.error, deviations, settings.mean_draws, np.random.default_rng([settings.seed, 7]))
    sd, value = derived_sd(space, x, covariance)
    r2 = prof.residual**2
    nb = binning.n_bins
    by_measurement = tuple(float(r2[:nb][measurement == k].sum() + r2[nb:][measurement == k].sum()) for k in range(K))
    counts = tuple(int(2 * np.sum(measurement == k)) for k in range(K))
    simulations = fast.simulations + exact.simulations + len(check) + 2 * len(draws)  # two error models
    return FamilyFit(space.kernel, space.names, x, covariance, least_squares_covariance(J, space.widths), value, sd,
                     prof.chi2, 2 * nb - len(x) - 2 * K, by_measurement, counts, prof.gains, simulations, evaluations,
                     time.perf_counter() - t0, model, exact.error, data, np.concatenate(binning.times_us(grid)),
                     measurement, deviations, null)


def null_chi2(J: np.ndarray, error: ErrorModel, deviations: np.ndarray, mean_draws: int,
              rng: np.random.Generator) -> np.ndarray:
    """The χ² a genuine record would leave after the fit, one per check draw: its scatter (scaled
    by 1 + 1/D_m, the model mean's own share) plus a draw of the noise, whitened, with the
    directions the fit's parameters absorb (the columns of the whitened Jacobian ``J``) taken out."""
    noise = rng.standard_normal(deviations.shape) * np.sqrt(error.noise_var)
    white = error.whiten((math.sqrt(1.0 + 1.0 / mean_draws) * deviations + noise).T)  # (2Nb, M)
    Q, _ = np.linalg.qr(J)
    left = white - Q @ (Q.T @ white)
    return np.sum(left**2, axis=0)


# ---- across families ----------------------------------------------------------------------------
class Estimate(NamedTuple):
    """A quantity's estimate and interval: ``value`` and [``lo``, ``hi``] at the fit's level (a
    triple, as a run's record files keep it)."""

    value: float
    lo: float
    hi: float


@dataclass(frozen=True)
class RecordFit:
    """One record fitted by every plausible family.

    families : the FamilyFit of each family fitted; probability : family -> posterior
    probability (0 for the families not fitted); kernel : the most probable family;
    estimates : name -> Estimate of L, W, alpha_xy, alpha_z, t2_us (the families' mixture, each
    weighted by its probability) and of the chosen family's kernel parameter (``kernel_param``);
    chi2_per_dof : the chosen family's; gof_p_value : the share of genuine records' χ² at least
    the record's (FamilyFit.gof_p_value); fits : whether the mean-field model describes the record;
    level; seconds : the families' fitting time, summed (one core's seconds); comparison : what
    the probabilities are made of (FamilyComparison).
    """

    families: tuple[FamilyFit, ...]
    probability: dict
    kernel: str
    estimates: dict
    chi2_per_dof: float
    gof_p_value: float
    fits: bool
    level: float
    seconds: float
    comparison: "FamilyComparison"

    def family(self, kernel: str) -> FamilyFit:
        return next(f for f in self.families if f.kernel == kernel)


def fit_record(spaces: dict[str, FamilySpace], grid: RecordGrid, records: tuple[np.ndarray, ...], starts: dict,
               settings: FitSettings = FitSettings(), *, prior: dict | None = None) -> RecordFit:
    """Fit each family of ``spaces`` (kernel -> FamilySpace) from its start in ``starts`` (kernel
    -> fitted coordinates), one after another, fit again those :func:`restart_points` names (the
    settings permitting) and compare them (:func:`compare_families`)."""
    if not spaces:
        raise ParameterError("families: none to fit; give at least one")
    fits = {kernel: fit_family(space, grid, records, starts[kernel], settings) for kernel, space in spaces.items()}
    if settings.restarts:
        for kernel, start in restart_points(list(fits.values()), spaces).items():
            fits[kernel] = better_of(fits[kernel], fit_family(spaces[kernel], grid, records, start, settings))
    return compare_families(list(fits.values()), spaces, grid, settings, prior=prior)


def restart_points(fits: list[FamilyFit], spaces: dict[str, FamilySpace]) -> dict[str, np.ndarray]:
    """kernel -> where to fit that family again: every family whose χ² exceeds the best family's
    by more than :data:`RESTART_CHI2`, from the best family's optimum with the kernel parameter
    that gives the best family's L. Measured on 30 fresh records (64 x 64, SNR 200; docs/fit.md):
    the restarts changed one record's chosen family (F1 of the power law 0.84 -> 0.90) at 29 %
    more core-seconds; the large gaps (the true family 59-64 above another in χ², of 840 degrees of
    freedom) stayed, and fits started at the true point end there too: those gaps are not the
    optimiser's (a larger error model closed two of them but did not improve the check)."""
    best = min(fits, key=lambda f: f.chi2)
    shared = spaces[best.kernel].values(best.x)
    return {f.kernel: spaces[f.kernel].matching(shared, best.value["L"]) for f in fits
            if f is not best and f.chi2 - best.chi2 > RESTART_CHI2}


def better_of(first: FamilyFit, again: FamilyFit) -> FamilyFit:
    """The fit with the lower χ², carrying the cost of both attempts."""
    kept = again if again.chi2 < first.chi2 else first
    return replace(kept, simulations=first.simulations + again.simulations,
                   evaluations=first.evaluations + again.evaluations, seconds=first.seconds + again.seconds)


def compare_families(fits: list[FamilyFit], spaces: dict[str, FamilySpace], grid: RecordGrid,
                     settings: FitSettings = FitSettings(), *, prior: dict | None = None) -> RecordFit:
    """One record's family fits compared: their probabilities (``prior``: kernel -> prior
    probability, default equal), the estimates from their mixture, the goodness of fit.
    ``RecordFit.seconds`` is the families' fitting time summed (one core's)."""
    prior = prior or {f.kernel: 1.0 / len(fits) for f in fits}
    comparison = FamilyComparison.of(fits, spaces, len(grid.protocol), prior, settings.mean_draws)
    probability = comparison.probability(settings.family_rule)
    kernel = max(probability, key=probability.get)
    chosen = next(f for f in fits if f.kernel == kernel)
    estimates = mixture_estimates(fits, probability, spaces, settings.level)
    return RecordFit(tuple(fits), probability, kernel, estimates, chosen.chi2_per_dof, chosen.gof_p_value,
                     chosen.gof_p_value > settings.gof_level, settings.level, sum(f.seconds for f in fits),
                     comparison)


@dataclass(frozen=True)
class FamilyComparison:
    """What the families' probabilities are made of, kept so that every rule can be read again
    without fitting again (docs/fit.md compares them). F families, in ``families``' order.

    chi2 : (F, F) -- row i, column j: the χ² of family j's fitted record profiled onto the record
    under family i's error model (χ² compare only under one error model; the diagonal is each
    family's own); discount : (F, F) -- D²/V of the step from i's fitted record to j's along i's
    check draws (1 on the diagonal): an error model that under-states the record's scatter along
    the step is overconfident by that factor (:meth:`log_ratio`); log_det : (F,) log det of each
    family's error model; log_occam : (F,) each family's Occam factor (:func:`log_occam`);
    log_prior : (F,) its prior probability's log; reference : the family with the lowest χ² per
    degree of freedom, whose error model the ``reference`` rule compares under.
    """

    families: tuple[str, ...]
    chi2: tuple[tuple[float, ...], ...]
    discount: tuple[tuple[float, ...], ...]
    log_det: tuple[float, ...]
    log_occam: tuple[float, ...]
    log_prior: tuple[float, ...]
    reference: str

    @classmethod
    def of(cls, fits: list[FamilyFit], spaces: dict, n_measurements: int, prior: dict,
           mean_draws: int) -> "FamilyComparison":
        """The comparison of ``fits`` (one record's families; ``prior``: kernel -> probability;
        ``mean_draws``: the draws the fits' model means average)."""
        chi2, discount = [], []
        for under in fits:
            profiles = [profile_under(under, f.model, n_measurements) for f in fits]
            fitted = [real_stack(f.model * p.gains[under.measurement]) for f, p in zip(fits, profiles)]
            own = fitted[fits.index(under)]
            row = []
            for f, record in zip(fits, fitted):
                if f is under:
                    row.append(1.0)
                    continue
                d_white = under.error.whiten(record - own)
                variance = under.error.variance_along(d_white, under.check_deviations, 1.0 + 1.0 / mean_draws)
                row.append(float(d_white @ d_white) / variance if variance > 0 else 1.0)
            chi2.append(tuple(p.chi2 for p in profiles))
            discount.append(tuple(row))
        return cls(tuple(f.kernel for f in fits), tuple(chi2), tuple(discount), tuple(f.error.log_det for f in fits),
                   tuple(log_occam(f, spaces[f.kernel]) for f in fits), tuple(math.log(prior[f.kernel]) for f in fits),
                   min(fits, key=lambda f: f.chi2_per_dof).kernel)

    def log_ratio(self) -> np.ndarray:
        """(F, F): row i, column j -- the log likelihood ratio of j against i under i's error model,
        calibrated against i's check draws. Half the χ² difference is a statistic s = dᵀC⁻¹(y - (μ_j
        + μ_i)/2) with mean ±D²/2 and variance D² = dᵀC⁻¹d under the error model (d = μ_j - μ_i);
        with the record's real scatter its variance is V, and the log likelihood ratio of s is
        s D²/V."""
        chi2 = np.array(self.chi2)
        return -0.5 * (chi2 - np.diag(chi2)[:, None]) * np.array(self.discount)

    def log_evidence(self, rule: str = DEFAULT_FAMILY_RULE) -> np.ndarray:
        """(F,) each family's log evidence, up to a constant, by ``rule`` (:data:`FAMILY_RULES`)."""
        check_family_rule(rule)
        if rule == "reference":
            fit_part = self.log_ratio()[self.families.index(self.reference)]
        elif rule == "every":
            fit_part = self.log_ratio().mean(axis=0)
        else:  # own
            fit_part = -0.5 * (np.diag(np.array(self.chi2)) + np.array(self.log_det))
        return fit_part + np.array(self.log_occam) + np.array(self.log_prior)

    def probability(self, rule: str = DEFAULT_FAMILY_RULE) -> dict:
        """family -> posterior probability by ``rule``."""
        values = self.log_evidence(rule)
        return {k: float(v) for k, v in zip(self.families, np.exp(values - logsumexp(values)))}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FamilyComparison":
        return cls(tuple(d["families"]), tuple(map(tuple, d["chi2"])), tuple(map(tuple, d["discount"])),
                   tuple(d["log_det"]), tuple(d["log_occam"]), tuple(d["log_prior"]), d["reference"])


def profile_under(fit: FamilyFit, model: np.ndarray, n_measurements: int) -> Profile:
    """A model record (Nb,) complex -- another fit's, or another point's -- profiled onto ``fit``'s
    record under ``fit``'s error model: χ² of different fits compare only under one error model."""
    return profile(fit.error.whiten(real_stack(fit.data)), model, fit.error, fit.measurement, n_measurements)


def log_occam(f: FamilyFit, space: FamilySpace) -> float:
    """log of the family's Occam factor: the posterior volume sqrt(det 2πΣ) over the prior's box
    volume, each coordinate's normal marginal held to the share of it inside the box (a parameter
    the record does not pin -- sd beyond its prior range -- then costs nothing and gains nothing;
    one the record does not see at all, infinite variance, is its whole prior range: nothing either)."""
    seen = np.isfinite(np.diag(f.covariance))
    sd = np.sqrt(np.maximum(np.diag(f.covariance)[seen], 1e-300))
    inside = norm.cdf((space.upper[seen] - f.x[seen]) / sd) - norm.cdf((space.lower[seen] - f.x[seen]) / sd)
    _, logdet = np.linalg.slogdet(2 * math.pi * f.covariance[np.ix_(seen, seen)])
    return 0.5 * logdet + float(np.sum(np.log(np.maximum(inside, 1e-300)))) - float(np.sum(np.log(space.widths[seen])))


def mixture_estimates(fits: list[FamilyFit], probability: dict, spaces: dict, level: float) -> dict:
    """Estimates and intervals: each reported quantity from the mixture of the families' normal
    approximations weighted by their probability; the chosen family's own kernel parameter."""
    z = norm.ppf(0.5 + level / 2)
    tail = (1 - level) / 2
    out = {}
    for name in REPORTED:
        parts = [(probability[f.kernel], f.value[name], f.sd[name]) for f in fits if name in f.value]
        if not parts:
            continue
        w = np.array([p for p, _, _ in parts])
        m = np.array([v for _, v, _ in parts])
        s = np.maximum(np.array([sd for _, _, sd in parts]), 1e-300)
        # a family that does not see the quantity (infinite sd) puts half its weight at either infinity
        seen = np.isfinite(s)
        cdf = lambda t: float((np.sum(w[seen] * norm.cdf((t - m[seen]) / s[seen]))  # noqa: E731
                               + 0.5 * np.sum(w[~seen])) / np.sum(w))
        lo_edge, hi_edge = float(np.min(m - 10 * np.where(seen, s, 0))), float(np.max(m + 10 * np.where(seen, s, 0)))
        out[name] = Estimate(float(np.sum(w * m) / np.sum(w)), _quantile(cdf, tail, lo_edge, hi_edge),
                             _quantile(cdf, 1 - tail, lo_edge, hi_edge))
    best = max(fits, key=lambda f: probability[f.kernel])
    if KERNEL_PARAM in best.value:
        k, sd = best.value[KERNEL_PARAM], best.sd[KERNEL_PARAM]
        space = spaces[best.kernel]
        lo, hi = space.ranges[0].lo, space.ranges[0].hi
        out[KERNEL_PARAM] = Estimate(float(k), float(max(lo, k - z * sd)), float(min(hi, k + z * sd)))
    return out


def _quantile(cdf, q: float, lo: float, hi: float) -> float:
    """The q-quantile of a continuous ``cdf`` in [lo, hi] by bisection; -inf or inf where the
    cdf is already q at ``lo`` or still below it at ``hi`` (mass at infinity)."""
    if cdf(lo) >= q:
        return -math.inf
    if cdf(hi) < q:
        return math.inf
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if cdf(mid) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
