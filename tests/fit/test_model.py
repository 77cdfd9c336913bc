"""pyecho.fit's parameter space, forward model and error model on small lattices."""
from __future__ import annotations

import math

import numpy as np
import pytest

import pyecho.fit.forward as forward
from pyecho.data.sampling import PRESETS, DatasetConfig
from pyecho.errors import InputFileError, ParameterError
from pyecho.fit.error_model import (ErrorModel, Scatter, gain_design, gain_transform, plain_gains, profile,
                                    real_stack, sandwich)
from pyecho.fit.forward import Binning, DetuningDraws, Engine, simulate_points
from pyecho.fit.space import (ALPHA_XY, CENTER, GAMMA1, KERNEL_PARAM, LOG_T2, FamilySpace, load_prior, save_prior)
from pyecho.physics.protocol import RecordGrid
from tests.fit.conftest import SMALL, small_grid


def test_range_prior_space():
    space = FamilySpace("power", PRESETS["range"])
    assert space.names == (KERNEL_PARAM, ALPHA_XY, "alpha_z", LOG_T2, CENTER, GAMMA1)
    np.testing.assert_allclose(space.lower, [1.0, 0.01, 0.01, math.log(300), -0.5, 0.0])
    x = space.point(kernel_param=2.0, alpha_xy=0.05, t2_us=1000.0)
    values = space.values(x)
    assert values["t2_us"] == pytest.approx(1000.0) and values[KERNEL_PARAM] == 2.0
    assert values["alpha_z"] == pytest.approx(0.055)  # left out: the middle of its range
    p = space.echo_params(x, PRESETS["range"].protocol[1])
    assert (p.kernel, p.t2_us, p.tau_us, p.lattice) == ("power", pytest.approx(1000.0), 100.0, 100)
    with pytest.raises(ParameterError, match="xi: not a fitted parameter"):
        space.point(xi=3.0)


def test_a_point_range_is_fixed_not_fitted():
    config = DatasetConfig(lattice=8, alpha_xy_range=(0.05, 0.05), alpha_z_range=(0.02, 0.02), w_range=(0.1, 0.2),
                           t2_us=700.0)
    space = FamilySpace("gaussian", config)
    assert space.names == (KERNEL_PARAM,)
    assert space.fixed[ALPHA_XY] == 0.05 and CENTER in space.fixed
    p = space.echo_params(space.point(kernel_param=3.0), config.protocol[0])
    assert (p.alpha_xy, p.alpha_z, p.t2_us, p.kernel_param) == (0.05, 0.02, 700.0, 3.0)


@pytest.mark.parametrize("kernel, values", [("gaussian", (9.0, 20.0)), ("power", (1.3, 2.7)), ("rkky", (15.0, 40.0))])
def test_length_is_inverted_within_the_prior(kernel, values):
    space = FamilySpace(kernel, PRESETS["range"].replace(lattice=32))
    for k in values:
        assert space.kernel_param_of_length(space.length(k)) == pytest.approx(k, rel=2e-3)


def test_prior_round_trip_and_missing(tmp_path):
    save_prior(PRESETS["quick-range"], tmp_path)
    assert load_prior(tmp_path) == PRESETS["quick-range"]
    with pytest.raises(InputFileError, match="holds no prior.json.*rerun pyecho learn"):
        load_prior(tmp_path / "elsewhere")


def test_binning_keeps_whole_bins_of_valid_samples():
    grid = small_grid()
    valid = tuple(~grid.dead_mask(k, 1.0) for k in range(len(grid.protocol)))
    b = Binning.of(grid, valid, 4)
    for k, starts in enumerate(b.starts):
        assert np.all(starts % 4 == 0)
        assert all(valid[k][s:s + 4].all() for s in starts)
    records = tuple(np.arange(T, dtype=complex)[None] for T in grid.lengths)
    binned = b.apply(records)[0]
    np.testing.assert_allclose(binned[: len(b.starts[0])], b.starts[0] + 1.5)
    assert binned.shape == (b.n_bins,) and len(b.measurement) == b.n_bins


def test_points_share_draws_and_one_engine_call_per_record_shape(monkeypatch):
    space = FamilySpace("power", SMALL)
    grid = small_grid()
    draws = DetuningDraws.draw(3, SMALL.lattice, SMALL.linewidth_khz, seed=1)
    calls = []
    real = forward.simulate_batch
    monkeypatch.setattr(forward, "simulate_batch", lambda params, **kw: calls.append(len(params)) or real(params, **kw))
    x = space.point(kernel_param=2.0)
    X = np.stack([x, x, space.point(kernel_param=1.5)])
    records = simulate_points(space, grid, X, draws, engine=Engine(dtype="float64"))
    assert calls == [9, 9]  # two measurements x (3 points x 3 draws), the hahn echo its own shape
    assert records[0].shape == (3, 3, grid.lengths[0])
    np.testing.assert_array_equal(records[0][0], records[0][1])  # the same point on the same draws
    assert np.max(np.abs(records[0][0, 0] - records[0][0, 1])) > 1e-4  # draws differ
    assert np.max(np.abs(records[0][0] - records[0][2])) > 1e-4  # points differ


def test_draws_first_and_independent_sets():
    a = DetuningDraws.draw(5, 8, 8.0, seed=3)
    np.testing.assert_array_equal(a.first(2).spreads_mhz, DetuningDraws.draw(2, 8, 8.0, seed=3).spreads_mhz)
    b = DetuningDraws.draw(5, 8, 8.0, seed=3, purpose=forward.CHECK_DRAWS)
    assert not np.allclose(a.spreads_mhz, b.spreads_mhz)
    with pytest.raises(ParameterError, match="draws: got 1"):
        DetuningDraws.draw(1, 8, 8.0)


def test_scatter_from_groups_recovers_a_known_covariance():
    """Groups of independent sites: a draw's record varies by 1/G of a group's variance."""
    rng = np.random.default_rng(0)
    D, G, N = 40, 64, 6
    scale = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 0.2])
    groups = rng.standard_normal((D, G, N)) * scale + 1j * rng.standard_normal((D, G, N)) * scale
    s = Scatter.of(groups)
    expected = np.diag(np.concatenate([scale**2, scale**2]) / G)
    # the sites' part (rank-rich) plus the draws' spread, which here is the same variance again
    np.testing.assert_allclose(np.diag(s.covariance), 2 * np.diag(expected), rtol=0.35)
    assert s.n_draws == D and 0 <= s.shrinkage <= 1


def test_gain_transform_is_the_real_rotation_and_scaling():
    rng = np.random.default_rng(1)
    n = 4
    A = rng.standard_normal((2 * n, 2 * n))
    cov = A @ A.T
    g = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    R = np.block([[np.diag(g.real), -np.diag(g.imag)], [np.diag(g.imag), np.diag(g.real)]])
    np.testing.assert_allclose(gain_transform(cov, g), R @ cov @ R.T, atol=1e-12)


def test_whitening_and_gain_profile():
    rng = np.random.default_rng(2)
    n, K = 30, 2
    measurement = np.repeat([0, 1], n // 2)
    model = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    gains = np.array([2.0 - 1.0j, 0.3 + 0.4j])
    data = model * gains[measurement]
    groups = 0.01 * (rng.standard_normal((4, 16, n)) + 1j * rng.standard_normal((4, 16, n)))
    error = ErrorModel.build(Scatter.of(groups), gains, measurement, np.array([0.05, 0.02]), 4, mean_draws=2)
    v = rng.standard_normal(2 * n)
    C = error.chol @ error.chol.T
    assert np.sum(error.whiten(v) ** 2) == pytest.approx(v @ np.linalg.solve(C, v), rel=1e-10)
    fitted = profile(error.whiten(real_stack(data)), model, error, measurement, K)
    np.testing.assert_allclose(fitted.gains, gains, atol=1e-10)
    assert fitted.chi2 < 1e-18
    np.testing.assert_allclose(plain_gains(data, model, measurement, K), gains, atol=1e-12)
    assert gain_design(model, measurement, K).shape == (2 * n, 2 * K)


def test_sandwich_measures_what_the_error_model_misses():
    """A linear model whose record scatter is 10x what the error model assumes along one
    direction: the sandwich reports the estimate's true spread, (JᵀJ)⁻¹ does not."""
    rng = np.random.default_rng(3)
    n = 50
    error = ErrorModel(np.eye(n), np.full(n, 1.0), 0.0)
    J = rng.standard_normal((n, 2))
    hidden = 10 * J[:, 0] / np.linalg.norm(J[:, 0])  # scatter along the first parameter's direction
    deviations = rng.standard_normal((4000, 1)) * hidden + 0.0 * rng.standard_normal((4000, n))
    cov = sandwich(J, error, deviations, mean_draws=10**9, widths=np.ones(2))
    A = np.linalg.pinv(J)
    truth = A @ A.T + np.outer(A @ hidden, A @ hidden)
    np.testing.assert_allclose(cov, truth, rtol=0.08, atol=1e-3)
    assert cov[0, 0] > 10 * np.linalg.inv(J.T @ J)[0, 0]


def test_sandwich_marks_what_the_records_do_not_see():
    """Two coordinates that move the record alike (in their widths' units): no record tells them
    apart, so both get an infinite variance, where a pseudo-inverse alone reports its
    minimum-norm split as a finite one; the third is what a fit of it beside one of them gives."""
    rng = np.random.default_rng(5)
    n = 40
    error = ErrorModel(np.eye(n), np.full(n, 0.5), 0.0)
    g = rng.standard_normal((n, 2))
    widths = np.array([1.0, 1e-3, 2.0])
    J = np.column_stack([g[:, 0], 1e3 * g[:, 0], g[:, 1]])
    deviations = 0.1 * rng.standard_normal((200, n))
    cov = sandwich(J, error, deviations, mean_draws=4, widths=widths)
    assert np.all(np.isinf(np.diag(cov)[:2])) and np.all(cov[2, :2] == 0) and np.all(cov[:2, 2] == 0)
    alone = sandwich(J[:, [0, 2]], error, deviations, mean_draws=4, widths=widths[[0, 2]])
    assert cov[2, 2] == pytest.approx(alone[1, 1], rel=1e-8)
    A = np.linalg.pinv(J)  # what the sandwich took before: the degenerate pair looks determined
    assert np.isfinite(A @ A.T).all()


def test_null_chi2_is_the_residual_of_genuine_records():
    """Noise alone (no draw scatter): the null's χ² is chi-square with (values - parameters)
    degrees of freedom, the directions the fit absorbs taken out."""
    from pyecho.fit.estimate import null_chi2

    rng = np.random.default_rng(4)
    n, k, M = 200, 5, 4000
    error = ErrorModel(np.diag(np.full(n, 2.0)), np.full(n, 4.0), 0.0)  # C = 4 I, noise variance 4
    J = rng.standard_normal((n, k))
    null = null_chi2(J, error, np.zeros((M, n)), mean_draws=10**9, rng=rng)
    assert null.mean() == pytest.approx(n - k, rel=0.02)
    assert null.var() == pytest.approx(2 * (n - k), rel=0.1)
