"""The Cramér-Rao bound against a closed form, and fits that must find what made the record."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from pyecho.data.sampling import DatasetConfig
from pyecho.errors import ParameterError
from pyecho.fit.batch import FitJob, RecordInput, run_fits, starts
from pyecho.fit.estimate import (FAMILY_RULES, RESTART_CHI2, FamilyComparison, FitSettings, better_of, fit_family,
                                 fit_record, profile_under, restart_points)
from pyecho.fit.forward import Binning, DetuningDraws, Engine, simulate_points
from pyecho.fit.limits import (BoundSettings, bound_map, cramer_rao, family_separation, separation_map,
                               separation_rows)
from pyecho.fit.space import KERNEL_PARAM, LOG_T2, FamilySpace
from pyecho.physics.protocol import RecordGrid
from tests.fit.conftest import SMALL, small_grid

#: one Hahn echo of spins that do not couple and all sit on resonance: M(t) = -i/2 exp(-t/T2)
DECAY = DatasetConfig(lattice=8, protocol="hahn@90/8", linewidth_khz=0.0, alpha_xy_range=(0.0, 0.0),
                      alpha_z_range=(0.0, 0.0), w_range=(0.0, 0.1), xi_range=(2.0, 2.0), t2_us_range=(30.0, 300.0),
                      n_per_kernel=1, part_size=1)
QUICK_BOUND = BoundSettings(draws=2, more_draws=0, mean_draws=2, bin_size=4, dead_time_us=1.0)


def closed_form_sd_log_t2(grid: RecordGrid, t2_us: float, snr: float, bin_size: int, dead_time_us: float) -> float:
    """The Cramér-Rao sd of log T2 for binned records g (-i/2) exp(-t/T2) + complex white noise
    (σ = |M(dt)| / snr per quadrature), the complex gain g free."""
    binning = Binning.of(grid, (~grid.dead_mask(0, dead_time_us),), bin_size)
    t = grid.times_us(0)[binning.starts[0][:, None] + np.arange(bin_size)]
    mu = np.exp(-t / t2_us).mean(axis=1)
    d = (np.exp(-t / t2_us) * t / t2_us).mean(axis=1)  # d mu / d log T2
    sigma = 0.5 * math.exp(-grid.dt_us / t2_us) / snr
    fisher = (0.5**2 / (sigma**2 / bin_size)) * (d @ d - (d @ mu) ** 2 / (mu @ mu))
    return 1.0 / math.sqrt(fisher)


@pytest.mark.parametrize("snr", [100.0, 25.0])
def test_bound_of_an_exponential_decay_is_the_closed_form(snr):
    space = FamilySpace("gaussian", DECAY)
    assert space.names == (LOG_T2,)
    grid = small_grid(DECAY)
    x = space.point(t2_us=120.0)
    bound = cramer_rao(space, grid, x, snr, QUICK_BOUND)
    expected = closed_form_sd_log_t2(grid, 120.0, snr, QUICK_BOUND.bin_size, QUICK_BOUND.dead_time_us)
    assert bound.sd[LOG_T2] == pytest.approx(expected, rel=2e-3)
    assert bound.sd["t2_us"] == pytest.approx(120.0 * expected, rel=2e-3)
    assert bound.scatter_share == 0.0  # every site on resonance: no draw moves the record


def test_bound_is_refused_outside_the_prior():
    """A point the fit could not reach has no bound: refused, not clipped to the box's edge."""
    space = FamilySpace("gaussian", DECAY)
    with pytest.raises(ParameterError, match=r"t2_us: got 1000; the gaussian prior allows 30 to 300"):
        cramer_rao(space, small_grid(DECAY), space.point(t2_us=1000.0), 100.0, QUICK_BOUND)


def test_bound_carries_the_draw_scatter():
    """On a lattice with a linewidth the draw scatter adds to the noise: the bound at SNR inf is
    not zero, and the bound at SNR 200 lies above it."""
    space = FamilySpace("power", SMALL)
    grid = small_grid()
    x = space.point(kernel_param=2.0, alpha_xy=0.3, alpha_z=0.2, t2_us=100.0)
    settings = BoundSettings(draws=4, more_draws=4, mean_draws=2, bin_size=4, dead_time_us=1.0)
    noiseless = cramer_rao(space, grid, x, math.inf, settings)
    noisy = cramer_rao(space, grid, x, 200.0, settings)
    assert noiseless.scatter_share == 1.0 and 0 < noisy.scatter_share < 1
    assert 0 < noiseless.sd[KERNEL_PARAM] < noisy.sd[KERNEL_PARAM]
    assert noisy.sd["W"] > 0 and noisy.sd["L"] == pytest.approx(abs(space.length_slope(2.0)) * noisy.sd[KERNEL_PARAM])


def test_bound_map_covers_each_family():
    spaces = {k: FamilySpace(k, SMALL) for k in ("gaussian", "power")}
    m = bound_map(spaces, small_grid(), 200.0, points=2,
                  settings=BoundSettings(draws=2, more_draws=0, mean_draws=2, bin_size=8, dead_time_us=1.0))
    assert [b.kernel for b in m.bounds] == ["gaussian", "gaussian", "power", "power"]
    assert [round(b.value[KERNEL_PARAM], 3) for b in m.family("power")] == [1.5, 2.5]
    rows = m.to_rows()
    assert {"kernel", "L", "L_sd", "kernel_param_sd", "W_sd", "t2_us_sd"} <= set(rows[0])


def test_a_family_is_nearest_itself_and_another_lies_further_the_less_the_noise():
    """The nearest gaussian record to a gaussian point is its own (D² ≈ 0, a coin's error); the
    power law's nearest lies at D² > 0, found below where the search started (the same L and
    shared coordinates), and further at SNR 1000 than at 50 (the noise hides part of it)."""
    spaces = {k: FamilySpace(k, SMALL) for k in ("gaussian", "power")}
    grid = small_grid()
    x = spaces["gaussian"].point(kernel_param=2.5, alpha_xy=0.3, alpha_z=0.2, t2_us=100.0)
    settings = BoundSettings(draws=4, more_draws=4, mean_draws=2, bin_size=4, dead_time_us=1.0)
    own = family_separation(spaces["gaussian"], spaces["gaussian"], grid, x, 200.0, settings)
    noisy, clean = (family_separation(spaces["gaussian"], spaces["power"], grid, x, snr, settings)
                    for snr in (50.0, 1000.0))
    # the float32 search from the point itself moves by float32's rounding (how far depends on the
    # CPU: 3e-8 here, 0 elsewhere), far below the other family's gap even at SNR 50
    assert own.distance2 < 1e-5 * noisy.distance2 and own.error_rate == pytest.approx(0.5, abs=1e-3)
    assert 0 < noisy.distance2 < clean.distance2
    assert clean.claimed_error_rate == pytest.approx(0.5 * math.erfc(math.sqrt(clean.distance2) / (2 * math.sqrt(2))))
    assert clean.variance > 0 and clean.calibrated_distance2 == pytest.approx(clean.distance2**2 / clean.variance)
    assert 0 < clean.noise_variance < noisy.noise_variance and clean.noise_variance < clean.variance
    assert clean.direction.shape == noisy.direction.shape and clean.direction.ndim == 1
    assert clean.error_rate == pytest.approx(0.5 * math.erfc(math.sqrt(clean.calibrated_distance2) / (2 * math.sqrt(2))))
    start = spaces["power"].matching(spaces["gaussian"].values(x), clean.value["L"])
    start_sep = family_separation(spaces["gaussian"], spaces["power"], grid, x, 1000.0, settings,
                                  scan_points=0, max_evaluations=1)
    np.testing.assert_allclose(start_sep.x_other, start)  # one evaluation: the search has not moved
    assert clean.distance2 < 0.9 * start_sep.distance2
    spaces["power"].require_inside(clean.x_other)  # raises outside the prior


def test_variance_along_a_direction_is_the_models_own_where_the_draws_scatter_as_it_says():
    """Deviations drawn from the model's own scatter covariance: dᵀC⁻¹y has variance dᵀC⁻¹d;
    twice the scatter along d: more, by the share of d's variance that is scatter."""
    from pyecho.fit.error_model import ErrorModel

    rng = np.random.default_rng(1)
    A = rng.standard_normal((6, 6))
    scatter = A @ A.T
    noise_var = np.full(6, 0.5)
    chol = np.linalg.cholesky(scatter + np.diag(noise_var))
    error = ErrorModel(chol, noise_var, 0.0)
    deviations = rng.multivariate_normal(np.zeros(6), scatter, size=40000)
    d_white = error.whiten(rng.standard_normal(6))
    assert error.variance_along(d_white, deviations) == pytest.approx(d_white @ d_white, rel=0.03)
    z = np.linalg.solve(scatter + np.diag(noise_var), chol @ d_white)
    np.testing.assert_allclose(error.direction(d_white), z)  # C⁻¹d
    assert error.noise_along(d_white) == pytest.approx(noise_var @ z**2)
    doubled = 2 * z @ scatter @ z + noise_var @ z**2
    assert error.variance_along(d_white, deviations, 2.0) == pytest.approx(doubled, rel=0.03)


def test_separation_map_pairs_every_point_with_every_other_family():
    spaces = {k: FamilySpace(k, SMALL) for k in ("gaussian", "power")}
    settings = BoundSettings(draws=2, more_draws=0, mean_draws=2, bin_size=8, dead_time_us=1.0)
    pairs = separation_map(spaces, small_grid(), 200.0, points=2, settings=settings)
    assert [(s.kernel, s.other) for s in pairs] == [("gaussian", "power")] * 2 + [("power", "gaussian")] * 2
    assert [round(s.value[KERNEL_PARAM], 3) for s in pairs[2:]] == [1.5, 2.5]  # across the power prior
    rows = separation_rows(pairs)
    assert all(r["distance2"] > 0 and 0 < r["error_rate"] < 0.5 for r in rows)


def _own_record(space, grid, x, settings, gains):
    """The fit's own model at ``x`` (its first ``mean_draws`` draws) as a record with ``gains``,
    the dead time missing: a fit must find x exactly."""
    draws = DetuningDraws.draw(settings.mean_draws, space.config.lattice, space.config.linewidth_khz, settings.seed)
    records = simulate_points(space, grid, x, draws, engine=Engine(dtype="float64"))
    out = []
    for k, R in enumerate(records):
        R = R[0].mean(axis=0) * gains[k]
        R[grid.dead_mask(k, settings.dead_time_us)] = np.nan
        out.append(R)
    return tuple(out)


SETTINGS = FitSettings(draws=4, mean_draws=2, more_draws=2, check_draws=8, bin_size=4, dead_time_us=1.0, scan_points=3,
                       max_evaluations=8)


@pytest.mark.parametrize("more_draws, steering_draws", [(0, 2), (4, 2), (0, 1)])
def test_fit_finds_the_point_and_gains_of_its_own_model(more_draws, steering_draws):
    """Plain draws added to the error model change its weights, not the optimum of a record the
    model makes exactly; nor does a minimiser steered by the Jacobian of fewer draws' mean."""
    space = FamilySpace("power", SMALL)
    grid = small_grid()
    truth = space.point(kernel_param=1.8, alpha_xy=0.3, alpha_z=0.15, t2_us=80.0, center_khz=0.5)
    gains = np.array([3.0 * np.exp(0.7j), 0.2 * np.exp(-2.0j)])
    records = _own_record(space, grid, truth, SETTINGS, gains)
    start = space.point(kernel_param=2.6, alpha_xy=0.28, alpha_z=0.17, t2_us=90.0, center_khz=0.0)
    f = fit_family(space, grid, records, start, replace(SETTINGS, more_draws=more_draws, steering_draws=steering_draws))
    np.testing.assert_allclose(f.x, truth, atol=1e-4 * space.widths.max(), rtol=1e-4)
    np.testing.assert_allclose(f.gains, gains, rtol=1e-5)
    assert f.chi2 < 1e-6 * f.dof
    assert all(sd > 0 for sd in f.sd.values())
    assert np.all(np.isfinite(f.fisher_covariance)) and np.all(np.diag(f.fisher_covariance) > 0)
    assert f.value["L"] == pytest.approx(space.length(1.8), rel=1e-4)


def test_steering_draws_are_some_of_the_means_draws():
    with pytest.raises(ParameterError, match="steering_draws: got 3; must be from 1 to mean_draws"):
        replace(SETTINGS, steering_draws=3)


def test_the_true_family_wins_and_the_record_fits():
    """A gaussian record: the gaussian fit leaves nothing, the power law's leaves a χ² above it
    and loses (on 16 x 16 the draw scatter keeps the power law possible: not by much)."""
    config = SMALL.replace(lattice=16)
    spaces = {k: FamilySpace(k, config) for k in ("gaussian", "power")}
    grid = small_grid(config)
    truth = spaces["gaussian"].point(kernel_param=2.2, alpha_xy=0.35, alpha_z=0.2, t2_us=60.0)
    records = _own_record(spaces["gaussian"], grid, truth, SETTINGS, np.ones(2))
    starts = {"gaussian": spaces["gaussian"].point(kernel_param=3.0, alpha_xy=0.35, alpha_z=0.2, t2_us=60.0),
              "power": spaces["power"].point(kernel_param=2.0, alpha_xy=0.35, alpha_z=0.2, t2_us=60.0)}
    fit = fit_record(spaces, grid, records, starts, SETTINGS)
    assert fit.family("gaussian").chi2 < 1e-6 < fit.family("power").chi2
    # a fit's own model under its own error model is its χ²; the other family's, under it, is more
    gaussian, power = fit.family("gaussian"), fit.family("power")
    assert profile_under(power, power.model, len(grid.protocol)).chi2 == pytest.approx(power.chi2, rel=1e-9)
    assert profile_under(gaussian, power.model, len(grid.protocol)).chi2 > 1e-3
    assert fit.kernel == "gaussian" and fit.probability["gaussian"] > 0.7
    assert sum(fit.probability.values()) == pytest.approx(1.0)
    assert fit.fits
    est = fit.estimates
    assert est["L"].lo <= spaces["gaussian"].length(2.2) <= est["L"].hi
    assert est[KERNEL_PARAM].value == pytest.approx(2.2, abs=1e-3)
    assert est["W"].lo < 2 * 0.35 + 0.2 < est["W"].hi
    # the comparison kept: each family's own χ² on its diagonal, the default rule's probabilities,
    # and every rule reads the same winner off a record this clear
    c = fit.comparison
    np.testing.assert_allclose(np.diag(c.chi2), [fit.family(k).chi2 for k in c.families], rtol=1e-9)
    assert c.reference == "gaussian" and c.probability() == fit.probability
    assert all(max(p := c.probability(rule), key=p.get) == "gaussian" for rule in FAMILY_RULES)
    assert FamilyComparison.from_dict(c.to_dict()) == c


def test_each_family_rule_reads_the_comparison_as_documented():
    """Two families a, b: χ² of b's record 14 under a's error model (a's own 10), of a's 13 under
    b's (b's own 11); the steps' discounts 0.5 under a, 0.25 under b; the rules by hand."""
    c = FamilyComparison(("a", "b"), ((10.0, 14.0), (13.0, 11.0)), ((1.0, 0.5), (0.25, 1.0)), (3.0, -1.0),
                         (0.0, 0.0), (math.log(0.5),) * 2, reference="a")
    def ratio_b_over_a(rule):
        return float(np.subtract(*c.log_evidence(rule)[::-1]))
    assert ratio_b_over_a("reference") == pytest.approx(-0.5 * 4 * 0.5)
    assert ratio_b_over_a("every") == pytest.approx(0.5 * (-0.5 * 4 * 0.5 + 0.5 * 2 * 0.25))
    assert ratio_b_over_a("own") == pytest.approx(-0.5 * (11 - 1) + 0.5 * (10 + 3))
    assert c.probability("own")["b"] == pytest.approx(1 / (1 + math.exp(-1.5)))
    with pytest.raises(ParameterError, match="family_rule: got 'best'; the rules are reference, every, own"):
        c.log_evidence("best")
    with pytest.raises(ParameterError, match="family_rule: got 'best'"):
        FitSettings(family_rule="best")


def _stuck_case():
    """A gaussian record whose gaussian fit starts far off (carrier offset, T2, alphas) and, with
    two evaluations and no scan, stops short; the power law's fit starts near the nuisances."""
    config = SMALL.replace(lattice=16)
    spaces = {k: FamilySpace(k, config) for k in ("gaussian", "power")}
    grid = small_grid(config)
    truth = spaces["gaussian"].point(kernel_param=2.2, alpha_xy=0.35, alpha_z=0.2, t2_us=60.0, center_khz=0.3)
    records = _own_record(spaces["gaussian"], grid, truth, SETTINGS, np.ones(2))
    starts = {"gaussian": spaces["gaussian"].point(kernel_param=3.4, alpha_xy=0.21, alpha_z=0.29, t2_us=250.0,
                                                   center_khz=-1.9),
              "power": spaces["power"].point(kernel_param=2.0, alpha_xy=0.35, alpha_z=0.2, t2_us=60.0, center_khz=0.3)}
    return spaces, grid, records, starts, replace(SETTINGS, max_evaluations=2, scan_points=0)


def test_a_family_stuck_far_off_is_fitted_again_from_the_best_familys_optimum():
    spaces, grid, records, starts, settings = _stuck_case()
    alone = fit_record(spaces, grid, records, starts, replace(settings, restarts=False))
    assert alone.kernel == "power"  # the gaussian fit stopped short: the wrong family wins
    stuck, best = alone.family("gaussian"), alone.family("power")
    again = restart_points(list(alone.families), spaces)
    assert list(again) == ["gaussian"]  # the best family is never restarted
    g = spaces["gaussian"]
    shared = spaces["power"].values(best.x)
    np.testing.assert_allclose(again["gaussian"], g.clip(g.point(
        kernel_param=g.kernel_param_of_length(best.value["L"]), alpha_xy=shared["alpha_xy"],
        alpha_z=shared["alpha_z"], t2_us=shared["t2_us"], center_khz=shared["center_khz"])))
    fit = fit_record(spaces, grid, records, starts, settings)
    rescued = fit.family("gaussian")
    assert rescued.chi2 < stuck.chi2 / 5 and fit.kernel == "gaussian"
    assert rescued.evaluations > stuck.evaluations  # both attempts counted
    assert fit.family("power").chi2 == best.chi2


def test_restart_is_skipped_where_it_could_not_change_the_comparison():
    spaces, grid, records, starts, settings = _stuck_case()
    fit = fit_record(spaces, grid, records, starts, replace(settings, max_evaluations=8, restarts=False))
    g, p = fit.family("gaussian"), fit.family("power")
    assert restart_points([g, replace(p, chi2=g.chi2 + RESTART_CHI2)], spaces) == {}
    assert list(restart_points([g, replace(p, chi2=g.chi2 + RESTART_CHI2 + 0.1)], spaces)) == ["power"]
    kept = better_of(replace(g, chi2=5.0, seconds=1.0), replace(g, chi2=7.0, seconds=2.0))
    assert kept.chi2 == 5.0 and kept.seconds == 3.0


def test_a_batch_run_restarts_as_fit_record_does(tmp_path):
    """run_fits, serially: the same restart, the same result as fit_record from the same starts."""
    spaces, grid, records, starts_by_family, settings = _stuck_case()
    job = FitJob(spaces["gaussian"].config, grid, settings, families=("gaussian", "power"), figures=False)
    item = RecordInput(0, records, {"alpha_xy": 0.21, "alpha_z": 0.29, "t2_us": 250.0, "L": 1.5},
                       {"gaussian": 0.5, "power": 0.5})
    [result] = run_fits(job, [item], tmp_path / "run")
    expected = fit_record(spaces, grid, records, starts(spaces, item.prediction), settings)
    unrestarted = fit_record(spaces, grid, records, starts(spaces, item.prediction), replace(settings, restarts=False))
    assert unrestarted.kernel == "power" and result.kernel == expected.kernel == "gaussian"
    assert {k: result.probability[k] for k in spaces} == pytest.approx(expected.probability)
    assert result.seconds > 0 and (tmp_path / "run" / "records" / "record-000000.json").is_file()


def test_least_squares_covariance_keeps_badly_scaled_directions_and_marks_blind_ones():
    """Coordinates whose units differ by 10 orders of magnitude: the exact inverse, where a plain
    pseudo-inverse of the information cuts a real direction and reports a variance of zero; a
    direction the records do not see: infinite sd for the coordinates in it, the others untouched."""
    from pyecho.fit.error_model import least_squares_covariance

    rng = np.random.default_rng(0)
    widths = np.array([40.0, 1e-2, 1e-7])
    G = rng.standard_normal((30, 3))
    J = G / widths  # well determined in width units
    exact = np.linalg.inv(G.T @ G) * np.outer(widths, widths)
    assert np.allclose(least_squares_covariance(J, widths), exact, rtol=1e-8)
    assert not np.allclose(np.diag(np.linalg.pinv(J.T @ J, hermitian=True)), np.diag(exact), rtol=1e-3)  # the trap
    blind = J.copy()
    blind[:, 0] = 0.0  # the first coordinate moves nothing
    cov = least_squares_covariance(blind, widths)
    assert np.isinf(cov[0, 0]) and np.all(cov[0, 1:] == 0)
    assert np.allclose(cov[1:, 1:], np.linalg.inv(J[:, 1:].T @ J[:, 1:]), rtol=1e-8)


def test_a_coordinate_the_record_does_not_see_costs_nothing_in_the_evidence_and_opens_the_interval():
    """Infinite variance (the sandwich's unseen coordinate): the Occam factor is that of a
    variance far beyond the prior's range (the coordinate's whole prior, no cost, no gain), not
    NaN; a mixture whose chosen family does not see a quantity reports an unbounded interval,
    and one whose family that does not see it carries little weight a finite one."""
    from types import SimpleNamespace

    from pyecho.fit.estimate import log_occam, mixture_estimates

    space = FamilySpace("power", SMALL)
    x = 0.5 * (space.lower + space.upper)
    sd = 0.01 * space.widths
    unseen, wide = np.diag(sd**2), np.diag(sd**2)
    unseen[1, 1], wide[1, 1] = np.inf, (1e8 * space.widths[1]) ** 2
    occam = log_occam(SimpleNamespace(covariance=unseen, x=x), space)
    assert occam == pytest.approx(log_occam(SimpleNamespace(covariance=wide, x=x), space), abs=1e-6)

    def family(kernel, L_sd):
        return SimpleNamespace(kernel=kernel, value={"L": 10.0, "W": 0.5}, sd={"L": L_sd, "W": 0.01})
    fits = [family("power", 0.5), family("gaussian", math.inf)]
    spaces = {"power": space, "gaussian": FamilySpace("gaussian", SMALL)}
    blind = mixture_estimates(fits, {"power": 0.4, "gaussian": 0.6}, spaces, 0.9)
    assert blind["L"].lo == -math.inf and blind["L"].hi == math.inf and math.isfinite(blind["W"].lo)
    seen = mixture_estimates(fits, {"power": 0.99, "gaussian": 0.01}, spaces, 0.9)
    assert seen["L"].lo == pytest.approx(10.0 - 1.64 * 0.5, abs=0.05) and math.isfinite(seen["L"].hi)
