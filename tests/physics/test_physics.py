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
from pyecho.physics.pulses import pulse_rotation, spin_half_unitary


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
    u = spin_half_unitary(math.pi / 2)  # about x
    np.testing.assert_allclose(expectations(u @ rho_up @ u.conj().T)[0], [0, -0.5, 0], atol=1e-15)
    u = spin_half_unitary(math.pi / 2, math.pi / 2)  # about y: +z -> +x
    np.testing.assert_allclose(expectations(u @ rho_up @ u.conj().T)[0], [0.5, 0, 0], atol=1e-15)
    rng = np.random.default_rng(0)
    for phase in (0.0, math.pi / 2, rng.uniform(-3, 3)):
        phi = rng.uniform(-3, 3)
        m = rng.normal(size=3)
        m *= 0.5 / np.linalg.norm(m)
        rho = 0.5 * np.eye(2) + 2 * np.einsum("d,dab->ab", m, SPIN_OPS)
        u = spin_half_unitary(phi, phase)
        np.testing.assert_allclose(expectations((u @ rho @ u.conj().T)[None])[0], pulse_rotation(phi, phase) @ m,
                                   atol=1e-14)


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
        ({"scheme": "rk4"}, "scheme"),
        ({"scheme": "extrapolated", "field_every": 0}, "field_every"),
        ({"scheme": "extrapolated", "field_every": 2.5}, "field_every"),
        ({"gamma1_per_us": -0.1}, "gamma1_per_us"),
        ({"gamma3_per_us": 0.1, "t2_us": 20.0}, "t2_us"),
        ({"sequence": "spin-lock"}, "sequence"),
        ({"sequence": "cpmg:0"}, "sequence"),
        ({"sequence": 3}, "sequence"),
        ({"geometry": "hexagonal"}, "geometry"),
        ({"geometry": "rectangular:-1"}, "geometry"),
    ]
    + [({name: bad}, name) for name in ("kernel_param", "alpha_xy", "alpha_z", "tau_us", "dt_us", "theta",
                                         "linewidth_khz", "t2_us", "center_khz", "gamma1_per_us", "gamma2_per_us",
                                         "gamma3_per_us") for bad in (math.nan, math.inf)],
)
def test_bad_parameters_name_the_field(changes, field):
    with pytest.raises(ParameterError, match=rf"^{field}: got "):
        EchoParams(**{"lattice": 8, **changes})


def test_scheme_defaults_and_replace():
    assert EchoParams(lattice=8).field_every == 1  # explicit evaluates every step
    assert EchoParams(lattice=8, field_every=7).field_every == 1
    p = EchoParams(lattice=8, scheme="extrapolated")
    assert p.field_every == 4
    assert p.replace(scheme="explicit").field_every == 1
    assert p.replace(scheme="explicit").replace(scheme="extrapolated").field_every == 4
    assert p.replace(field_every=2).field_every == 2


def test_kappa_too_small_is_refused():
    gamma = _rkky_kappa_root(8)
    with pytest.raises(ParameterError, match="too small to normalise"):
        EchoParams(kernel="rkky", kernel_param=gamma, lattice=8)


# ---- sequences, relaxation, geometry -------------------------------------------------------

from pyecho.engines.reference import lindblad_step  # noqa: E402
from pyecho.physics.lattice import basis  # noqa: E402
from pyecho.physics.sequence import Pulse, PulseSequence, SequenceError, parse_sequence, step_plan  # noqa: E402


def test_hahn_and_cpmg_step_plans():
    hahn = step_plan("hahn", 1.2, 10, 0.16)
    assert hahn == step_plan("cpmg:1", 1.2, 10, 0.16)
    assert hahn.pulse_steps == (0, 10) and hahn.n_steps == 30 and hahn.echo_samples == (19,)
    assert hahn.pulse_angle == (1.2, 2.4) and hahn.pulse_phase == (0.0, math.pi / 2)
    cpmg = step_plan("cpmg:3", 1.2, 10, 0.16)
    assert cpmg.pulse_steps == (0, 10, 30, 50) and cpmg.n_steps == 70 and cpmg.echo_samples == (19, 39, 59)
    assert step_plan("cp:3", 1.2, 10, 0.16).pulse_phase == (0.0, 0.0, 0.0, 0.0)
    assert parse_sequence(" CPMG:8 ") == "cpmg:8"


def test_free_pulse_list_round_trips_and_needs_the_grid(tmp_path):
    seq = PulseSequence((Pulse(0.0, math.pi / 2), Pulse(1.6, math.pi, math.pi / 2)), total_us=4.8,
                        echo_times_us=(3.2,))
    assert parse_sequence(seq.to_text()) == seq
    plan = step_plan(seq, 9.9, 10, 0.16)  # theta and n_tau do not matter to a free list
    assert plan.pulse_steps == (0, 10) and plan.n_steps == 30 and plan.echo_samples == (19,)
    path = tmp_path / "seq.toml"
    path.write_text("total_us = 4.8\necho_times_us = [3.2]\n[[pulse]]\ntime_us = 0.0\nangle = 1.5707963267948966\n"
                    "[[pulse]]\ntime_us = 1.6\nangle = 3.141592653589793\nphase = 1.5707963267948966\n")
    assert PulseSequence.from_toml(path) == seq
    with pytest.raises(SequenceError, match="not a multiple of dt_us"):
        step_plan(PulseSequence((Pulse(0.0, 1.0), Pulse(1.0, 2.0)), total_us=3.2), 1.0, 10, 0.16)
    with pytest.raises(SequenceError, match="time order"):
        PulseSequence((Pulse(1.6, 1.0), Pulse(0.0, 2.0)), total_us=3.2)
    with pytest.raises(ParameterError, match="^sequence: "):
        EchoParams(lattice=8, dt_us=0.16, sequence=PulseSequence((Pulse(0.0, 1.0),), total_us=0.5))


@pytest.mark.parametrize("rates", [(0.3, 0.0, 0.0), (0.0, 0.2, 0.0), (0.0, 0.0, 0.4), (0.3, 0.1, 0.25)])
def test_bloch_relaxation_map_equals_the_lindblad_superoperator(rates):
    """The affine Bloch map the fast engines use is the density-matrix Lindblad step exactly."""
    p = EchoParams(lattice=8, gamma1_per_us=rates[0], gamma2_per_us=rates[1], gamma3_per_us=rates[2], dt_us=0.7,
                   tau_us=7.0)
    step = lindblad_step(p)
    relax = p.relaxation()
    rng = np.random.default_rng(1)
    for _ in range(5):
        m = rng.normal(size=3)
        m *= rng.uniform(0, 0.5) / np.linalg.norm(m)
        rho = 0.5 * np.eye(2) + 2 * np.einsum("d,dab->ab", m, SPIN_OPS)
        after = expectations((step @ rho.reshape(4)).reshape(1, 2, 2))[0]
        expected = [relax.transverse * m[0], relax.transverse * m[1], relax.longitudinal * m[2] + relax.shift]
        np.testing.assert_allclose(after, expected, atol=1e-14)


def test_t2_is_the_gamma3_special_case():
    a = EchoParams(lattice=8, t2_us=40.0).relaxation()
    b = EchoParams(lattice=8, gamma3_per_us=2 / 40.0).relaxation()
    assert a.transverse == pytest.approx(math.exp(-0.16 / 40.0), rel=1e-15) == b.transverse
    assert a.longitudinal == b.longitudinal == 1.0 and a.shift == b.shift == 0.0
    assert lindblad_step(EchoParams(lattice=8)) is None and EchoParams(lattice=8).relaxation().is_identity


def test_triangular_and_rectangular_minimum_images():
    r = displacement_distances(12, "triangular")
    assert np.sum(np.isclose(r, 1.0)) == 6 and np.sum(np.isclose(r, math.sqrt(3))) == 6
    pair = pairwise_distances(12, "triangular")
    np.testing.assert_allclose(pair[0].reshape(12, 12), r, atol=1e-12)
    # every row of the pair matrix is a relabelling of the displacement grid (periodicity)
    np.testing.assert_allclose(np.sort(pair[37]), np.sort(r.ravel()), atol=1e-12)
    rect = displacement_distances(10, "rectangular:1.5")
    assert rect[0, 1] == pytest.approx(1.5) and rect[1, 0] == 1.0 and rect[0, 9] == pytest.approx(1.5)
    assert displacement_distances(10, "rectangular:1.0") is displacement_distances(10)
    np.testing.assert_allclose(basis("triangular") @ basis("triangular").T, [[1, 0.5], [0.5, 1]], atol=1e-15)


@pytest.mark.parametrize("geometry", ["triangular", "rectangular:1.5"])
def test_kappa_and_length_on_other_geometries_match_a_direct_sum(geometry):
    """kappa and L by brute force over sites, periodic images and the kernel formula."""
    n = 16
    a1, a2 = basis(geometry)
    i, j = np.divmod(np.arange(n * n), n)
    pos = i[:, None] * a1 + j[:, None] * a2
    images = [n * (p * a1 + q * a2) for p in range(-2, 3) for q in range(-2, 3)]
    r = np.min([np.linalg.norm(pos + shift, axis=1) for shift in images], axis=0)
    for kernel, param in [("gaussian", 2.0), ("power", 2.0), ("rkky", 3.0)]:
        k = kernel_values(kernel, param, r)
        kappa, length = kernel_stats(kernel, param, n, geometry=geometry)
        assert kappa == pytest.approx(k.sum(), rel=1e-12)
        assert length == pytest.approx((r * k).sum() / k.sum(), rel=1e-12)
    assert kernel_stats("gaussian", 2.0, n, geometry=geometry) != kernel_stats("gaussian", 2.0, n)


def test_carrier_offset_shifts_the_same_draws():
    base = sample_detuning_mhz(5, 16, 8.0)
    np.testing.assert_allclose(sample_detuning_mhz(5, 16, 8.0, center_khz=3.0), base + 0.003, atol=1e-15)
