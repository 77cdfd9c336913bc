"""Physics layer: kernels, kappa/L figures, detunings, pulses, parameter validation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from pyecho import EchoParams, ParameterError, kernel_stats
from pyecho.engines.reference import SPIN_OPS, expectations
from pyecho.physics.detuning import sample_detuning_mhz
from pyecho.physics.kernels import kernel_values, normalized_kernel_grid
from pyecho.physics.lattice import displacement_distances, pairwise_distances
from pyecho.physics.pulses import rotation_x, rotation_y, spin_half_unitary


@pytest.mark.parametrize(
    "kernel, param, kappa, length",
    [("gaussian", 8.0, 200.1, 7.12), ("power", 2.0, 27.86, 12.52), ("rkky", 13.0, -197.7, 8.12)],
)
def test_spec_kappa_and_length_figures(kernel, param, kappa, length):
    k, L = kernel_stats(kernel, param, lattice=100)
    assert k == pytest.approx(kappa, abs=0.05)
    assert L == pytest.approx(length, abs=0.005)


def test_uniform_kernel_and_no_self_coupling():
    kappa, _ = kernel_stats("uniform", 0.0, lattice=5)
    assert kappa == 24
    for kernel, param in [("gaussian", 2.0), ("power", 1.0), ("rkky", 3.0), ("uniform", 0.0)]:
        assert kernel_values(kernel, param, np.array([0.0]))[0] == 0.0


def test_minimum_image_distances():
    r = displacement_distances(10)
    assert r[0, 0] == 0 and r[1, 0] == 1 and r[9, 0] == 1 and r[5, 5] == pytest.approx(math.sqrt(50))
    pair = pairwise_distances(10)
    # site (0, 0) to (9, 9) is one diagonal step through the boundary
    assert pair[0, 99] == pytest.approx(math.sqrt(2))
    np.testing.assert_allclose(pair[0].reshape(10, 10), r)


def test_normalized_grid_sums_to_one():
    for kernel, param in [("gaussian", 3.0), ("power", 2.5), ("rkky", 5.0)]:
        assert normalized_kernel_grid(kernel, param, 16).sum() == pytest.approx(1.0)


def test_detunings_truncated_lorentzian_and_seeded():
    d = sample_detuning_mhz(3, 200, linewidth_khz=8.0)
    assert d.shape == (200, 200)
    assert np.all(np.abs(d) <= 0.25)
    np.testing.assert_array_equal(d, sample_detuning_mhz(3, 200, 8.0))
    # half of a Lorentzian lies within +-HWHM (the truncation moves this by < 1%)
    assert np.mean(np.abs(d) < 0.004) == pytest.approx(0.5, abs=0.01)
    assert not np.array_equal(d, sample_detuning_mhz(4, 200, 8.0))
    assert np.all(sample_detuning_mhz(0, 4, linewidth_khz=0.0) == 0)


def test_pulses_match_spin_half_unitaries():
    rho_up = np.array([[[1, 0], [0, 0]]], dtype=complex)
    u = spin_half_unitary("x", math.pi / 2)
    np.testing.assert_allclose(expectations(u @ rho_up @ u.conj().T)[0], [0, -0.5, 0], atol=1e-15)
    rng = np.random.default_rng(0)
    for axis, rot in [("x", rotation_x), ("y", rotation_y)]:
        phi = rng.uniform(-3, 3)
        m = rng.normal(size=3)
        m *= 0.5 / np.linalg.norm(m)
        rho = 0.5 * np.eye(2) + 2 * np.einsum("d,dab->ab", m, SPIN_OPS)
        u = spin_half_unitary(axis, phi)
        np.testing.assert_allclose(expectations((u @ rho @ u.conj().T)[None])[0], rot(phi) @ m, atol=1e-14)


def test_params_derived_quantities():
    p = EchoParams(kernel="power", kernel_param=2.0, alpha_xy=0.05, alpha_z=0.03)
    assert p.n_tau == 625 and p.n_samples == 1875
    assert p.W == pytest.approx(0.13) and p.is_power
    assert p.kappa == pytest.approx(27.86, abs=0.01)
    assert p.time_grid_us()[-1] == pytest.approx(300.0)
    assert EchoParams(kernel="uniform", kernel_param=5.0).kernel_param == 0.0


def _rkky_kappa_root(lattice: int) -> float:
    return brentq(lambda g: kernel_stats("rkky", g, lattice)[0], 0.26, 0.28, xtol=1e-14)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"kernel": "yukawa"}, "kernel"),
        ({"lattice": 1}, "lattice"),
        ({"lattice": 1_000_000}, "lattice"),
        ({"lattice": 2.5}, "lattice"),
        ({"lattice": True}, "lattice"),
        ({"tau_us": 0.0}, "tau_us"),
        ({"tau_us": -5.0}, "tau_us"),
        ({"dt_us": 0.0}, "dt_us"),
        ({"tau_us": 0.07, "dt_us": 0.16}, "tau_us"),
        ({"kernel_param": -1.0}, "kernel_param"),
        ({"kernel": "power", "kernel_param": 0.0}, "kernel_param"),
        ({"linewidth_khz": -1.0}, "linewidth_khz"),
        ({"t2_us": 0.0}, "t2_us"),
        ({"t2_us": -3.0}, "t2_us"),
        ({"alpha_xy": "big"}, "alpha_xy"),
    ]
    + [({name: bad}, name) for name in ("kernel_param", "alpha_xy", "alpha_z", "tau_us", "dt_us", "theta",
                                         "linewidth_khz", "t2_us") for bad in (math.nan, math.inf)],
)
def test_bad_parameters_name_the_field(changes, field):
    with pytest.raises(ParameterError, match=rf"^{field}: got "):
        EchoParams(**{"lattice": 8, **changes})


def test_kappa_too_small_is_refused():
    gamma = _rkky_kappa_root(8)
    with pytest.raises(ParameterError, match="too small to normalise"):
        EchoParams(kernel="rkky", kernel_param=gamma, lattice=8)
