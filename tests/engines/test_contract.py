"""The engine contract (docs/model.md), checked for every engine against the NumPy reference.

One module serves all engines: julia and cuda cases run wherever their runtime exists and skip
with the reason elsewhere.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from pyecho import BackendUnavailable, simulate, simulate_batch
from pyecho.physics.detuning import sample_detuning_mhz
from pyecho.physics.sequence import Pulse, PulseSequence
from tests.conftest import ENGINE_DEVICES, golden_cases, small_params

KERNEL_CASES = [("gaussian", 2.0), ("power", 2.0), ("rkky", 3.0), ("uniform", 0.0)]
#: pulses with arbitrary angles and phases, unequal spacings and pulses at the same time
FREE_LIST = PulseSequence(
    (Pulse(0.0, 1.3, 0.4), Pulse(0.8, 2.9, 1.9), Pulse(0.8, 0.5, -0.7), Pulse(2.4, 3.1, 2.5)), total_us=4.8
)
TOLERANCE = {"float32": 5e-4, "float64": 1e-10}
#: contract variants every engine must reproduce (keyword changes of small_params)
VARIANTS = [
    {},
    {"alpha_z": 0.0},
    {"t2_us": 2.5},
    {"theta": 1.1},
    {"theta": 2.0, "alpha_z": 0.0, "t2_us": 4.0},
    {"scheme": "extrapolated", "field_every": 1},
    {"scheme": "extrapolated", "field_every": 3},
    {"scheme": "extrapolated", "field_every": 4, "alpha_z": 0.0, "theta": 1.1},
    {"gamma1_per_us": 0.3},
    {"gamma2_per_us": 0.2, "scheme": "extrapolated"},
    {"gamma1_per_us": 0.1, "gamma2_per_us": 0.05, "gamma3_per_us": 0.4},
    {"sequence": "cpmg:3", "theta": 1.2, "tau_us": 1.6},
    {"sequence": "cp:2", "scheme": "extrapolated", "field_every": 4, "tau_us": 1.6},
    {"sequence": FREE_LIST},
    {"geometry": "triangular"},
    {"geometry": "rectangular:1.5", "scheme": "extrapolated"},
    {"center_khz": 30.0},
]
VARIANT_IDS = ["base", "no-alpha_z", "t2", "theta1.1", "theta2-no-z-t2", "extrap1", "extrap3", "extrap4-no-z",
               "gamma1", "gamma2-extrap", "gamma123", "cpmg3", "cp2-extrap", "free-list", "triangular",
               "rectangular-extrap", "carrier-offset"]


@functools.lru_cache(maxsize=None)
def reference_case(kernel: str, kernel_param: float, variant: int):
    """(params, detunings, reference series) of one variant, computed once for both dtypes."""
    params = small_params(kernel=kernel, kernel_param=kernel_param, **VARIANTS[variant])
    detuning = sample_detuning_mhz(7, params.lattice, params.linewidth_khz, center_khz=params.center_khz)
    return params, detuning, simulate(params, backend="numpy", detuning_mhz=detuning)


def test_reference_reproduces_golden():
    for params, detuning, expected in golden_cases():
        m = simulate(params, backend="numpy", detuning_mhz=detuning)
        np.testing.assert_allclose(m, expected, atol=1e-12, rtol=0, err_msg=params.kernel)


@pytest.mark.parametrize("backend, device", ENGINE_DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_engine_reproduces_golden(backend, device, dtype):
    for params, detuning, expected in golden_cases():
        m = simulate(params, backend=backend, device=device, detuning_mhz=detuning, dtype=dtype)
        np.testing.assert_allclose(m, expected, atol=TOLERANCE[dtype], rtol=0, err_msg=params.kernel)


@pytest.mark.parametrize("backend, device", ENGINE_DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kernel, kernel_param", KERNEL_CASES)
@pytest.mark.parametrize("variant", range(len(VARIANTS)), ids=VARIANT_IDS)
def test_engine_matches_reference(backend, device, dtype, kernel, kernel_param, variant):
    params, detuning, expected = reference_case(kernel, kernel_param, variant)
    m = simulate(params, backend=backend, device=device, detuning_mhz=detuning, dtype=dtype)
    assert m.shape == (params.n_samples,)
    np.testing.assert_allclose(m, expected, atol=TOLERANCE[dtype], rtol=0)


@pytest.mark.parametrize("backend, device", ENGINE_DEVICES)
def test_batch_equals_single_runs(backend, device):
    """Each simulation in a batch keeps its own parameters and detunings."""
    params = [
        small_params(kernel="power", kernel_param=1.5, alpha_xy=0.1),
        small_params(kernel="rkky", kernel_param=4.0, theta=1.0, t2_us=3.0),
        small_params(kernel="gaussian", alpha_z=0.0),
    ]
    batch = simulate_batch(params, seeds=[3, 4, 5], backend=backend, device=device, dtype="float64")
    for i, p in enumerate(params):
        single = simulate(p, seed=3 + i, backend=backend, device=device, dtype="float64")
        np.testing.assert_allclose(batch[i], single, atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend, device", ENGINE_DEVICES)
@pytest.mark.parametrize("linewidth_khz", [8.0, 200.0])
def test_alpha_zero_refocuses_exactly(backend, device, linewidth_khz):
    """Without coupling the pi pulse undoes all dephasing: |M(2 tau)| = 1/2 for any detunings."""
    params = small_params(alpha_xy=0.0, alpha_z=0.0, lattice=16, tau_us=16.0, linewidth_khz=linewidth_khz)
    m = simulate(params, seed=11, backend=backend, device=device)
    assert abs(abs(m[2 * params.n_tau - 1]) - 0.5) < 1e-5
    assert abs(m[params.n_tau - 1]) < 0.45  # it had dephased before the pulse


@pytest.mark.parametrize("backend, device", [("numpy", "cpu"), *ENGINE_DEVICES])
def test_hahn_is_one_refocusing_pulse_of_cpmg(backend, device):
    params = small_params(kernel="power", kernel_param=1.5)
    hahn = simulate(params, seed=2, backend=backend, device=device, dtype="float64")
    np.testing.assert_array_equal(simulate(params.replace(sequence="cpmg:1"), seed=2, backend=backend,
                                           device=device, dtype="float64"), hahn)


@pytest.mark.parametrize("backend, device", ENGINE_DEVICES)
@pytest.mark.parametrize("sequence", ["cpmg:4", "cp:4"])
def test_cpmg_echo_tops_at_alpha_zero_decay_only_by_relaxation(backend, device, sequence):
    """Without coupling every ideal refocusing pulse restores the dephasing exactly: the echo tops
    are (1/2) exp(-G_perp t) with G_perp = (G1 + G2 + G3)/2, whatever the detunings."""
    rates = {"gamma1_per_us": 0.01, "gamma2_per_us": 0.02, "gamma3_per_us": 0.03}
    params = small_params(alpha_xy=0.0, alpha_z=0.0, lattice=16, tau_us=8.0, linewidth_khz=50.0,
                          sequence=sequence, **rates)
    m = simulate(params, seed=4, backend=backend, device=device, dtype="float64")
    tops = np.abs(m[list(params.echo_samples)])
    t_echo = params.time_grid_us()[list(params.echo_samples)]
    np.testing.assert_allclose(tops, 0.5 * np.exp(-0.5 * sum(rates.values()) * t_echo), rtol=1e-10)
    assert np.abs(m[params.n_tau - 1]) < 0.4  # dephased in between: the tops are real refocusing


def test_free_induction_decay_is_lorentzian():
    """alpha = 0 on 64x64: |M(t)| follows (1/2) exp(-pi FWHM t) up to lattice-size noise."""
    params = small_params(alpha_xy=0.0, alpha_z=0.0, lattice=64, tau_us=100.0, linewidth_khz=8.0)
    m = simulate(params, seed=1, backend="torch", dtype="float64")
    t = params.time_grid_us()[: params.n_tau]
    expected = 0.5 * np.exp(-np.pi * params.linewidth_khz * 1e-3 * t)
    noise = 0.5 / math.sqrt(params.lattice**2)  # std of a mean of N unit phasors, times 1/2
    assert np.max(np.abs(np.abs(m[: params.n_tau]) - expected)) < 3 * noise
    # and the deviation is not trivially small: the test could fail with a wrong linewidth
    wrong = 0.5 * np.exp(-np.pi * 2 * params.linewidth_khz * 1e-3 * t)
    assert np.max(np.abs(np.abs(m[: params.n_tau]) - wrong)) > 3 * noise


def test_free_precession_phase():
    """One spin species at detuning nu precesses as exp(-i 2 pi nu t) (sign convention)."""
    params = small_params(alpha_xy=0.0, alpha_z=0.0, lattice=4, tau_us=1.6)
    nu = 0.05
    m = simulate(params, backend="numpy", detuning_mhz=np.full((4, 4), nu))
    t = params.time_grid_us()[: params.n_tau]
    np.testing.assert_allclose(m[: params.n_tau], -0.5j * np.exp(-2j * np.pi * nu * t), atol=1e-12)


def test_same_seed_same_series_and_seeds_differ():
    p = small_params()
    a = simulate(p, seed=5)
    np.testing.assert_array_equal(a, simulate(p, seed=5))
    assert np.max(np.abs(a - simulate(p, seed=6))) > 1e-4


def test_unknown_backend_names_what_can_run():
    with pytest.raises(BackendUnavailable, match=r"unknown backend.*available here: numpy, torch"):
        simulate(small_params(), backend="fortran")


def test_unknown_device_and_dtype():
    with pytest.raises(BackendUnavailable, match="device"):
        simulate(small_params(), device="tpu")
    with pytest.raises(BackendUnavailable, match="dtype"):
        simulate(small_params(), dtype="float16")


def test_detuning_shape_is_checked():
    with pytest.raises(ValueError, match=r"detuning_mhz: got shape \(5, 5\)"):
        simulate(small_params(), detuning_mhz=np.zeros((5, 5)))
    with pytest.raises(ValueError, match="NaN"):
        simulate(small_params(), detuning_mhz=np.full((6, 6), np.nan))


@pytest.mark.parametrize("backend, device", [("numpy", "cpu"), *ENGINE_DEVICES])
def test_gamma3_alone_reproduces_t2(backend, device):
    """t2_us is the special case gamma3_per_us = 2 / t2_us of the Lindblad dephasing channel."""
    params = small_params(kernel="power", kernel_param=1.5, scheme="extrapolated")
    with_t2 = simulate(params.replace(t2_us=2.5), seed=3, backend=backend, device=device, dtype="float64")
    with_gamma3 = simulate(params.replace(gamma3_per_us=2 / 2.5), seed=3, backend=backend, device=device,
                           dtype="float64")
    np.testing.assert_allclose(with_gamma3, with_t2, atol=1e-13, rtol=0)
    assert np.max(np.abs(with_t2 - simulate(params, seed=3, backend=backend, device=device, dtype="float64"))) > 1e-3


@pytest.mark.parametrize("backend, device", ENGINE_DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("site_groups", [2, 3])
def test_site_groups_match_reference(backend, device, dtype, site_groups):
    """One record per interleaved site group, as the reference computes it from its per-site
    density matrices; the groups' mean is the echo (docs/model.md, "Site groups")."""
    params = [small_params(kernel="power", kernel_param=1.5, t2_us=3.0, scheme="extrapolated"),
              small_params(kernel="rkky", kernel_param=4.0, theta=1.1, gamma1_per_us=0.1)]
    expected = simulate_batch(params, seeds=[8, 9], backend="numpy", site_groups=site_groups)
    groups = simulate_batch(params, seeds=[8, 9], backend=backend, device=device, dtype=dtype,
                            site_groups=site_groups)
    assert groups.shape == (2, site_groups**2, params[0].n_samples)
    np.testing.assert_allclose(groups, expected, atol=TOLERANCE[dtype], rtol=0)
    whole = simulate_batch(params, seeds=[8, 9], backend=backend, device=device, dtype=dtype)
    np.testing.assert_allclose(groups.mean(axis=1), whole, atol=1e-6 if dtype == "float32" else 1e-13, rtol=0)
    # the groups are not copies of the echo: each follows its own sites' detunings
    assert np.max(np.abs(groups[:, 0] - groups[:, 1])) > 1e-3


def test_site_group_means_definition():
    """Group a*g + b holds the sites (i, j) with i = a, j = b (mod g)."""
    from pyecho.physics.problem import site_group_means

    values = np.arange(36.0).reshape(6, 6)
    means = site_group_means(values, 3)
    assert means.shape == (9,)
    assert means[0 * 3 + 1] == np.mean([values[i, j] for i in (0, 3) for j in (1, 4)])
    assert means[2 * 3 + 0] == np.mean([values[i, j] for i in (2, 5) for j in (0, 3)])
    np.testing.assert_allclose(site_group_means(values, 1), [values.mean()])


@pytest.mark.parametrize("site_groups, message", [(4, "must divide the lattice side 6"), (0, "integer >= 1"),
                                                  (2.0, "integer >= 1")])
def test_site_groups_are_checked(site_groups, message):
    with pytest.raises(ValueError, match=f"site_groups: got .*{message}"):
        simulate_batch([small_params()], site_groups=site_groups)
